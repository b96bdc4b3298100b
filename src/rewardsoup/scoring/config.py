"""Schema of conf/scoring: how texts become rewards, shared by every job that scores (evaluate.py, merge.py's
trials and proxy, sample.py). Training tokenizes on its own (independent truncation, `train.max_length`)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING, DictConfig, OmegaConf

from rewardsoup.core import precision
from rewardsoup.core.config import checked, one_of, store
from rewardsoup.scoring.truncation import MODES


@dataclass
class ScoringConfig:
    share_prefix: bool = MISSING  # the texts of a row (a pair, best-of-N candidates) run their common prefix once
    truncation: str = checked(check=one_of(*MODES))  # a long row's texts: cut each on its own, or by one common cut
    dtype: str = checked("fp32", check=one_of(*precision.PRECISIONS))  # the forward's precision (core.precision)


def share_prefix(cfg: DictConfig) -> bool:
    """`scoring.share_prefix` of a job's config (off when the job has no scoring group)."""
    return bool(OmegaConf.select(cfg, "scoring.share_prefix", default=False))


def truncation(cfg: DictConfig) -> str:
    """`scoring.truncation` of a job's config (`independent` when the job has no scoring group)."""
    return str(OmegaConf.select(cfg, "scoring.truncation", default="independent"))


def dtype(cfg: DictConfig) -> str:
    """`scoring.dtype` of a job's config (`fp32` when the job has no scoring group)."""
    return str(OmegaConf.select(cfg, "scoring.dtype", default="fp32"))


def autocast(cfg: DictConfig, device: str = "auto"):
    """The context a job's scoring forwards run in: bf16 autocast where `scoring.dtype` resolves to bf16
    (weights untouched, so a resident soup stays mergekit's fp32 soup), nothing for fp32."""
    return precision.autocast(dtype(cfg), device)


store(ScoringConfig, "schema", group="scoring")
