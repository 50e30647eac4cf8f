"""May the model analyze an image that has no contralateral view? (issue 11 §4)

Only a model whose card says it was evaluated on images scored without one
(:func:`brgan_core.card.may_score_without_contralateral`); for every other model such an image
stays *not analyzed: no contralateral view*. The coordinator asks when it plans a study; the
worker checks again on the model it actually loaded (the active model may change between the
two), so the planner's answer is never the last word.
"""

from __future__ import annotations

from brgan_core.card import may_score_without_contralateral
from brgan_core.registry import Registry
from plugin.config import Settings


def scores_unpaired(settings: Settings) -> bool:
    """True when the model the workers will load (``model_version`` or the registry's active
    one) may score an image without a contralateral; False without a model."""
    registry = Registry(settings.registry_path)
    version = settings.model_version or registry.active_version()
    if version is None:
        return False
    return may_score_without_contralateral(registry.get(version))
