"""May the model analyze an image that has no contralateral view? (issue 11 §4)

Only a model whose card says it was evaluated on images scored without one
(:func:`brgan_core.card.may_score_without_contralateral`); for every other model such an image
stays *not analyzed: no contralateral view*. The coordinator asks when it plans a study and the
dispatcher again when it queues it (the active model may change in between: a plan made for
the other rule is re-made); the worker checks the model it actually loaded, last.
"""

from __future__ import annotations

from brgan_core.card import may_score_without_contralateral
from brgan_core.checkpoint import read_info
from brgan_core.registry import Registry
from plugin.config import Settings


def version_scores_unpaired(registry: Registry, version: str) -> bool:
    """True when registered ``version``'s card allows scoring an image alone (its metadata is
    read from the checkpoint header: cheap, no tensors)."""
    entry = registry.get(version)
    return may_score_without_contralateral(read_info(registry.root / entry.file))


def scores_unpaired(settings: Settings) -> bool:
    """True when the model the workers will load (``model_version`` or the registry's active
    one) may score an image without a contralateral; False without a model."""
    registry = Registry(settings.registry_path)
    version = settings.model_version or registry.active_version()
    if version is None:
        return False
    return version_scores_unpaired(registry, version)
