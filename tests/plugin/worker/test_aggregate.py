"""Breast and exam scores (DESIGN.md step 6): breast = max of its images, exam = max of breasts."""

from __future__ import annotations

from plugin.queue.contract import ImageScore
from plugin.worker.analysis import aggregate


def _image(side: str, p: float) -> ImageScore:
    return ImageScore("1.1", "1.2", side, "CC", p, None, None, None)


def test_breast_and_exam_are_maxima() -> None:
    images = [_image("L", 0.2), _image("L", 0.7), _image("R", 0.1)]
    breasts, exam = aggregate(images)
    assert breasts == {"L": 0.7, "R": 0.1}
    assert exam == 0.7


def test_unscored_breast_stays_none() -> None:
    breasts, exam = aggregate([_image("R", 0.3)])
    assert breasts == {"L": None, "R": 0.3}
    assert exam == 0.3
    assert aggregate([]) == ({"L": None, "R": None}, None)
