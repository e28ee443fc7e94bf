"""Files posereg writes: a kill, a full disk or concurrent writers never leave a corrupt file."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from posereg._files import atomic_outputs, atomic_path, check_outputs
from posereg.data import Volume, load_nifti, save_nifti

MM = torch.diag(torch.tensor([1.0, 1.0, 1.0, 1.0], dtype=torch.float64))


def _volume(value: float, n: int = 24) -> Volume:
    return Volume(torch.full((n, n, n), value) + torch.arange(n).float()[:, None, None], MM)


def test_concurrent_writers_leave_one_whole_file(tmp_path):
    path = tmp_path / "scan.nii.gz"
    values = [float(v) for v in range(1, 13)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(lambda v: save_nifti(_volume(v, 48), path), values))
    data = load_nifti(path).data
    assert float(data[0, 0, 0]) in values  # one writer's file, whole
    torch.testing.assert_close(data, _volume(float(data[0, 0, 0]), 48).data)
    assert [p.name for p in tmp_path.iterdir()] == ["scan.nii.gz"]  # no temporary file left


_SLOW_WRITER = textwrap.dedent(
    """
    import sys, torch
    from posereg.data import Volume, save_nifti
    print("writing", flush=True)
    # ~200 MB of float32 to compress: seconds of writing, long enough to be killed in the middle.
    noise = torch.rand(368, 368, 368, generator=torch.Generator().manual_seed(0))
    save_nifti(Volume(noise, torch.eye(4, dtype=torch.float64)), sys.argv[1])
    print("done", flush=True)
    """
)


def test_a_writer_killed_mid_write_leaves_the_earlier_file_intact(tmp_path):
    path = tmp_path / "scan.nii.gz"
    save_nifti(_volume(5.0), path)
    before = path.read_bytes()
    child = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(path)], stdout=subprocess.PIPE, encoding="utf-8", errors="replace")
    assert child.stdout.readline().strip() == "writing"
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".scan.nii.gz.") for p in tmp_path.iterdir()):  # the temporary file exists
        assert time.monotonic() < deadline and child.poll() is None, "the writer ended before it could be killed"
        time.sleep(0.02)
    time.sleep(0.3)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert path.read_bytes() == before  # the earlier file, untouched
    torch.testing.assert_close(load_nifti(path).data, _volume(5.0).data)


_FULL_DISK = textwrap.dedent(
    """
    import json, os, sys, torch
    from posereg.data import Volume, load_nifti, save_nifti
    path = os.path.join(sys.argv[1], "scan.nii.gz")
    save_nifti(Volume(torch.ones(8, 8, 8), torch.eye(4, dtype=torch.float64)), path)
    before = open(path, "rb").read()
    try:  # incompressible noise: megabytes on a 1 MiB file system
        save_nifti(Volume(torch.rand(128, 128, 128), torch.eye(4, dtype=torch.float64)), path)
        error = None
    except OSError as exc:
        error = exc.errno
    print(json.dumps({"error": error, "intact": open(path, "rb").read() == before,
                      "files": sorted(os.listdir(sys.argv[1]))}))
    """
)


def test_a_full_disk_leaves_the_earlier_file_intact(tmp_path):
    if shutil.which("unshare") is None:
        pytest.skip("no unshare: cannot mount a small tmpfs here")
    mount = tmp_path / "small"
    mount.mkdir()
    script = (f"mount -t tmpfs -o size=1m tmpfs {mount} && "
              f"{sys.executable} -c '{_FULL_DISK}' {mount}")  # fmt: skip
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
                          capture_output=True, encoding="utf-8", errors="replace", timeout=120, env={**os.environ})  # fmt: skip
    if done.returncode != 0 and ("unshare" in done.stderr or "mount" in done.stderr):
        pytest.skip(f"this machine does not allow a tmpfs in a user namespace ({done.stderr.strip()[:120]})")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["error"] == 28  # ENOSPC
    assert result["intact"] and result["files"] == ["scan.nii.gz"]


def test_outputs_of_one_command_appear_together_or_not_at_all(tmp_path):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("old a")
    with pytest.raises(RuntimeError), atomic_outputs([first, second]) as (ta, tb):
        ta.write_text("new a")
        raise RuntimeError("the second output failed")
    assert first.read_text() == "old a" and not second.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    with atomic_outputs([first, second]) as (ta, tb):
        ta.write_text("new a")
        tb.write_text("new b")
    assert (first.read_text(), second.read_text()) == ("new a", "new b")


def test_a_temporary_path_keeps_the_suffixes_writers_dispatch_on(tmp_path):
    with atomic_path(tmp_path / "scan.nii.gz") as tmp:
        assert tmp.name.endswith(".nii.gz") and tmp.parent == tmp_path
        tmp.write_text("x")
    assert (tmp_path / "scan.nii.gz").read_text() == "x"


@pytest.mark.parametrize(
    ("outputs", "inputs", "message"),
    [({"--out": "in.nii.gz"}, ["in.nii.gz"], "would replace an input"),
     ({"--a": "o.nii.gz", "--b": "o.nii.gz"}, [], "would replace the output of --a"),
     ({"--out": "o.png"}, [], "expected a file ending in .nii or .nii.gz"),
     ({"--out": "folder.nii.gz"}, [], "is a folder"),
     ({"--out": "file.nii.gz/x.nii.gz"}, [], "is a file, not a folder")],
)  # fmt: skip
def test_bad_output_paths_are_refused_before_any_work(tmp_path, monkeypatch, outputs, inputs, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.nii.gz").write_text("input")
    (tmp_path / "file.nii.gz").write_text("a file")
    (tmp_path / "folder.nii.gz").mkdir()
    suffixes = {k: (".nii", ".nii.gz") for k in outputs}
    with pytest.raises(ValueError, match=message):
        check_outputs(outputs, inputs, suffixes)
    check_outputs({"--out": "new/deeper/o.nii.gz"}, ["in.nii.gz"], {"--out": (".nii.gz",)})  # creatable: fine
