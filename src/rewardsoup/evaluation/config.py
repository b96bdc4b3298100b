"""Schema of evaluate.py's root config (conf/evaluate.yaml extends `evaluate_schema`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict

from omegaconf import MISSING

from rewardsoup.core.config import (LoggerConfig, PathsConfig, at_least, at_least_one, checked, not_negative,
                                    one_of, store)
from rewardsoup.data.config import DataConfig
from rewardsoup.models.config import ModelConfig
from rewardsoup.scoring.config import ScoringConfig

SPLITS = ("train", "val", "test")


@dataclass
class BaselinesConfig:
    uniform_soup: bool = MISSING
    ensemble: bool = MISSING


@dataclass
class ReferencesConfig:
    base: bool = MISSING
    length: bool = MISSING


@dataclass
class BestOfNConfig:
    enabled: bool = MISSING
    min_candidates: int = checked(check=at_least(2))  # a group needs a chosen and a rejected reply


@dataclass
class EvaluateJobConfig:
    paths: PathsConfig = MISSING
    scoring: ScoringConfig = MISSING
    model: ModelConfig = MISSING
    datasets: Dict[str, DataConfig] = field(default_factory=dict)  # the eval sets (conf/datasets)
    logger: LoggerConfig = MISSING
    split: str = checked(check=one_of(*SPLITS))
    max_length: int = checked(check=at_least_one)
    batch_size: int = checked(check=at_least_one)
    bootstrap: int = checked(check=not_negative)  # 0: no intervals
    models: Dict[str, str] = field(default_factory=dict)  # name -> folder; {} = every member and soup found
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    references: ReferencesConfig = field(default_factory=ReferencesConfig)
    best_of_n: BestOfNConfig = field(default_factory=BestOfNConfig)
    # experiment bundles (conf/experiment) serve every entry point and also set train.py's `train.*`: unused here
    train: Dict[str, Any] = field(default_factory=dict)


store(EvaluateJobConfig, "evaluate_schema")
