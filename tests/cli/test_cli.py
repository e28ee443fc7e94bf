"""The posereg command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from posereg import __version__
from posereg.cli import main


def test_version(capsys):
    assert main(["version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_geometry_demo_prints_a_table_with_tiny_round_trip_errors(capsys):
    assert main(["geometry", "--count", "5", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line[:3].strip().isdigit()]
    assert len(rows) == 5
    errors = [float(line.split()[-2]) for line in rows]
    assert max(errors) < 1e-12
    assert "edge cases" in out


def test_geometry_demo_rejects_bad_count(capsys):
    assert main(["geometry", "--count", "0"]) == 2
    assert "--count" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


SCRIPT = Path(sys.executable).parent / "posereg"


@pytest.mark.skipif(not SCRIPT.exists(), reason="console script not installed (run `make test`)")
def test_console_script_help():
    out = subprocess.run([str(SCRIPT), "demo", "--help"], capture_output=True, encoding="utf-8", errors="replace", check=True).stdout
    assert "--angles" in out and "--subjects" in out


def test_demo_registers_held_out_subjects_and_writes_a_figure(tmp_path, capsys):
    from tests.registration.test_pipeline import _tiny_models

    model = _tiny_models(tmp_path)  # untrained: checks the plumbing, not the accuracy
    code = main(["demo", "--model", str(model), "--subjects", "1", "--angles", "30", "170",
                 "--output", str(tmp_path / "out"), "--quiet"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.strip().startswith("0 ")]
    assert len(rows) == 2 and "30d" in rows[0] and "170d" in rows[1]
    assert all(line.count("deg") == 3 for line in rows)  # deep pipeline, VVR-Deep, VVR-GC
    assert "faster than VVR-GC" in out
    assert (tmp_path / "out" / "volume_registration.png").stat().st_size > 10_000


def test_demo_rejects_bad_arguments(capsys):
    assert main(["demo", "--angles", "200"]) == 2
    assert "--angles" in capsys.readouterr().err
