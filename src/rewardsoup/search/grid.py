"""search=grid: Hydra's basic sweeper over explicit values (`python merge.py -m merge.weights.thumbs=0.2,0.5`);
each job is one in-memory trial, numbered by its Hydra job number, recorded as a ledger row (source `grid`).
A single run outside a multirun (a W&B sweep agent's) is numbered by its W&B run id."""

from __future__ import annotations

import os
import time
from typing import Any

from omegaconf import DictConfig

from rewardsoup.merging.soup import merge_request
from rewardsoup.sweep.record import record, sweeper_result


def multirun() -> bool:
    """True inside a Hydra multirun job (`-m`)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # not under @hydra.main (compose API)
        return False


def run_grid_point(cfg: DictConfig) -> dict[str, Any]:
    from hydra.core.hydra_config import HydraConfig

    trial = HydraConfig.get().job.num if multirun() else os.environ.get("WANDB_RUN_ID", f"run-{time.time_ns()}")
    return sweeper_result(record(cfg, merge_request(cfg), "grid", trial))
