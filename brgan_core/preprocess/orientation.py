"""Canonical orientation: chest wall on the left, left and right breasts overlay.

Canonical frame (what the model sees):

* columns (``+x``) run toward **A**nterior: the chest wall is at column 0, the nipple points
  right. Right breasts are therefore mirrored relative to the usual hanging, so that the left
  and right images of one patient overlay — BR-GAN compares them position by position.
* rows (``+y``) run toward **F**oot for MLO/ML-type views (the other axis letter is H or F),
  and toward **medial** for CC-type views (the other axis letter is L or R): ``R`` for a left
  breast, ``L`` for a right breast.

Rules, in order (the one used is recorded as ``rule``):

``patient_orientation``
    PatientOrientation (0020,0020), PS3.3 C.7.6.1.1.1: value 1 is the direction of the rows
    (increasing column index), value 2 the direction of the columns (increasing row index); the
    first letter of a value is its principal direction (``FL`` counts as ``F``). The axis whose
    letter is A or P becomes the columns (a transpose when it is value 2, as in ``R\\P``), then
    flips make it run toward A and the other axis toward F or medial. With a L/R second axis and
    unknown laterality the vertical direction is left as stored.
``mask``
    PatientOrientation missing or unusable: the chest wall is the left/right image edge the
    breast mask touches more (ties: the side nearer the mask's centre of mass); the image is
    mirrored if it is on the right. Vertical direction left as stored.
``as_stored``
    neither rule could decide (no orientation, empty mask): nothing is changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Orientation", "canonical_orientation", "parse_patient_orientation"]

_AXIS = {"A": "AP", "P": "AP", "L": "LR", "R": "LR", "H": "HF", "F": "HF"}
_MEDIAL = {"L": "R", "R": "L"}


@dataclass(frozen=True)
class Orientation:
    """What to do to the stored (cropped) image: transpose first, then flips.

    Attributes:
        transpose: swap rows and columns.
        flip_x: then reverse the columns.
        flip_y: then reverse the rows.
        rule: ``patient_orientation``, ``mask`` or ``as_stored`` (see the module doc).
        detail: a short human-readable note, e.g. ``R\\P -> transpose, flip x``.
    """

    transpose: bool
    flip_x: bool
    flip_y: bool
    rule: str
    detail: str = ""


def parse_patient_orientation(value: object) -> tuple[str, str] | None:
    """The principal letters of PatientOrientation, e.g. ``['P', 'FL'] -> ('P', 'F')``.

    Returns ``None`` for a missing, empty or malformed value (not two values, unknown letters,
    both axes the same anatomical axis).
    """
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.split("\\")
    else:
        try:
            parts = [str(p) for p in value]  # type: ignore[union-attr]
        except TypeError:
            return None
    if len(parts) != 2:
        return None
    letters = tuple(p.strip().upper()[:1] for p in parts)
    if any(c not in _AXIS for c in letters):
        return None
    if _AXIS[letters[0]] == _AXIS[letters[1]]:
        return None
    return letters[0], letters[1]


def canonical_orientation(
    patient_orientation: object,
    laterality: str | None,
    mask: np.ndarray | None = None,
) -> Orientation:
    """Decide transpose/flips that bring a stored image into the canonical frame.

    Args:
        patient_orientation: PatientOrientation value (``['A', 'R']``, ``"R\\P"``) or ``None``.
        laterality: ``"L"``, ``"R"`` or ``None`` (only needed for a L/R vertical axis).
        mask: the breast mask in the stored frame, for the fallback rule.
    """
    parsed = parse_patient_orientation(patient_orientation)
    if parsed is not None and "AP" in (_AXIS[parsed[0]], _AXIS[parsed[1]]):
        return _from_patient_orientation(parsed, (laterality or "").upper() or None)
    if mask is not None:
        found = _from_mask(np.asarray(mask, dtype=bool))
        if found is not None:
            return found
    return Orientation(False, False, False, "as_stored", "no usable PatientOrientation or mask")


def _from_patient_orientation(letters: tuple[str, str], laterality: str | None) -> Orientation:
    row_dir, col_dir = letters
    transpose = _AXIS[row_dir] != "AP"
    x_letter, y_letter = (col_dir, row_dir) if transpose else (row_dir, col_dir)
    flip_x = x_letter == "P"
    steps = ["transpose"] if transpose else []
    if flip_x:
        steps.append("flip x")
    if _AXIS[y_letter] == "HF":
        flip_y = y_letter == "H"
        target = "F"
    elif laterality in _MEDIAL:
        target = _MEDIAL[laterality]
        flip_y = y_letter != target
    else:
        flip_y = False
        target = ""
        steps.append("vertical as stored (laterality unknown)")
    if flip_y:
        steps.append("flip y")
    detail = f"{row_dir}\\{col_dir} -> " + (", ".join(steps) if steps else "no change")
    if target:
        detail += f" (rows toward {target})"
    return Orientation(transpose, flip_x, flip_y, "patient_orientation", detail)


def _from_mask(mask: np.ndarray) -> Orientation | None:
    if mask.ndim != 2 or not mask.any():
        return None
    cols = mask.shape[1]
    band = max(1, cols // 50)
    left = int(mask[:, :band].sum())
    right = int(mask[:, -band:].sum())
    if left == right:
        centre = float(np.nonzero(mask)[1].mean())
        flip = centre > (cols - 1) / 2
        why = "centre of mass"
    else:
        flip = right > left
        why = "edge contact"
    side = "right" if flip else "left"
    detail = f"chest wall on the {side} by {why}" + (" -> flip x" if flip else "")
    return Orientation(False, flip, False, "mask", detail)
