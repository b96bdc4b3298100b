"""Schemas of merge.py: the sweep (`sweep`, incl. `sweep.objective`), trials (`trial`), the pick (`pick`),
greedy soups (`greedy`) and the root config they sit in with the merge, its members and its eval sets.

Registered as `merge_schema` (conf/merge.yaml extends it). Values and their reasons are in conf/merge.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from rewardsoup.core.config import (LoggerConfig, PathsConfig, at_least_one, checked, finite, folder_name, folder_path,
                                    model_folder, not_negative, one_of, store, within)
from rewardsoup.data.config import DataConfig
from rewardsoup.merging.config import MergeConfig
from rewardsoup.models.config import ModelConfig
from rewardsoup.scoring.config import ScoringConfig
from rewardsoup.sweep.objective import BINARY_METRICS, KINDS
from rewardsoup.sweep.layerwise_config import LayerwiseConfig
from rewardsoup.sweep.proxy_config import ProxyConfig

# auto: a multirun job is an in-memory trial, a single run writes a soup; the rest name what to run
MODES = ("auto", "soup", "trial", "greedy", "uniform", "pick", "proxy", "layerwise")


@dataclass
class SweepObjectiveConfig:
    """What a trial scores (train.py's `objective` is the training loss: a different thing)."""

    kind: str = checked(check=one_of(*KINDS))
    weights: Dict[str, float] = checked(factory=dict, each=finite)  # kind=weighted: dataset name -> weight
    binary_metric: str = checked(check=one_of(*BINARY_METRICS))
    max_loss: float = checked(check=within(0, 1))  # kind=floors: most a dataset may lose against its best member


@dataclass
class SweepConfig:
    name: str = checked(check=folder_name)  # the sweep's folder under paths.root/sweeps and its Optuna study
    dir: str = checked(check=folder_path)  # ledger, sweep.json, plots: '' would put them in the launch folder
    objective: SweepObjectiveConfig = field(default_factory=SweepObjectiveConfig)


@dataclass
class TrialConfig:
    max_length: int = checked(check=at_least_one)
    batch_size: int = checked(check=at_least_one)
    trim_ranks: bool = MISSING
    chunks: int = checked(check=at_least_one)  # with a pruner: val rows scored in this many chunks


@dataclass
class PickConfig:
    name: str = checked(check=folder_name)  # the picked soup's folder under paths.soups ('' would replace paths.soups)
    bootstrap: int = checked(check=not_negative)
    push_to_hub: Optional[str] = None  # a hub repo id to upload the picked soup folder to; null: no upload
    seed_ties: MergeConfig = MISSING  # the seed's soup, tested beside the picked one
    # name -> folder: models tested beside the soup (a missing one would fail after the soup is exported)
    alternatives: Dict[str, str] = checked(factory=dict, each=model_folder)
    averages: Dict[str, List[str]] = field(default_factory=dict)  # row -> models averaged linearly (WARM)


@dataclass
class GreedyConfig:
    method: str = MISSING


@dataclass
class MergeJobConfig:
    """conf/merge.yaml: a soup, a sweep trial, a greedy/uniform soup or the pick (`mode`)."""

    paths: PathsConfig = MISSING
    scoring: ScoringConfig = MISSING
    model: ModelConfig = MISSING
    # member name -> folder (conf/members): a missing folder stops the job before any merge or sweep trial
    members: Dict[str, str] = checked(factory=dict, each=model_folder)
    merge: MergeConfig = MISSING
    datasets: Dict[str, DataConfig] = field(default_factory=dict)  # the eval sets (conf/datasets)
    search: Dict[str, Any] = field(default_factory=dict)  # search=none's package; optuna writes elsewhere
    logger: LoggerConfig = MISSING
    mode: str = checked(check=one_of(*MODES))
    sweep: SweepConfig = field(default_factory=SweepConfig)
    trial: TrialConfig = field(default_factory=TrialConfig)
    pick: PickConfig = field(default_factory=PickConfig)
    greedy: GreedyConfig = field(default_factory=GreedyConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    layerwise: LayerwiseConfig = field(default_factory=LayerwiseConfig)
    # experiment bundles (conf/experiment) serve every entry point and also set train.py's `train.*`: unused here
    train: Dict[str, Any] = field(default_factory=dict)


store(MergeJobConfig, "merge_schema")
