"""Schemas of the sweep machinery: the sweep (`sweep`, incl. `sweep.objective`), trials (`trial`) and the pick
(`pick`). merge.py's root config (`rewardsoup.search.config.MergeJobConfig`) holds them beside the search
strategies' settings. Values and their reasons are in conf/merge.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from omegaconf import MISSING

from rewardsoup.core import precision
from rewardsoup.core.config import (at_least_one, checked, finite, folder_name, folder_path, not_negative, scorer_folder,
                                    one_of, within)
from rewardsoup.merging.config import MergeConfig
from rewardsoup.sweep.objective import BINARY_METRICS, KINDS


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
    dtype: str = checked(check=one_of(*precision.PRECISIONS))  # the test table's forward precision (scoring.dtype there)
    push_to_hub: Optional[str] = None  # a hub repo id to upload the picked soup folder to; null: no upload
    seed_ties: MergeConfig = MISSING  # the seed's soup, tested beside the picked one
    # name -> folder: models tested beside the soup (a missing one would fail after the soup is exported)
    alternatives: Dict[str, str] = checked(factory=dict, each=scorer_folder)
    averages: Dict[str, List[str]] = field(default_factory=dict)  # row -> models averaged linearly (WARM)
    arrow: bool = MISSING  # a routed alternative's Arrow reference row in the test table (evaluate.py references.arrow)
