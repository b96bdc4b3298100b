"""Schema of `layerwise` (search=layerwise, `rewardsoup.sweep.layerwise`): TIES coefficients per (member, layer
group) learned by gradient on val. Values and their reasons are in conf/search/layerwise.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict

from omegaconf import MISSING

from rewardsoup.core.config import at_least_one, checked, finite, one_of, within

STARTS = ("best", "equal")  # best: the ledger's picked trial (weights, density); equal: merge.weights, merge.density


@dataclass
class LayerwiseConfig:
    """How the per-layer coefficients are grouped, started, trained and stopped."""

    start: str = checked(check=one_of(*STARTS))  # where the coefficients start
    blocks_per_group: int = checked(check=at_least_one)  # transformer blocks sharing one coefficient per member
    # group name -> regex over tensor names, before the default grouping (embed / blocks / norm / head)
    groups: Dict[str, str] = field(default_factory=dict)
    init: Dict[str, float] = checked(factory=dict, each=finite)  # member -> starting weight (overrides `start`)
    steps: int = checked(check=at_least_one)  # optimizer steps on the fit part of val
    batch_rows: int = checked(check=at_least_one)  # rows per dataset per step
    lr: float = checked(check=within(0, 10, low_open=True))  # Adam's step size on the coefficients
    holdout: float = checked(check=within(0, 1, low_open=True, high_open=True))  # share of val rows held back
    eval_every: int = checked(check=at_least_one)  # steps between held-out losses (the stopping step's choice)
    seed: int = MISSING  # the held-out rows and the batches

    @staticmethod
    def rules(node: Any) -> list[tuple[str, str]]:
        bad = [k for k, v in (node.groups or {}).items() if not isinstance(v, str) or not v]
        return [("groups", f"each group needs a non-empty regex; got {bad}")] if bad else []
