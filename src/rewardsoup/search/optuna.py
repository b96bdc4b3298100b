"""search=optuna (and optuna_pareto, optuna_ranges, cmaes_layers): the rewardsoup_optuna sweeper
(`src/hydra_plugins`) samples the merge settings (TPE, CMA-ES, random, NSGA-II) and runs each as a job; the job
is one in-memory trial numbered as Optuna numbers it (`core.trial.TRIAL_ENV_VAR`), scored in chunks when the
sweep has a pruner (`sweep.pruning`), recorded as a ledger row (source `optuna`) and told back to the study."""

from __future__ import annotations

import os
from typing import Any

from omegaconf import DictConfig

from rewardsoup.core.trial import TRIAL_ENV_VAR
from rewardsoup.merging.soup import merge_request
from rewardsoup.sweep.pruning import reporter
from rewardsoup.sweep.record import record, sweeper_result


def run_optuna_trial(cfg: DictConfig) -> dict[str, Any]:
    trial = int(os.environ[TRIAL_ENV_VAR])
    return sweeper_result(record(cfg, merge_request(cfg), "optuna", trial, reporter(cfg.sweep.dir)))
