"""Schema of conf/scoring: how texts become rewards, shared by every job that scores (evaluate.py, merge.py's
trials and proxy, sample.py)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from rewardsoup.core.config import store


@dataclass
class ScoringConfig:
    share_prefix: bool = MISSING  # the texts of a row (a pair, best-of-N candidates) run their common prefix once


store(ScoringConfig, "schema", group="scoring")
