"""Registering many scans: one model and atlas for all, one row per scan, no stop at a failed one.

``register_files`` reads each scan, registers it with ``register_checked``, writes its transform
(and optionally its image on the reference grid) under an output folder, and yields a
``BatchRow`` whatever happened: a scan that cannot be read or is not a brain image gives a row
with status ``failed`` and the reason; a doubtful result gives ``doubtful``. Each scan's files
appear together or not at all (``registration.outputs.write_outputs``, as for a single scan).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from posereg.data import Volume, XformCode
from posereg.data.image_io import load_image
from posereg.registration.apply import Interpolation
from posereg.registration.checked import CheckedResult, register_checked
from posereg.registration.outputs import RegistrationOutputs, write_outputs
from posereg.registration.pipeline import DeepRegistration
from posereg.registration.transform_files import TransformFormat

__all__ = ["BatchRow", "check_batch", "output_stem", "register_files"]


@dataclass(frozen=True)
class BatchRow:
    """One scan of a batch.

    Attributes:
        scan: the input path.
        status: 'ok', 'doubtful' or 'failed'.
        checked: the checked result (None when failed).
        error: why it failed (empty otherwise).
        seconds: wall time for this scan, writing included, reading as far as it did not overlap
            the scan before (the next scan is read while one is registered).
        outputs: the files written for it.
    """

    scan: str
    status: str
    checked: CheckedResult | None
    error: str
    seconds: float
    outputs: tuple[str, ...]


def output_stem(path: str | Path) -> str:
    """The file name of a scan without its image extension (``sub-01_T1w.nii.gz`` -> ``sub-01_T1w``)."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def check_batch(scans: Sequence[str | Path], fmt: TransformFormat) -> list[str]:
    """The output stems of ``scans``, after the checks a batch makes before any work.

    Raises:
        ValueError: FSL (FLIRT matrices need a reference file per scan), or two scans with the
            same output name.
    """
    if fmt is TransformFormat.FSL:
        raise ValueError("batches write itk or ras transforms (FLIRT matrices need a reference file per scan)")
    stems = [output_stem(s) for s in scans]
    repeated = sorted({s for s in stems if stems.count(s) > 1})
    if repeated:
        raise ValueError(f"scans: several inputs would write the same outputs ({', '.join(repeated)}); rename them")
    return stems


def register_files(
    pipeline: DeepRegistration,
    scans: Sequence[str | Path],
    out_dir: str | Path,
    *,
    fmt: TransformFormat = TransformFormat.ITK,
    reference: tuple[Volume, XformCode] | None = None,
    interpolation: Interpolation = Interpolation.LINEAR,
    fallback: bool = True,
) -> Iterator[BatchRow]:
    """Register every scan; yield one row each, in order.

    Args:
        pipeline: the deep pipeline (one model and atlas for all scans).
        scans: image paths (or DICOM folders); their names (``output_stem``) must be distinct.
        out_dir: where ``<stem>.tfm`` (or ``.txt`` for RAS matrices) and ``<stem>_aligned.nii.gz`` go.
        fmt: the transform format (ITK or RAS; FSL needs per-scan reference files).
        reference: the grid and NIfTI frame code of aligned images; None writes no image.
        interpolation: of the aligned images.
        fallback: run the search fallback on doubtful results.

    Raises:
        ValueError: before any work, for FSL or two scans with the same output name.
    """
    stems = check_batch(scans, fmt)
    folder = Path(out_dir)
    # The next scan is read (decompressed, decoded) in a thread while this one is registered:
    # reading a 1 mm .nii.gz takes 0.1-0.3 s, much of it in ISA-L's gzip, which releases the GIL.
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(load_image, scans[0]) if scans else None
        for k, (scan, stem) in enumerate(zip(scans, stems, strict=True)):
            current = pending
            pending = reader.submit(load_image, scans[k + 1]) if k + 1 < len(scans) else None
            assert current is not None
            yield _register_one(pipeline, scan, current, folder, stem, fmt, reference, interpolation, fallback)


def _register_one(pipeline: DeepRegistration, scan: str | Path, image: Future[Volume], folder: Path, stem: str,
                  fmt: TransformFormat, reference: tuple[Volume, XformCode] | None, interpolation: Interpolation,
                  fallback: bool) -> BatchRow:  # fmt: skip
    """One scan of ``register_files`` (its image being read by ``image``): its row, whatever happens."""
    start = time.perf_counter()
    outputs = RegistrationOutputs(folder / f"{stem}{'.tfm' if fmt is TransformFormat.ITK else '.txt'}", fmt,
                                  None if reference is None else folder / f"{stem}_aligned.nii.gz", reference,
                                  interpolation)  # fmt: skip
    try:
        moving = image.result()
        checked = register_checked(pipeline, moving, fallback=fallback)
        r = checked.result
        paths = write_outputs(outputs, moving, r.R, r.t, r.centre)
    except (ValueError, OSError, EOFError, MemoryError) as exc:  # this scan only: the batch goes on
        message = " ".join(str(exc).split()) or type(exc).__name__
        return BatchRow(str(scan), "failed", None, message, time.perf_counter() - start, ())
    status = "doubtful" if checked.doubtful else "ok"
    return BatchRow(str(scan), status, checked, "", time.perf_counter() - start, tuple(map(str, paths)))
