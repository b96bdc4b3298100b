"""Schema of evaluate.py's root config (conf/evaluate.yaml extends `evaluate_schema`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List

from omegaconf import MISSING, DictConfig

from rewardsoup.core.config import (LoggerConfig, PathsConfig, at_least, at_least_one, checked, scorer_folder,
                                    not_negative, one_of, store)
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
    arrow: bool = MISSING  # a routed soup's Arrow row (peft's training-free router over its differences)


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
    # name -> folder; {} = every member and soup found. Open to new names: models={x: /path} or models.x=/path
    # (struct off); typed as the field, so `models=abc` or `models=null` is refused as the schema says
    models: Dict[str, str] = checked(each=scorer_folder, factory=lambda: DictConfig(
        {}, key_type=str, element_type=str, ref_type=Dict[str, str], is_optional=False, flags={"struct": False}))
    runs: List[str] = field(default_factory=list)  # models that are runs outside the soup (seed runs): kind `run`
    averages: Dict[str, List[str]] = field(default_factory=dict)  # row -> models averaged linearly (WARM)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    references: ReferencesConfig = field(default_factory=ReferencesConfig)
    best_of_n: BestOfNConfig = field(default_factory=BestOfNConfig)
    # experiment bundles (conf/experiment) serve every entry point and also set train.py's `train.*`: unused here
    train: Dict[str, Any] = field(default_factory=dict)


    @staticmethod
    def rules(node) -> list[tuple[str, str]]:
        named = set(node.models) if node.models else None  # {} = discovered at run time: checked then
        for row, runs in node.averages.items():
            if len(runs) < 2:
                return [("averages", f"averages.{row} must name at least two models, got {list(runs)}")]
            if named is not None and not set(runs) <= named:
                return [("averages", f"averages.{row} names {sorted(set(runs) - named)}, not among models {sorted(named)}")]
        if named is not None and not set(node.runs) <= named:
            return [("runs", f"names {sorted(set(node.runs) - named)}, not among models {sorted(named)}")]
        return []


store(EvaluateJobConfig, "evaluate_schema")
