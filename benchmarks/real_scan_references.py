"""Reference alignments of the real scans (``real_scans.py``): careful registrations by other tools.

The truth of ``real_scans.py`` and ``real_slices.py``: for each unmoved scan, the consensus of
careful registrations that use none of posereg's networks nor its refinement (``reference_pose``);
candidates are computed once per scan and kept in ``<cache>/references.json``.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from real_scan_data import SCANS, fetch_scan

from posereg.data import Volume, load_mni152, load_nifti
from posereg.geometry import geodesic_distance
from posereg.registration import Metric, search_registration

F64 = torch.float64
Pose = tuple[torch.Tensor, torch.Tensor]  # (R, t) about the atlas centre, atlas -> scan, RAS mm

__all__ = ["F64", "HEAD_TEMPLATE", "REFERENCE_AGREEMENT_DEG", "Pose", "ReferenceTargets", "angle_deg", "ants_registration", "compose",
           "moved_by_header", "reference_pose", "reference_targets", "stored_reference"]  # fmt: skip


def moved_by_header(volume: Volume, R: torch.Tensor, t: torch.Tensor) -> Volume:
    """``volume`` moved by ``y = R (x - c) + c + t`` about its grid centre, through its header alone."""
    c = volume.centre
    M = torch.eye(4, dtype=F64)
    M[:3, :3], M[:3, 3] = R, c + t - R @ c
    return Volume(volume.data, M @ volume.affine)


def compose(motion: Pose, motion_centre: torch.Tensor, pose: Pose, centre: torch.Tensor) -> Pose:
    """``motion o pose``, both as ``x -> R (x - c) + c + t``; the result about ``centre``."""
    Rm, tm = motion
    R, t = pose
    R_out = Rm @ R
    image_of_centre = Rm @ (centre + t - motion_centre) + motion_centre + tm  # (motion o pose)(centre)
    return R_out, image_of_centre - centre


def angle_deg(A: torch.Tensor, B: torch.Tensor) -> float:
    return math.degrees(float(geodesic_distance(A, B)))


def ants_registration(fixed_path: Path, mask_path: Path | None, moving: Volume, centre: torch.Tensor, initializer: bool,
                      transform: str = "Rigid") -> Pose:
    """ANTs ``transform`` registration ('Rigid' or 'Similarity'; fixed -> moving, about ``centre``) from a
    NIfTI of ``moving``; its rotation (the nearest one to a similarity's linear part) and shift.
    ``mask_path``: the fixed image's metric mask, or ``None`` for the whole image."""
    import ants
    import nibabel as nib
    import SimpleITK as sitk

    from posereg.geometry import project_to_so3

    os.environ.setdefault("ANTS_RANDOM_SEED", "1")  # ANTs samples voxels at random: the same run twice
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "moving.nii.gz"
        nib.save(nib.Nifti1Image(moving.data.numpy(), moving.affine.numpy()), path)
        fixed, mov = ants.image_read(str(fixed_path)), ants.image_read(str(path))
        init = None
        if initializer:
            # The search (start rotations every 45 degrees about each axis, each locally refined)
            # on 4 mm copies: at 1 mm it takes many minutes per scan.
            coarse = [ants.resample_image(x, (4.0, 4.0, 4.0), use_voxels=False, interp_type=0) for x in (fixed, mov)]
            init = ants.affine_initializer(*coarse, search_factor=45, radian_fraction=1.0, use_principal_axis=False,
                                           local_search_iterations=10, txfn=str(Path(tmp) / "init.mat"))  # fmt: skip
        kwargs = {"initial_transform": init} if init is not None else {}
        if mask_path is not None:
            kwargs["mask"] = ants.image_read(str(mask_path))
        out = ants.registration(fixed, mov, type_of_transform=transform, outprefix=str(Path(tmp) / "reg"), **kwargs)
        transform = sitk.ReadTransform(out["fwdtransforms"][0])
    # With the initializer the collapsed transform is affine (the search allows scaling): its
    # rotation is the nearest one to the linear part, read about the same centre.
    affine = sitk.AffineTransform(3)
    affine.SetParameters(transform.GetParameters())
    affine.SetFixedParameters(transform.GetFixedParameters())
    flip = torch.diag(torch.tensor([-1.0, -1.0, 1.0], dtype=F64))
    A = flip @ torch.tensor(affine.GetMatrix(), dtype=F64).reshape(3, 3) @ flip
    c = flip @ torch.tensor(affine.GetCenter(), dtype=F64)
    t = flip @ torch.tensor(affine.GetTranslation(), dtype=F64)
    R = project_to_so3(A)
    # The affine maps the atlas centre to A (centre - c) + c + t; keep that point's image.
    return R, A @ (centre - c) + c + t - centre


# Scanner headers put a head within a few tens of degrees of upright, and the tilt that remains is
# mostly a nod (pitch, about the left-right axis): ANTs is started from the header and from it
# pitched by these angles.
HEADER_PITCH_STARTS_DEG = (0.0, -15.0, 15.0)


def _pitch(degrees: float) -> torch.Tensor:
    a = math.radians(degrees)
    return torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]], dtype=F64)


REFERENCE_AGREEMENT_DEG = 5.0
HEAD_TEMPLATE = "icbm2009c-head"  # whole-head T1 template in the atlas's MNI space: the head-to-head candidates' target


@dataclass(frozen=True)
class ReferenceTargets:
    """What the reference candidates register to.

    Attributes:
        fixed_path: the atlas's 1 mm MNI152 2009a template (skull-stripped), NIfTI.
        mask_path: its brain mask dilated by 6 mm, NIfTI.
        head_path: the whole-head ``HEAD_TEMPLATE`` scan, NIfTI (``None``: no head-to-head candidates).
        head_pose: its own reference alignment (atlas -> head template, about the atlas centre).
    """

    fixed_path: Path
    mask_path: Path
    head_path: Path | None = None
    head_pose: Pose | None = None


def reference_targets(pipeline, cache: Path, folder: Path, head_to_head: bool = True) -> ReferenceTargets:  # type: ignore[no-untyped-def]
    """Write the atlas template and mask into ``folder``; with ``head_to_head``, find the whole-head
    template's own reference (from the brain-masked candidates alone) for the head-to-head candidates."""
    import nibabel as nib
    from scipy import ndimage

    mni = load_mni152()
    fixed_path, mask_path = folder / "mni.nii.gz", folder / "mask.nii.gz"
    nib.save(nib.Nifti1Image(mni.image.data.numpy(), mni.image.affine.numpy()), fixed_path)
    dilated = ndimage.binary_dilation(mni.mask.numpy(), iterations=6).astype("float32")
    nib.save(nib.Nifti1Image(dilated, mni.image.affine.numpy()), mask_path)
    targets = ReferenceTargets(fixed_path, mask_path)
    if not head_to_head:
        return targets
    info = next(s for s in SCANS if s.name == HEAD_TEMPLATE)
    head_path = fetch_scan(info, cache)
    head_pose, _, _ = reference_pose(load_nifti(head_path), info.name, pipeline, targets, cache)
    return ReferenceTargets(fixed_path, mask_path, head_path, head_pose)


def reference_candidates(scan: Volume, name: str, pipeline, targets: ReferenceTargets,  # type: ignore[no-untyped-def]
                         known: dict[str, Pose]) -> dict[str, Pose]:  # fmt: skip
    """Careful alignments of the unmoved scan ``name`` that use none of posereg's methods but
    VVR-Search (``known``: those already computed, which are kept).

    ANTs ``Similarity`` and ``Rigid`` (atlas brain mask, centre-of-mass start) from the scan's
    header and from it pitched by +-15 degrees: the similarity fit (rotation, one scale, shift)
    defines the rotation of a head of another size than the atlas's, where a rigid fit stays
    where it starts (on the MPRAGE subject, ANTs Rigid from three starts 15 degrees apart ended
    15-31 degrees apart); ANTs after ``affine_initializer``'s search over all orientations;
    posereg's VVR-Search (NMI search over 1728 starts, masked local refinement). For a whole-head
    scan (other than the head template itself), also head-to-head: ANTs ``Similarity`` of the
    whole scan to the whole-head ``HEAD_TEMPLATE`` (no mask: skull, face and neck match skull,
    face and neck) from the same three starts, composed with that template's own reference.
    """
    c = pipeline.atlas.image.centre
    candidates = dict(known)
    head_to_head = targets.head_path is not None and name.endswith("-head") and name != HEAD_TEMPLATE
    try:
        for transform, fixed, mask, then in (
            ("Similarity", targets.fixed_path, targets.mask_path, None),
            ("Rigid", targets.fixed_path, targets.mask_path, None),
            *([("Similarity", targets.head_path, None, targets.head_pose)] if head_to_head else []),
        ):
            for pitch in HEADER_PITCH_STARTS_DEG:
                key = f"ANTs {transform}{' head-to-head' if then else ''} from the header{pitch:+.0f} deg"
                if key in candidates:
                    continue
                Q = _pitch(pitch)  # the scan re-posed by Q about its centre; undo Q on the answer
                start = moved_by_header(scan, Q, torch.zeros(3, dtype=F64))
                pose = ants_registration(fixed, mask, start, c, initializer=False, transform=transform)
                if then is not None:  # atlas -> head template -> scan
                    pose = compose(pose, c, then, c)
                candidates[key] = compose((Q.T, torch.zeros(3, dtype=F64)), scan.centre, pose, c)
        if "ANTs initializer + Rigid" not in candidates:
            candidates["ANTs initializer + Rigid"] = ants_registration(targets.fixed_path, targets.mask_path, scan, c,
                                                                       initializer=True)  # fmt: skip
    except ImportError:
        pass
    if "VVR-Search (NMI, masked)" not in candidates:
        found = search_registration(pipeline.atlas, scan, coarse_metric=Metric.MATTES_MI, fixed_mask=pipeline.refine_mask)
        candidates["VVR-Search (NMI, masked)"] = (found.R, found.t)
    return candidates


def reference_pose(scan: Volume, name: str, pipeline, targets: ReferenceTargets,  # type: ignore[no-untyped-def]
                   cache: Path) -> tuple[Pose, dict[str, Pose], list[str]]:  # fmt: skip
    """The reference alignment of the unmoved scan: the consensus of the candidates.

    The largest group of candidates whose rotations agree within ``REFERENCE_AGREEMENT_DEG``
    (``registration.consensus.rotation_consensus``); the reference is its chordal mean rotation
    and mean translation. No similarity score decides: on whole heads NMI preferred upside-down
    candidates (session 8). Candidates are computed once per scan and kept in
    ``cache/references.json`` (the report and the figure use the same references).

    Returns:
        The reference, every candidate, and the names of the agreeing group.
    """
    import json

    store = cache / "references.json"
    stored = json.loads(store.read_text()) if store.is_file() else {}
    known = {k: (torch.tensor(R, dtype=F64), torch.tensor(t, dtype=F64)) for k, (R, t) in stored.get(name, {}).items()}
    candidates = reference_candidates(scan, name, pipeline, targets, known)
    if candidates.keys() != known.keys():
        stored[name] = {k: [R.tolist(), t.tolist()] for k, (R, t) in candidates.items()}
        store.write_text(json.dumps(stored, indent=1))
    reference, group = consensus_reference(candidates)
    return reference, candidates, group


def consensus_reference(candidates: dict[str, Pose]) -> tuple[Pose, list[str]]:
    """The largest group of ``candidates`` agreeing within ``REFERENCE_AGREEMENT_DEG``: its chordal
    mean rotation and mean translation, and the group's names."""
    from posereg.registration.consensus import rotation_consensus

    names = list(candidates)
    agreed = rotation_consensus(torch.stack([candidates[k][0] for k in names]), REFERENCE_AGREEMENT_DEG)
    group = [k for k in names if angle_deg(candidates[k][0], agreed.R) <= REFERENCE_AGREEMENT_DEG]
    return (agreed.R, torch.stack([candidates[k][1] for k in group]).mean(0)), group


def stored_reference(name: str, cache: Path) -> tuple[Pose, list[str]]:
    """The reference of scan ``name`` from the candidates this benchmark stored in ``cache/references.json``.

    Raises:
        FileNotFoundError: no stored candidates for the scan (run this benchmark on it first).
    """
    import json

    store = cache / "references.json"
    stored = json.loads(store.read_text()).get(name) if store.is_file() else None
    if not stored:
        raise FileNotFoundError(f"{store}: no reference candidates of {name}; run benchmarks/real_scans.py --cache {cache}")
    return consensus_reference({k: (torch.tensor(R, dtype=F64), torch.tensor(t, dtype=F64)) for k, (R, t) in stored.items()})
