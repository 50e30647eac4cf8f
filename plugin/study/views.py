"""Mammography view and view-modifier vocabularies: CID 4014 (views) and CID 4015 (modifiers).

Each view has a short name (the one used in pairing, the index and the reports) and its codes in
the three coding schemes scanners write: SCT (SNOMED CT), SRT and SNM3 (the legacy SNOMED RT /
SNOMED 3 codes; the same values in both). Pairing matches the short name, so a view pairs only
with the same code of the other breast (CC↔CC, ML↔ML, XCCL↔XCCL, never ML↔MLO).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "MODIFIERS",
    "STANDARD_VIEWS",
    "VIEWS",
    "ViewCode",
    "modifier_name",
    "view_from_code",
    "view_from_position",
    "view_from_text",
]

ACCEPTED_SCHEMES = frozenset({"SCT", "SRT", "SNM3"})


@dataclass(frozen=True, slots=True)
class ViewCode:
    """One view of CID 4014: short name, SCT code, SRT/SNM3 code, code meaning."""

    name: str
    sct: str
    srt: str
    meaning: str


#: CID 4014 "View for Mammography".
VIEWS: tuple[ViewCode, ...] = (
    ViewCode("CC", "399162004", "R-10242", "cranio-caudal"),
    ViewCode("MLO", "399368009", "R-10226", "medio-lateral oblique"),
    ViewCode("ML", "399260004", "R-10224", "medio-lateral"),
    ViewCode("LM", "399352003", "R-10228", "latero-medial"),
    ViewCode("LMO", "399099002", "R-10230", "latero-medial oblique"),
    ViewCode("FB", "399196006", "R-10244", "caudo-cranial (from below)"),
    ViewCode("XCCL", "399192008", "R-1024A", "cranio-caudal exaggerated laterally"),
    ViewCode("XCCM", "399101009", "R-1024B", "cranio-caudal exaggerated medially"),
    ViewCode("SIO", "399188001", "R-102D0", "superolateral to inferomedial oblique"),
    ViewCode("ISO", "441555000", "R-40AAA", "inferomedial to superolateral oblique"),
    ViewCode("SPECIMEN", "127457009", "G-8310", "tissue specimen from breast"),
)

#: The four views of a standard screening exam, per breast.
STANDARD_VIEWS: tuple[str, ...] = ("CC", "MLO")

_BY_CODE: dict[str, ViewCode] = {}
for _v in VIEWS:
    _BY_CODE[_v.sct] = _v
    _BY_CODE[_v.srt] = _v
_BY_NAME = {v.name: v for v in VIEWS}

#: CID 4015 "View Modifier for Mammography": code (any scheme) → human-readable name.
MODIFIERS: dict[str, str] = {}
for _name, _sct, _srt in (
    ("spot compression", "399055006", "R-102D7"),
    ("magnification", "399163009", "R-102D6"),
    ("implant displaced", "399209000", "R-102D5"),
    ("cleavage", "399161006", "R-102D2"),
    ("axillary tail", "399011000", "R-102D1"),
    ("rolled lateral", "399197002", "R-102D3"),
    ("rolled medial", "399226006", "R-102D4"),
    ("rolled superior", "415670009", "R-102C9"),
    ("rolled inferior", "414493004", "R-102CA"),
    ("tangential", "399110001", "R-102C2"),
    ("nipple in profile", "442581004", "R-40AB3"),
    ("axillary tissue", "442580003", "R-40AB2"),
    ("anterior compression", "441752004", "P2-00161"),
    ("infra-mammary fold", "442593008", "R-40ABE"),
):
    MODIFIERS[_sct] = _name
    MODIFIERS[_srt] = _name

#: ViewPosition (0018,5101) values and vendor spellings → short view name.
_POSITION_ALIASES: dict[str, str] = {
    "CC": "CC",
    "MLO": "MLO",
    "ML": "ML",
    "LM": "LM",
    "LMO": "LMO",
    "FB": "FB",
    "XCCL": "XCCL",
    "XCC": "XCCL",  # "exaggerated CC" without a side: in practice the laterally exaggerated one
    "XCCM": "XCCM",
    "SIO": "SIO",
    "ISO": "ISO",
}

#: ViewPosition values that name a view modifier rather than a view (not usable for pairing).
POSITION_MODIFIERS: dict[str, str] = {"CV": "cleavage", "AT": "axillary tail"}


def view_from_code(value: str, scheme: str) -> ViewCode | None:
    """The CID 4014 view of one ViewCodeSequence item, or None (unknown code or scheme)."""
    if scheme.upper() not in ACCEPTED_SCHEMES:
        return None
    return _BY_CODE.get(value.strip().upper())


def modifier_name(value: str) -> str:
    """The name of a CID 4015 view modifier code (or a generic name for an unknown code)."""
    return MODIFIERS.get(value.strip().upper(), "view modifier")


def _strip_side(token: str) -> str:
    """``RCC`` → ``CC``, ``L-MLO`` → ``MLO``; tokens that are a view as written stay."""
    token = token.replace("-", "").replace("_", "").replace(" ", "")
    if token in _POSITION_ALIASES or token in POSITION_MODIFIERS:
        return token
    if token[:1] in ("L", "R") and (
        token[1:] in _POSITION_ALIASES or token[1:] in POSITION_MODIFIERS
    ):
        return token[1:]
    return token


def view_from_position(view_position: str | None) -> str | None:
    """The short view name of a ViewPosition value (vendor spellings like ``RCC`` accepted)."""
    if not view_position:
        return None
    token = _strip_side(view_position.strip().upper())
    if token in POSITION_MODIFIERS:
        return token
    return _POSITION_ALIASES.get(token)


_TOKEN = re.compile(r"[A-Z]+")
#: Views recognized in free text: only unambiguous tokens (never the 2-letter ``ML``/``LM``/``FB``,
#: which are too often other words or a dataset's spelling of MLO).
_TEXT_VIEWS = {"CC": "CC", "MLO": "MLO", "XCCL": "XCCL", "XCCM": "XCCM", "LMO": "LMO"}


def view_from_text(*texts: str | None) -> str | None:
    """A view named in SeriesDescription / ProtocolName text (``R CC``, ``LMLO``…), or None when
    no text names one or the texts name different views."""
    found: set[str] = set()
    for text in texts:
        if not text:
            continue
        for token in _TOKEN.findall(text.upper()):
            if token in _TEXT_VIEWS:
                found.add(_TEXT_VIEWS[token])
            elif token[:1] in ("L", "R") and token[1:] in _TEXT_VIEWS:
                found.add(_TEXT_VIEWS[token[1:]])
    return found.pop() if len(found) == 1 else None


def view_meaning(name: str) -> str:
    """The code meaning of a short view name (for reason texts)."""
    view = _BY_NAME.get(name)
    return view.meaning if view else name
