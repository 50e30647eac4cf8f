"""DICOM pixel data to a display image in [0, 1].

The grayscale pipeline of DICOM PS3.3, applied in the standard's order:

1. decode the stored pixel data (uncompressed, RLE, JPEG Lossless, JPEG 2000 — pydicom 3 with
   the pylibjpeg plugins);
2. Modality LUT (PS3.3 C.11.1): Modality LUT Sequence or Rescale Slope/Intercept, via
   :func:`pydicom.pixels.apply_modality_lut`;
3. VOI LUT (PS3.3 C.11.2): the *first* VOI LUT Sequence item when present, else the *first*
   Window Center/Width pair with the VOI LUT Function (LINEAR, LINEAR_EXACT or SIGMOID,
   C.11.2.1.2 and C.11.2.1.3); with neither, the minimum/maximum of the image's modality
   values (after step 2) are stretched to [0, 1];
4. MONOCHROME1 inversion (PS3.3 C.7.6.3.1.2) so that 1.0 is always bright (more attenuation).

Only single-frame, one-sample grayscale images are accepted (the mammography image module,
PS3.3 C.8.11.7, is single frame). A multi-frame image is refused with a :class:`DecodeError`
rather than silently using its first frame: a multi-frame "mammogram" is tomosynthesis or a
derived object, which BR-GAN is not meant to read.

Every failure — not DICOM, no pixel data, truncated pixel data, a transfer syntax no installed
decoder handles — raises :class:`~brgan_core.errors.DecodeError` naming the file and the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi

from brgan_core.errors import DecodeError

__all__ = ["read_dataset", "to_display", "window"]

_VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


def read_dataset(path: str | Path) -> Dataset:
    """Read a DICOM file (header and pixel data, not yet decoded).

    Raises:
        DecodeError: the file is missing, unreadable or not DICOM.
    """
    path = Path(path)
    try:
        return pydicom.dcmread(path)
    except FileNotFoundError:
        raise DecodeError(path, "file not found") from None
    except IsADirectoryError:
        raise DecodeError(path, "is a folder, not a DICOM file") from None
    except InvalidDicomError as exc:
        raise DecodeError(path, f"not a DICOM file ({_first_line(exc)})") from None
    except PermissionError:
        raise DecodeError(path, "permission denied") from None
    except Exception as exc:  # any parser failure on a damaged header: one error type for callers
        raise DecodeError(path, f"unreadable DICOM header ({_describe(exc)})") from None


def to_display(ds: Dataset, source: str | Path | None = None) -> np.ndarray:
    """Decode a single-frame grayscale image into display values in [0, 1] (float32).

    Applies the Modality LUT (PS3.3 C.11.1), the VOI LUT as the file gives it (C.11.2; first
    VOI LUT Sequence item, else first window with its VOI LUT Function, else min/max stretch) and
    MONOCHROME1 inversion (C.7.6.3.1.2). The result is bright where attenuation is high.

    Args:
        ds: the dataset, with its pixel data.
        source: what to name in errors (a file path); defaults to ``ds.filename`` or "dataset".

    Raises:
        DecodeError: no pixel data, unsupported layout or transfer syntax, truncated data.
    """
    src = _source_name(ds, source)
    try:
        _check_image(ds, src)
    except DecodeError:
        raise
    except Exception as exc:  # a damaged value in the image pixel module
        raise DecodeError(src, f"invalid image pixel attributes ({_describe(exc)})") from None
    stored = _decode(ds, src)
    try:
        modality = np.asarray(apply_modality_lut(stored, ds))
        display = _apply_voi(modality, ds, src)
    except DecodeError:
        raise
    except Exception as exc:  # e.g. a LUT Descriptor that does not match its LUT Data
        raise DecodeError(src, f"invalid Modality/VOI LUT attributes ({_describe(exc)})") from None
    if _inverted(ds):
        display = 1.0 - display
    display = np.clip(display, 0.0, 1.0).astype(np.float32, copy=False)
    if not np.isfinite(display).all():
        raise DecodeError(src, "pixel values are not finite after the Modality/VOI LUT")
    return display


def window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """Apply a VOI window (PS3.3 C.11.2.1.2 LINEAR, C.11.2.1.3 LINEAR_EXACT and SIGMOID).

    The output range is [0, 1] instead of the standard's ``y_min``…``y_max``.

    Raises:
        ValueError: a width the function does not allow (LINEAR needs ≥ 1, others > 0) or an
            unknown function name.
    """
    x = np.asarray(values, dtype=np.float64)
    function = (function or "LINEAR").strip().upper()
    if function == "LINEAR":
        if width < 1:
            raise ValueError(f"Window Width {width} < 1 is not allowed for LINEAR")
        c, w = center - 0.5, width - 1.0
        if w == 0:  # width 1: a pure threshold at c
            return (x > c).astype(np.float64)
        return np.clip((x - c) / w + 0.5, 0.0, 1.0)
    if function == "LINEAR_EXACT":
        if width <= 0:
            raise ValueError(f"Window Width {width} must be > 0 for LINEAR_EXACT")
        return np.clip((x - center) / width + 0.5, 0.0, 1.0)
    if function == "SIGMOID":
        if width <= 0:
            raise ValueError(f"Window Width {width} must be > 0 for SIGMOID")
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    raise ValueError(f"unknown VOI LUT Function {function!r} (expected one of {_VOI_FUNCTIONS})")


# --------------------------------------------------------------------------- helpers


def _source_name(ds: Dataset, source: str | Path | None) -> str:
    if source is not None:
        return str(source)
    filename = getattr(ds, "filename", None)
    return str(filename) if isinstance(filename, str | Path) and str(filename) else "dataset"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())[:400]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _transfer_syntax(ds: Dataset) -> tuple[str, str]:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid is None:
        return "unknown transfer syntax", ""
    return (uid.name or "unknown transfer syntax"), str(uid)


def _check_image(ds: Dataset, src: str) -> None:
    """Refuse what is not a single-frame grayscale image before touching pixel data."""
    if "PixelData" not in ds:
        other = [k for k in ("FloatPixelData", "DoubleFloatPixelData") if k in ds]
        sop = ds.get("SOPClassUID")
        what = f"SOP class {sop.name} ({sop})" if sop is not None else "no SOP class"
        if other:
            raise DecodeError(src, f"{other[0]} is not supported, only integer Pixel Data")
        raise DecodeError(src, f"no Pixel Data (7FE0,0010): not an image ({what})")
    missing = [k for k in ("Rows", "Columns", "BitsAllocated") if k not in ds]
    if missing:
        raise DecodeError(src, f"image pixel module incomplete: missing {', '.join(missing)}")
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DecodeError(
            src,
            f"not a grayscale image (Photometric Interpretation {photometric or 'missing'}, "
            f"{samples} samples per pixel); only MONOCHROME1/MONOCHROME2 are supported",
        )
    frames = ds.get("NumberOfFrames", 1)
    try:
        n_frames = int(frames or 1)
    except (TypeError, ValueError):
        n_frames = 1
    if n_frames > 1:
        raise DecodeError(
            src,
            f"multi-frame image ({n_frames} frames, e.g. tomosynthesis) is not supported; "
            "BR-GAN reads single-frame 2D mammograms",
        )


def _decode(ds: Dataset, src: str) -> np.ndarray:
    name, uid = _transfer_syntax(ds)
    try:
        arr = ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        text = _first_line(exc).replace(
            "Unable to decode as exceptions were raised by all available plugins:", "decoders:"
        )
        raise DecodeError(
            src, f"transfer syntax {name} ({uid}) could not be decoded; {text}"
        ) from None
    except (ValueError, EOFError, TypeError, KeyError, AttributeError, OSError) as exc:
        text = _first_line(exc)
        lowered = text.lower()
        if isinstance(exc, EOFError) or any(
            k in lowered for k in ("less than expected", "length", "truncat")
        ):
            reason = f"pixel data truncated or wrong length ({text})"
        else:
            reason = f"pixel data could not be read ({name}, {uid}): {text}"
        raise DecodeError(src, reason) from None
    except Exception as exc:  # whatever a codec plugin raises on corrupt data
        raise DecodeError(
            src, f"pixel data could not be decoded ({name}, {uid}): {_describe(exc)}"
        ) from None
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise DecodeError(src, f"decoded pixel array has shape {arr.shape}, expected 2-D")
    if arr.size == 0:
        raise DecodeError(src, "image has no pixels (Rows or Columns is 0)")
    return arr


def _apply_voi(values: np.ndarray, ds: Dataset, src: str) -> np.ndarray:
    """VOI LUT (C.11.2) to [0, 1]: LUT sequence, else window, else min/max stretch."""
    seq = ds.get("VOILUTSequence")
    if seq:
        item: Any = seq[0]
        bits = int(item.LUTDescriptor[2])
        ints = np.rint(values).astype(np.int64) if values.dtype.kind == "f" else values
        out = np.asarray(apply_voi(ints, ds, index=0), dtype=np.float64)
        top = float(2**bits - 1)
        return out / max(top, float(out.max()), 1.0)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        center = _first_value(ds["WindowCenter"].value)
        width = _first_value(ds["WindowWidth"].value)
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR")
        try:
            return window(values, center, width, function)
        except ValueError as exc:
            raise DecodeError(src, f"cannot apply the VOI window: {exc}") from None
    x = values.astype(np.float64, copy=False)
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros_like(x)
    return (x - lo) / (hi - lo)


def _first_value(value: Any) -> float:
    if isinstance(value, list | tuple | pydicom.multival.MultiValue):
        value = value[0]
    return float(value)


def _inverted(ds: Dataset) -> bool:
    """MONOCHROME1 (C.7.6.3.1.2) or Presentation LUT Shape INVERSE: invert once, never twice.

    The mammography image module (C.8.11.7) pairs MONOCHROME1 with Presentation LUT Shape
    INVERSE; both describe the same inversion, so they are not applied twice.
    """
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper()
    return photometric == "MONOCHROME1" or shape == "INVERSE"
