from __future__ import annotations

import numpy as np
import pytest

from brgan_core.evaluation.localization import box_iou, cam_to_box, localization_error


def _cam(shape: tuple[int, int] = (10, 12)) -> np.ndarray:
    cam = np.zeros(shape)
    cam[2:5, 5:9] = 1.0  # the peak region: rows 2–4, columns 5–8
    cam[3, 6] = 2.0
    cam[8, 0:3] = 1.5  # a separate, weaker-than-peak but above-threshold blob
    return cam


def test_box_of_the_connected_region_around_the_peak() -> None:
    assert cam_to_box(_cam()) == (5.0, 2.0, 9.0, 5.0)
    assert cam_to_box(_cam(), fraction=0.6) == (6.0, 3.0, 7.0, 4.0)  # only the peak cell


def test_four_connectivity_like_the_service_region() -> None:
    cam = np.zeros((5, 5))
    cam[1, 1] = 1.0
    cam[2, 2] = 0.9  # diagonal only: a separate region
    cam[1, 0] = 0.8  # edge neighbour: same region
    assert cam_to_box(cam) == (0.0, 1.0, 2.0, 2.0)


def test_box_scaled_to_the_image() -> None:
    cam = np.zeros((4, 4))
    cam[1, 2] = 1.0
    assert cam_to_box(cam, image_shape=(40, 80)) == (40.0, 10.0, 60.0, 20.0)


def test_flat_or_invalid_cam() -> None:
    assert cam_to_box(np.ones((3, 3))) is None
    assert cam_to_box(np.full((3, 3), np.nan)) is None
    with pytest.raises(ValueError, match="H×W"):
        cam_to_box(np.ones(3))
    with pytest.raises(ValueError, match="fraction"):
        cam_to_box(np.ones((2, 2)), fraction=0)


def test_negative_cam_values_do_not_matter() -> None:
    assert cam_to_box(_cam() - 5.0) == cam_to_box(_cam())


def test_iou_hand_computed() -> None:
    assert box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    assert box_iou((0, 0, 2, 2), (0, 0, 2, 2)) == 1.0
    assert box_iou((0, 0, 1, 1), (1, 1, 2, 2)) == 0.0
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def _point_cam(row: int, col: int) -> np.ndarray:
    cam = np.zeros((10, 10))
    cam[row, col] = 1.0
    return cam


def test_top1_error_with_and_without_the_class_condition() -> None:
    gt = [(0.0, 0.0, 2.0, 2.0)]
    cams = [
        _point_cam(0, 0),  # malignant, localized, classified malignant
        _point_cam(1, 1),  # malignant, localized, but classified benign
        _point_cam(8, 8),  # malignant, wrong place
        _point_cam(0, 0),  # benign: not evaluated
        _point_cam(0, 0),  # malignant without a ground-truth box: skipped
    ]
    boxes = [gt, gt, gt, [], []]
    y_true, y_pred = [1, 1, 1, 0, 1], [1, 0, 1, 1, 1]
    top1 = localization_error(cams, boxes, y_true, y_pred)
    assert (top1.localized, top1.evaluated, top1.skipped_no_box) == (1, 3, 1)
    assert top1.error == pytest.approx(2 / 3)
    known = localization_error(cams, boxes, y_true, require_correct_class=False)
    assert known.error == pytest.approx(1 / 3) and known.localized == 2


def test_iou_threshold_is_inclusive() -> None:
    # predicted box (0,0,1,1) vs ground truth (0,0,1,10): IoU exactly 0.1
    result = localization_error(
        [_point_cam(0, 0)], [[(0.0, 0.0, 1.0, 10.0)]], [1], require_correct_class=False
    )
    assert result.error == 0.0
    stricter = localization_error(
        [_point_cam(0, 0)],
        [[(0.0, 0.0, 1.0, 10.0)]],
        [1],
        iou_threshold=0.11,
        require_correct_class=False,
    )
    assert stricter.error == 1.0


def test_best_of_several_ground_truth_boxes_and_image_shapes() -> None:
    boxes = [[(0.0, 0.0, 10.0, 10.0), (80.0, 80.0, 100.0, 100.0)]]
    result = localization_error([_point_cam(9, 9)], boxes, [1], [1], image_shapes=[(100, 100)])
    assert result.error == 0.0  # CAM cell (9, 9) is pixels 90–100, inside the second box


def test_refuses_inconsistent_input() -> None:
    with pytest.raises(ValueError, match="needs y_pred"):
        localization_error([_point_cam(0, 0)], [[(0, 0, 1, 1)]], [1])
    with pytest.raises(ValueError, match="differ"):
        localization_error([_point_cam(0, 0)], [], [1], [1])
    with pytest.raises(ValueError, match="no malignant image"):
        localization_error([_point_cam(0, 0)], [[(0, 0, 1, 1)]], [0], [0])


def test_same_box_as_the_service_region() -> None:
    """The metric scores the region the service reports (brgan_core.inference.region_box)."""
    inference = pytest.importorskip("brgan_core.inference")
    rng = np.random.default_rng(0)
    for _ in range(20):
        cam = rng.random((12, 9)) ** 3
        assert cam_to_box(cam) == tuple(float(v) for v in inference.region_box(cam))
