"""What the Storage and Verification SCPs accept: SOP classes and transfer syntaxes.

Every storage SOP class pynetdicom knows (``AllStoragePresentationContexts``: images, SR,
presentation states, waveforms, raw data, …) plus the mammography-specific ones named
explicitly in case an older pynetdicom lacks them. Each is offered with every transfer syntax
below; the data set is stored exactly as received (no transcoding), and decoding is the
worker's business. ``docs/conformance.md`` lists the same tables.
"""

from __future__ import annotations

from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AllStoragePresentationContexts
from pynetdicom.sop_class import Verification

#: Transfer syntaxes accepted for every storage SOP class, in the acceptor's order of
#: preference: pynetdicom accepts, in each proposed presentation context, the first syntax of
#: this list that the peer proposed. Senders normally propose the syntax their file is in plus
#: uncompressed fallbacks in one context (dcmtk ``storescu -xs``/``-xw``/``-xx`` do), so
#: compressed syntaxes come first: the file is sent as it is and auto-routing never fails
#: because a sender cannot decompress. Lossless before lossy, so a sender offering both
#: compresses (if it must) without loss; uncompressed last.
STORAGE_TRANSFER_SYNTAXES: tuple[UID, ...] = (
    JPEGLosslessSV1,  # JPEG Lossless, process 14, selection value 1
    JPEGLossless,  # JPEG Lossless, process 14
    JPEGLSLossless,
    JPEG2000Lossless,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    RLELossless,
    JPEGLSNearLossless,
    JPEG2000,
    HTJ2K,
    JPEGExtended12Bit,
    JPEGBaseline8Bit,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,  # retired, still sent by old modalities
)

VERIFICATION_TRANSFER_SYNTAXES: tuple[UID, ...] = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)

#: Storage SOP classes a mammography router sends that must be accepted even if the installed
#: pynetdicom does not list them.
MAMMOGRAPHY_SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.1.2": "Digital Mammography X-Ray Image - For Presentation",
    "1.2.840.10008.5.1.4.1.1.1.2.1": "Digital Mammography X-Ray Image - For Processing",
    "1.2.840.10008.5.1.4.1.1.13.1.3": "Breast Tomosynthesis Image",
    "1.2.840.10008.5.1.4.1.1.13.1.4": "Breast Projection X-Ray Image - For Presentation",
    "1.2.840.10008.5.1.4.1.1.13.1.5": "Breast Projection X-Ray Image - For Processing",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
    "1.2.840.10008.5.1.4.1.1.88.50": "Mammography CAD SR",
    "1.2.840.10008.5.1.4.1.1.30": "Parametric Map",
    "1.2.840.10008.5.1.4.1.1.66.4": "Segmentation",
    "1.2.840.10008.5.1.4.1.1.11.1": "Grayscale Softcopy Presentation State",
}


def storage_sop_classes() -> list[str]:
    """Every storage SOP class UID accepted, without duplicates, pynetdicom's order first."""
    uids = [str(cx.abstract_syntax) for cx in AllStoragePresentationContexts]
    uids += [uid for uid in MAMMOGRAPHY_SOP_CLASSES if uid not in uids]
    return list(dict.fromkeys(uids))


VERIFICATION_SOP_CLASS = str(Verification)
