"""The shared job table answers: every profile is valid and gives the feature its row exists for."""

from __future__ import annotations

import pytest
from export_profiles import PROFILES, recommendation

pytestmark = pytest.mark.integration

#: what each row is in the table for (the issue-21 list); a rules change that drops it makes the row useless
_FEATURE = {
    "wrn-step": lambda r: r.schedule.name == "step",
    "efficientnet-exponential": lambda r: r.schedule.name == "exponential",
    "transformer-inverse-sqrt": lambda r: r.schedule.name == "inverse_sqrt",
    "vit-transfer": lambda r: any(g.frozen for g in r.param_groups),
    "bert-transfer": lambda r: any(g.layerwise_lr_decay for g in r.param_groups),
    "sparse-recommender": lambda r: any(g.optimizer for g in r.param_groups),
    "lstm": lambda r: r.gradient_clipping is not None,
}


@pytest.mark.parametrize("profile_id", list(PROFILES), ids=list(PROFILES))
def test_profile_answers(profile_id: str) -> None:
    rec = recommendation(profile_id)
    assert rec.optimizer.name
    check = _FEATURE.get(profile_id)
    assert check is None or check(rec), f"{profile_id} no longer exercises what its row is for"
