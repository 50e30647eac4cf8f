"""Breast and exam scores (DESIGN.md step 6): breast = max of its images, exam = max of breasts."""

from __future__ import annotations

from plugin.worker.analysis import aggregate


def test_breast_and_exam_are_maxima() -> None:
    images = [
        {"laterality": "L", "p_malignant": 0.2},
        {"laterality": "L", "p_malignant": 0.7},
        {"laterality": "R", "p_malignant": 0.1},
    ]
    breasts, exam = aggregate(images)
    assert breasts == {"L": 0.7, "R": 0.1}
    assert exam == 0.7


def test_unscored_breast_stays_none() -> None:
    breasts, exam = aggregate([{"laterality": "R", "p_malignant": 0.3}])
    assert breasts == {"L": None, "R": 0.3}
    assert exam == 0.3
    assert aggregate([]) == ({"L": None, "R": None}, None)
