"""The preprocessing geometry: model space ↔ original stored pixels.

Preprocessing crops the stored image to the breast, reorients it (transpose, flips) and scales it
into a fixed model size with zero padding at the right and bottom. :class:`Geometry` records
that as one 3×3 affine matrix so that anything computed in model space (a CAM heatmap, a region,
a box) can be put back on the original image — which may be stored rotated (PatientOrientation
``R\\P``, PS3.3 C.7.6.1.1.1), so "undo the flip" is not enough.

Coordinates are ``(x, y) = (column, row)`` with pixel *centres* at integers (pixel ``(0, 0)``
covers ``[-0.5, 0.5)²``). Scaling maps edges to edges, so a model pixel ``x_m`` comes from content
coordinate ``(x_m + 0.5) / s - 0.5`` — the same convention Pillow's ``resize`` uses, which
:meth:`Geometry.warp` calls, so the matrix and the pixels agree.

The forward chain, original → model, is::

    crop (row0, col0) → transpose? → flip columns? → flip rows? → scale (sx, sy) → pad offset

and :attr:`Geometry.matrix` is the inverse chain, model → original.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage

__all__ = ["Geometry"]

Shape = tuple[int, int]
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Geometry:
    """How one original image became one model input (a frozen, hashable record).

    Attributes:
        original_shape: ``(rows, columns)`` of the stored image.
        model_shape: ``(rows, columns)`` of the model input.
        crop: ``(row0, col0, row1, col1)``, end-exclusive, the breast box in stored pixels.
        transpose: the cropped image was transposed (rows ↔ columns) first.
        flip_x: then its columns were reversed (left ↔ right).
        flip_y: then its rows were reversed (top ↔ bottom).
        content_shape: ``(rows, columns)`` the oriented crop was resized to (≤ model_shape).
        pad_offset: ``(x, y)`` where the content's top-left pixel sits in the model image
            (``(0, 0)``: padding at the right and bottom).
        matrix: 3×3 affine, row-major, mapping homogeneous model ``(x, y, 1)`` to original
            ``(x, y, 1)``; see :attr:`affine`.
    """

    original_shape: Shape
    model_shape: Shape
    crop: tuple[int, int, int, int]
    transpose: bool
    flip_x: bool
    flip_y: bool
    content_shape: Shape
    pad_offset: tuple[int, int] = (0, 0)
    matrix: tuple[float, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if len(self.matrix) != 9:
            raise ValueError("Geometry needs its 3x3 matrix; construct it with Geometry.build()")

    # ----------------------------------------------------------------- construction

    @classmethod
    def build(
        cls,
        original_shape: Shape,
        crop: tuple[int, int, int, int],
        model_shape: Shape,
        *,
        transpose: bool = False,
        flip_x: bool = False,
        flip_y: bool = False,
        pad_offset: tuple[int, int] = (0, 0),
    ) -> Geometry:
        """Compose crop, orientation and an aspect-preserving resize into a :class:`Geometry`.

        The oriented crop is scaled by one factor so that it fits ``model_shape`` minus the pad
        offset; the content size is rounded to whole pixels and the per-axis scale is then the
        exact ratio of sizes (so edges map to edges).

        Raises:
            ValueError: an empty or out-of-bounds crop, or a non-positive model shape.
        """
        rows, cols = (int(v) for v in original_shape)
        r0, c0, r1, c1 = (int(v) for v in crop)
        if not (0 <= r0 < r1 <= rows and 0 <= c0 < c1 <= cols):
            raise ValueError(f"crop {crop} is empty or outside the image shape {original_shape}")
        mh, mw = (int(v) for v in model_shape)
        px, py = (int(v) for v in pad_offset)
        if mh - py < 1 or mw - px < 1 or px < 0 or py < 0:
            raise ValueError(f"model shape {model_shape} with pad offset {pad_offset} is empty")
        h, w = r1 - r0, c1 - c0
        if transpose:
            h, w = w, h
        scale = min((mh - py) / h, (mw - px) / w)
        ch = min(mh - py, max(1, round(h * scale)))
        cw = min(mw - px, max(1, round(w * scale)))
        sx, sy = cw / w, ch / h

        # model -> oriented content: undo pad, undo scale (edge-aligned pixel centres)
        m = np.array(
            [
                [1.0 / sx, 0.0, (0.5 - px) / sx - 0.5],
                [0.0, 1.0 / sy, (0.5 - py) / sy - 0.5],
                [0.0, 0.0, 1.0],
            ]
        )
        if flip_x:
            m = np.array([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ m
        if flip_y:
            m = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, h - 1.0], [0.0, 0.0, 1.0]]) @ m
        if transpose:
            m = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]) @ m
        m = np.array([[1.0, 0.0, c0], [0.0, 1.0, r0], [0.0, 0.0, 1.0]]) @ m
        return cls(
            original_shape=(rows, cols),
            model_shape=(mh, mw),
            crop=(r0, c0, r1, c1),
            transpose=bool(transpose),
            flip_x=bool(flip_x),
            flip_y=bool(flip_y),
            content_shape=(ch, cw),
            pad_offset=(px, py),
            matrix=tuple(float(v) for v in m.ravel()),
        )

    # ----------------------------------------------------------------- matrices

    @property
    def affine(self) -> np.ndarray:
        """The 3×3 model → original matrix (a fresh array)."""
        return np.array(self.matrix, dtype=np.float64).reshape(3, 3)

    @property
    def inverse(self) -> np.ndarray:
        """The 3×3 original → model matrix."""
        return np.linalg.inv(self.affine)

    # ----------------------------------------------------------------- points and boxes

    def to_original(self, points: np.ndarray | list | tuple) -> np.ndarray:
        """Map ``(x, y)`` model points (shape ``(2,)`` or ``(N, 2)``) to stored-pixel points."""
        return _apply(self.affine, points)

    def to_model(self, points: np.ndarray | list | tuple) -> np.ndarray:
        """Map ``(x, y)`` stored-pixel points (shape ``(2,)`` or ``(N, 2)``) to model points."""
        return _apply(self.inverse, points)

    def box_to_original(self, box: Box) -> Box:
        """Map an end-exclusive pixel box ``(x0, y0, x1, y1)`` from model to original pixels.

        The box's pixel *edges* are mapped, so a box covering model pixels ``x0…x1-1`` becomes
        the box covering the original pixels under them, whatever flips or transposes apply.
        """
        return _map_box(self.affine, box)

    def box_to_model(self, box: Box) -> Box:
        """Map an end-exclusive pixel box ``(x0, y0, x1, y1)`` from original to model pixels."""
        return _map_box(self.inverse, box)

    # ----------------------------------------------------------------- pixels

    def warp(self, image: np.ndarray) -> np.ndarray:
        """Apply crop → orientation → resize → zero padding to a stored-frame image.

        Resizing uses Pillow's bilinear filter on float32 (it widens its support when shrinking,
        so large reductions average instead of alias).

        Returns:
            float32 array of :attr:`model_shape`, zero in the padding.
        """
        arr = np.asarray(image, dtype=np.float32)
        if arr.shape != self.original_shape:
            raise ValueError(f"image shape {arr.shape} is not the original {self.original_shape}")
        r0, c0, r1, c1 = self.crop
        arr = arr[r0:r1, c0:c1]
        if self.transpose:
            arr = arr.T
        if self.flip_x:
            arr = arr[:, ::-1]
        if self.flip_y:
            arr = arr[::-1, :]
        ch, cw = self.content_shape
        if arr.shape != (ch, cw):
            pil = Image.fromarray(np.ascontiguousarray(arr), mode="F")
            arr = np.asarray(pil.resize((cw, ch), Image.Resampling.BILINEAR), dtype=np.float32)
        out = np.zeros(self.model_shape, dtype=np.float32)
        px, py = self.pad_offset
        out[py : py + ch, px : px + cw] = arr
        return out

    def heatmap_to_original(self, heatmap: np.ndarray, order: int = 1) -> np.ndarray:
        """Put a model-space map back on the original image.

        ``heatmap`` may have the model shape or any coarser shape covering the same model
        field of view (a CAM of 16×13 for a 512×416 input); it is sampled with spline
        ``order`` (0 nearest, 1 linear). Pixels outside the breast crop are zero.

        Returns:
            float32 array of :attr:`original_shape`.
        """
        hm = np.asarray(heatmap, dtype=np.float64)
        if hm.ndim != 2:
            raise ValueError(f"heatmap must be 2-D, not shape {hm.shape}")
        r0, c0, r1, c1 = self.crop
        # original (x, y) -> model (x, y) -> heatmap (x, y); all axis-aligned affine maps
        inv = self.inverse
        kh = hm.shape[0] / self.model_shape[0]
        kw = hm.shape[1] / self.model_shape[1]
        to_heat = np.array([[kw, 0.0, 0.5 * kw - 0.5], [0.0, kh, 0.5 * kh - 0.5], [0, 0, 1.0]])
        shift = np.array([[1.0, 0.0, c0], [0.0, 1.0, r0], [0.0, 0.0, 1.0]])
        a = to_heat @ inv @ shift  # crop-local original (x, y) -> heatmap (x, y)
        # scipy works in (row, col): swap the axes of both sides
        swap = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        a_rc = swap @ a @ swap
        local = ndimage.affine_transform(
            hm,
            a_rc[:2, :2],
            offset=a_rc[:2, 2],
            output_shape=(r1 - r0, c1 - c0),
            order=order,
            mode="nearest",
        )
        out = np.zeros(self.original_shape, dtype=np.float32)
        out[r0:r1, c0:c1] = local
        return out


def _apply(matrix: np.ndarray, points: np.ndarray | list | tuple) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    single = pts.ndim == 1
    pts = np.atleast_2d(pts)
    if pts.shape[-1] != 2:
        raise ValueError(f"points must have shape (2,) or (N, 2), not {np.shape(points)}")
    out = pts @ matrix[:2, :2].T + matrix[:2, 2]
    return out[0] if single else out


def _map_box(matrix: np.ndarray, box: Box) -> Box:
    x0, y0, x1, y1 = (float(v) for v in box)
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]]) - 0.5
    mapped = _apply(matrix, corners) + 0.5
    lo, hi = mapped.min(axis=0), mapped.max(axis=0)
    return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
