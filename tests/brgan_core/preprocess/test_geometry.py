"""Geometry: model space <-> stored pixels, exact to one pixel (hypothesis property tests)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brgan_core.preprocess import Geometry


@st.composite
def geometries(draw: st.DrawFn) -> Geometry:
    rows = draw(st.integers(4, 160))
    cols = draw(st.integers(4, 160))
    r0 = draw(st.integers(0, rows - 2))
    r1 = draw(st.integers(r0 + 2, rows))
    c0 = draw(st.integers(0, cols - 2))
    c1 = draw(st.integers(c0 + 2, cols))
    model = (draw(st.integers(8, 120)), draw(st.integers(8, 120)))
    return Geometry.build(
        (rows, cols),
        (r0, c0, r1, c1),
        model,
        transpose=draw(st.booleans()),
        flip_x=draw(st.booleans()),
        flip_y=draw(st.booleans()),
        pad_offset=(draw(st.integers(0, 3)), draw(st.integers(0, 3))),
    )


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(geometries(), st.lists(st.tuples(st.floats(-50, 250), st.floats(-50, 250)), min_size=1))
def test_points_round_trip(geom: Geometry, points: list[tuple[float, float]]) -> None:
    pts = np.array(points)
    np.testing.assert_allclose(geom.to_original(geom.to_model(pts)), pts, atol=1e-6)
    np.testing.assert_allclose(geom.to_model(geom.to_original(pts)), pts, atol=1e-6)


def _pixel(geom: Geometry) -> tuple[float, float]:
    """One model pixel, in original pixels (the coarser of the two grids)."""
    m = geom.affine[:2, :2]
    return max(1.0, float(np.abs(m).sum(axis=1).max()))


@FAST
@given(geometries())
def test_warp_matches_the_matrix(geom: Geometry) -> None:
    """Warping coordinate ramps puts at every model pixel the original position the matrix says."""
    rows, cols = geom.original_shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    wx, wy = geom.warp(xx), geom.warp(yy)
    px, py = geom.pad_offset
    ch, cw = geom.content_shape
    my, mx = np.mgrid[py : py + ch, px : px + cw]
    expected = geom.to_original(np.stack([mx.ravel(), my.ravel()], axis=1).astype(float))
    got = np.stack([wx[my, mx].ravel(), wy[my, mx].ravel()], axis=1)
    assert np.abs(got - expected).max() <= _pixel(geom) + 1e-3
    # padding stays zero
    pad = np.ones(geom.model_shape, dtype=bool)
    pad[py : py + ch, px : px + cw] = False
    assert not wx[pad].any()


@FAST
@given(geometries(), st.sampled_from([0, 1]))
def test_heatmap_back_on_original(geom: Geometry, order: int) -> None:
    """A model-space ramp mapped back gives each original pixel its model coordinate."""
    mh, mw = geom.model_shape
    ramp_x = np.tile(np.arange(mw, dtype=np.float64), (mh, 1))
    back = geom.heatmap_to_original(ramp_x, order=order)
    r0, c0, r1, c1 = geom.crop
    yy, xx = np.mgrid[r0:r1, c0:c1]
    model = geom.to_model(np.stack([xx.ravel(), yy.ravel()], axis=1).astype(float))
    px, _ = geom.pad_offset
    expected = np.clip(model[:, 0], px, px + geom.content_shape[1] - 1)
    assert np.abs(back[r0:r1, c0:c1].ravel() - expected).max() <= 1.0 + 1e-6
    outside = np.ones(geom.original_shape, dtype=bool)
    outside[r0:r1, c0:c1] = False
    assert not back[outside].any()


@FAST
@given(geometries(), st.integers(0, 60), st.integers(0, 60), st.integers(1, 40), st.integers(1, 40))
def test_box_round_trip(geom: Geometry, x0: int, y0: int, w: int, h: int) -> None:
    box = (x0, y0, x0 + w, y0 + h)
    np.testing.assert_allclose(geom.box_to_model(geom.box_to_original(box)), box, atol=1e-6)


def test_heatmap_of_coarser_shape_covers_the_model() -> None:
    geom = Geometry.build((100, 80), (10, 0, 90, 60), (64, 52), flip_x=True)
    cam = np.zeros((8, 13))
    cam[:, 0] = 1.0  # model columns 0-3: chest wall side, original columns 55-59 after the flip
    back = geom.heatmap_to_original(cam, order=0)
    assert back.shape == (100, 80)
    assert back[10:90, 56:60].min() == 1.0 and back[10:90, :50].max() == 0.0
    assert back[:10].max() == 0.0 and back[:, 60:].max() == 0.0


def test_flip_maps_end_exclusive_boxes() -> None:
    geom = Geometry.build((10, 10), (0, 0, 10, 10), (10, 10), flip_x=True)
    assert geom.box_to_original((0, 0, 3, 10)) == pytest.approx((7, 0, 10, 10))


def test_bad_crop_is_refused() -> None:
    with pytest.raises(ValueError, match="crop"):
        Geometry.build((10, 10), (5, 5, 5, 9), (8, 8))
    with pytest.raises(ValueError, match="build"):
        Geometry((10, 10), (8, 8), (0, 0, 10, 10), False, False, False, (8, 8))


def test_geometry_is_frozen_and_hashable() -> None:
    geom = Geometry.build((10, 20), (0, 0, 10, 20), (8, 8), transpose=True)
    hash(geom)
    with pytest.raises(AttributeError):
        geom.flip_x = True  # type: ignore[misc]
