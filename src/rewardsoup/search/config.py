"""Schemas of the search strategies (conf/search, `rewardsoup.search`): which `mode` merge.py runs, the proxy's
screening (`proxy`), the layer-wise coefficients (`layerwise`), greedy soups (`greedy`), and merge.py's root
config that holds them beside the sweep machinery's (`rewardsoup.sweep.config`).

Registered as `merge_schema` (conf/merge.yaml extends it). Values and their reasons are in conf/merge.yaml and
conf/search/*.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List

from omegaconf import MISSING

from rewardsoup.core.config import (LoggerConfig, PathsConfig, at_least_one, checked, finite, member_folder,
                                    not_negative, one_of, store, within)
from rewardsoup.data.config import DataConfig
from rewardsoup.merging.config import MergeConfig
from rewardsoup.models.config import ModelConfig
from rewardsoup.scoring.config import ScoringConfig
from rewardsoup.sweep.config import PickConfig, SweepConfig, TrialConfig

# auto: a multirun job is an in-memory trial, a single run writes a soup; the rest name what to run
MODES = ("auto", "soup", "trial", "greedy", "uniform", "pick", "proxy", "layerwise", "routed")
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


def _rank(value: Any) -> str | None:
    """routed.rank: 'full' or a positive integer (a string field: YAML's 16 arrives as '16')."""
    text = str(value).strip()
    if text.lower() == "full" or (text.isdigit() and int(text) >= 1):
        return None
    return "expected 'full' or a positive integer"


@dataclass
class RoutedConfig:
    """The routed soup (search=routed): the shared model, how the members' differences are kept, the router."""

    shared: str = checked(check=one_of(*STARTS))  # the shared model: the sweep's pick, or merge.weights/density
    rank: str = checked(check=_rank)  # truncated-SVD rank of each member's difference per matrix, or 'full'
    hidden: int = checked(check=not_negative)  # the router's hidden layer width (0: linear)
    init: str = checked(check=one_of("shared", "uniform"))  # the router's start: the shared model, or equal weights
    fit: str = checked(check=one_of("network", "outputs"))  # through the routed forward, or its output-mixing surrogate
    set_loss: float = checked(check=not_negative)  # weight of the auxiliary "which set is this" loss (0: off)
    set_prompts: str = checked(check=one_of("train", "val"))  # whose prompts that loss reads: the train split's, or val's fitting rows
    epochs: int = checked(check=at_least_one)  # passes over the fitting rows (the stopping rows pick the best)
    batch_rows: int = checked(check=at_least_one)  # rows per dataset per step
    lr: float = checked(check=within(0, 10, low_open=True))  # Adam's step size on the router
    holdout: float = checked(check=within(0, 1, low_open=True, high_open=True))  # share of val rows for stopping
    patience: int = checked(check=at_least_one)  # epochs without a better stopping score before the fit stops
    seed: int = MISSING  # the stopping rows, the order, the router's init
    prompt_length: int = checked(check=at_least_one)  # prompt tokens the router reads (left-truncated)
    prompt_end: str = MISSING  # regex of a speaker marker; a text's prompt ends at its last match
    name: str = MISSING  # the folder under paths.soups


@dataclass
class ProxyConfig:
    """How many candidates the proxy screens, how many are merged for real, and when the proxy is distrusted."""

    candidates: int = checked(check=at_least_one)  # weight vectors drawn from Dirichlet(1) and scored by the proxy
    top_k: int = checked(check=at_least_one)  # best-by-proxy weight vectors merged and scored for real
    seed: int = MISSING  # the candidates' and the fallback trials' random draws
    min_spearman: float = checked(check=finite)  # below this rank agreement (proxy vs real) the fallback runs
    fallback_trials: int = checked(check=not_negative)  # random real trials added when the proxy is distrusted
    # each top-k weight vector is merged at every density here (methods with a density); empty: merge.density
    densities: List[float] = field(default_factory=list)

    @staticmethod
    def rules(node: Any) -> list[tuple[str, str]]:
        bad = [d for d in node.densities if not (isinstance(d, (int, float)) and 0 < d <= 1)]
        return [("densities", f"every density must be in (0, 1]; got {bad}")] if bad else []


@dataclass
class GreedyConfig:
    method: str = MISSING


@dataclass
class MergeJobConfig:
    """conf/merge.yaml: a soup, a sweep trial, a search of its own, or the pick (`mode`)."""

    paths: PathsConfig = MISSING
    scoring: ScoringConfig = MISSING
    model: ModelConfig = MISSING
    # member name -> folder (conf/members): a missing folder stops the job before any merge or sweep trial
    members: Dict[str, str] = checked(factory=dict, each=member_folder)
    merge: MergeConfig = MISSING
    datasets: Dict[str, DataConfig] = field(default_factory=dict)  # the eval sets (conf/datasets)
    search: Dict[str, Any] = field(default_factory=dict)  # search=grid's package; optuna writes elsewhere
    logger: LoggerConfig = MISSING
    mode: str = checked(check=one_of(*MODES))
    sweep: SweepConfig = field(default_factory=SweepConfig)
    trial: TrialConfig = field(default_factory=TrialConfig)
    pick: PickConfig = field(default_factory=PickConfig)
    greedy: GreedyConfig = field(default_factory=GreedyConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    layerwise: LayerwiseConfig = field(default_factory=LayerwiseConfig)
    routed: RoutedConfig = field(default_factory=RoutedConfig)
    # experiment bundles (conf/experiment) serve every entry point and also set train.py's `train.*`: unused here
    train: Dict[str, Any] = field(default_factory=dict)


store(MergeJobConfig, "merge_schema")
