"""merge.py's work, by `mode`: a soup on disk, one sweep trial, a search of its own, or the pick of a sweep.

- `soup` (single run default): mergekit writes the soup (`rewardsoup.merging.soup.merge_soup`);
- `trial` (multirun default): one in-memory trial, an Optuna sweeper's (`search.optuna`) or Hydra's basic
  sweeper's (`search.grid`); a request already in the ledger is not recomputed;
- `greedy` / `uniform`: the model-soups baselines (`search.greedy`);
- `proxy` / `layerwise`: searches of their own (`search.proxy`, `search.layerwise`);
- `routed`: the sweep's pick plus the members' differences weighted per prompt (`search.routed`);
- `pick`: best trial by val objective -> mergekit soup + test evaluation + plots (`rewardsoup.sweep.pick`).
"""

from __future__ import annotations

import os
from typing import Any

from omegaconf import DictConfig

from rewardsoup.core.trial import TRIAL_ENV_VAR
from rewardsoup.merging.soup import merge_soup
from rewardsoup.search.greedy import run_greedy, run_uniform
from rewardsoup.search.grid import multirun, run_grid_point
from rewardsoup.search.layerwise import run_layerwise
from rewardsoup.search.optuna import run_optuna_trial
from rewardsoup.search.proxy import run_proxy
from rewardsoup.search.routed import run_routed
from rewardsoup.sweep.pick import pick_best
from rewardsoup.sweep.record import record


def run_trial(cfg: DictConfig) -> dict[str, Any]:
    """A multirun job: an Optuna trial when the rewardsoup_optuna sweeper launched it, else a grid point."""
    return run_optuna_trial(cfg) if TRIAL_ENV_VAR in os.environ else run_grid_point(cfg)


def merge_job(cfg: DictConfig) -> Any:
    mode = str(cfg.get("mode", "auto"))  # one of search/config.py's MODES (run_job checked it)
    if mode == "auto":
        mode = "trial" if multirun() else "soup"
    if mode == "pick":
        return pick_best(cfg)
    if mode == "proxy":
        return run_proxy(cfg, record)
    if mode == "layerwise":
        return run_layerwise(cfg, record)
    if mode == "routed":
        return run_routed(cfg)
    return {"soup": merge_soup, "trial": run_trial, "greedy": run_greedy, "uniform": run_uniform}[mode](cfg)
