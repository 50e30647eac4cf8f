"""Torch datasets of pairs: target, reference (contralateral or random healthy), label, masks.

Each item is a dict of tensors (``target``, ``contralateral`` ``[1, H, W]`` float32 in [0, 1];
``target_mask``, ``contralateral_mask`` ``[1, H, W]`` 0/1; ``label``, ``contralateral_label``
int64 scalars); :func:`collate_pairs` stacks them into a :class:`~brgan_core.model.Batch`.

* :class:`PairDataset` reads :class:`~brgan_core.data.records.PairRecord` files with
  :func:`brgan_core.preprocess.preprocess` (or any ``loader(path, size)`` returning an object
  with ``.image`` and ``.mask``), optionally caching the preprocessed images in memory.
* :class:`ArrayPairDataset` wraps arrays already in memory (tests, benchmarks).

``reference = "random_healthy"`` (the CycleGAN-with-a-healthy-reference baseline): the reference
of each pair is a benign image (label 0) of *another* patient, the same view when there is one,
drawn again every epoch (:meth:`PairDataset.set_epoch`) from a generator seeded by
``(seed, epoch, index)`` so runs repeat exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from brgan_core.data.records import ImageRecord, PairRecord
from brgan_core.model import Batch

Item = dict[str, Tensor]


class Loaded(Protocol):
    image: np.ndarray
    mask: np.ndarray


Loader = Callable[[Path, tuple[int, int]], Loaded]


def preprocess_loader(path: Path, size: tuple[int, int]) -> Loaded:
    """The default loader: :func:`brgan_core.preprocess.preprocess` of a DICOM file."""
    from brgan_core.preprocess import preprocess

    return preprocess(path, size=size)


def _as_tensor(array: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).unsqueeze(0)


def _item(
    target: Tensor, reference: Tensor, t_mask: Tensor, r_mask: Tensor, label: int, r_label: int
) -> Item:
    return {
        "target": target,
        "contralateral": reference,
        "target_mask": t_mask,
        "contralateral_mask": r_mask,
        "label": torch.tensor(label, dtype=torch.long),
        "contralateral_label": torch.tensor(r_label, dtype=torch.long),
    }


class PairDataset(Dataset[Item]):
    """Pairs read from image files, preprocessed to ``size`` (rows, columns)."""

    def __init__(
        self,
        pairs: Sequence[PairRecord],
        size: tuple[int, int],
        *,
        loader: Loader | None = None,
        cache: bool = True,
        reference: str = "contralateral",
        seed: int = 0,
    ) -> None:
        if reference not in ("contralateral", "random_healthy"):
            raise ValueError(f"reference must be contralateral or random_healthy: {reference!r}")
        self.pairs = list(pairs)
        self.size = (int(size[0]), int(size[1]))
        self.loader = loader or preprocess_loader
        self.cache: dict[Path, tuple[Tensor, Tensor]] | None = {} if cache else None
        self.reference = reference
        self.seed = seed
        self.epoch = 0
        self._healthy: list[ImageRecord] = []
        if reference == "random_healthy":
            seen: dict[Path, ImageRecord] = {}
            for pair in self.pairs:
                for record in (pair.target, pair.contralateral):
                    if record.label == 0:
                        seen.setdefault(record.path, record)
            self._healthy = list(seen.values())

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        """Draw the random healthy references of ``epoch`` (no effect for contralaterals)."""
        self.epoch = epoch

    def _load(self, record: ImageRecord) -> tuple[Tensor, Tensor]:
        if self.cache is not None and record.path in self.cache:
            return self.cache[record.path]
        loaded = self.loader(record.path, self.size)
        image, mask = _as_tensor(loaded.image), _as_tensor(loaded.mask)
        if image.shape[-2:] != self.size:
            raise ValueError(f"{record.path}: loader returned {tuple(image.shape[-2:])}")
        if self.cache is not None:
            self.cache[record.path] = (image, mask)
        return image, mask

    def healthy_reference(self, index: int) -> ImageRecord:
        """The random benign image of another patient used as reference for pair ``index``."""
        target = self.pairs[index].target
        others = [r for r in self._healthy if r.patient_id != target.patient_id]
        if not others:
            raise ValueError("random_healthy reference: no benign image of another patient")
        same_view = [r for r in others if r.view == target.view] or others
        key = f"{self.seed}:{self.epoch}:{index}".encode()
        pick = int.from_bytes(hashlib.sha256(key).digest()[:8], "little") % len(same_view)
        return same_view[pick]

    def __getitem__(self, index: int) -> Item:
        pair = self.pairs[index]
        if self.reference == "contralateral":
            reference = pair.contralateral
        else:
            reference = self.healthy_reference(index)
        target, t_mask = self._load(pair.target)
        ref, r_mask = self._load(reference)
        return _item(target, ref, t_mask, r_mask, pair.label, reference.label)


class ArrayPairDataset(Dataset[Item]):
    """Pairs already in memory: arrays ``[N, H, W]`` (or ``[N, 1, H, W]``) and labels ``[N]``."""

    def __init__(
        self,
        target: Any,
        contralateral: Any,
        label: Any,
        *,
        target_mask: Any | None = None,
        contralateral_mask: Any | None = None,
        contralateral_label: Any | None = None,
    ) -> None:
        def tensor4(values: Any) -> Tensor:
            t = torch.as_tensor(np.asarray(values), dtype=torch.float32)
            return t.unsqueeze(1) if t.dim() == 3 else t

        self.target = tensor4(target)
        self.contralateral = tensor4(contralateral)
        n = self.target.shape[0]
        if self.contralateral.shape != self.target.shape:
            raise ValueError("contralateral arrays must have the target arrays' shape")
        self.label = torch.as_tensor(np.asarray(label), dtype=torch.long).reshape(n)
        ones = torch.ones_like(self.target)
        self.target_mask = ones if target_mask is None else tensor4(target_mask)
        self.contralateral_mask = (
            ones if contralateral_mask is None else tensor4(contralateral_mask)
        )
        self.contralateral_label = (
            torch.zeros(n, dtype=torch.long)
            if contralateral_label is None
            else torch.as_tensor(np.asarray(contralateral_label), dtype=torch.long).reshape(n)
        )

    def __len__(self) -> int:
        return int(self.target.shape[0])

    def set_epoch(self, epoch: int) -> None:
        """Nothing to redraw (kept for the same interface as :class:`PairDataset`)."""

    def __getitem__(self, index: int) -> Item:
        return _item(
            self.target[index],
            self.contralateral[index],
            self.target_mask[index],
            self.contralateral_mask[index],
            int(self.label[index]),
            int(self.contralateral_label[index]),
        )


def collate_pairs(items: Sequence[Item]) -> Batch:
    """Stack dataset items into a :class:`~brgan_core.model.Batch`."""
    stacked = {key: torch.stack([item[key] for item in items]) for key in items[0]}
    return Batch(
        target=stacked["target"],
        contralateral=stacked["contralateral"],
        label=stacked["label"],
        target_mask=stacked["target_mask"],
        contralateral_mask=stacked["contralateral_mask"],
        contralateral_label=stacked["contralateral_label"],
    )


def data_fingerprint(pairs: Sequence[PairRecord]) -> str:
    """sha256 over the sorted (target, reference, label) of the training pairs."""
    rows = sorted(
        f"{p.target.path}|{p.contralateral.path}|{p.label}|{p.contralateral.label}" for p in pairs
    )
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()
