"""Schema of conf/scoring: how texts become rewards, shared by every job that scores (evaluate.py, merge.py's
trials and proxy, sample.py). Training tokenizes on its own (independent truncation, `train.max_length`)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING, DictConfig, OmegaConf

from rewardsoup.core.config import checked, one_of, store
from rewardsoup.scoring.truncation import MODES


@dataclass
class ScoringConfig:
    share_prefix: bool = MISSING  # the texts of a row (a pair, best-of-N candidates) run their common prefix once
    truncation: str = checked(check=one_of(*MODES))  # a long row's texts: cut each on its own, or by one common cut


def share_prefix(cfg: DictConfig) -> bool:
    """`scoring.share_prefix` of a job's config (off when the job has no scoring group)."""
    return bool(OmegaConf.select(cfg, "scoring.share_prefix", default=False))


def truncation(cfg: DictConfig) -> str:
    """`scoring.truncation` of a job's config (`independent` when the job has no scoring group)."""
    return str(OmegaConf.select(cfg, "scoring.truncation", default="independent"))


store(ScoringConfig, "schema", group="scoring")
