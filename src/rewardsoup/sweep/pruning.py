"""A trial job's line to its Optuna study: report the running objective after each val chunk, and ask the
study's pruner whether to stop (`optuna.trial.Trial.report` / `should_prune`).

Active only for a job launched by the rewardsoup_optuna sweeper (its trial number in `REWARDSOUP_OPTUNA_TRIAL`)
whose sweep set `hydra.sweeper.pruner` (the sweeper writes the study, storage and pruner to `study.json` in
the sweep folder before any job starts). Anything else (a grid multirun, a W&B agent, a single trial) gets
no reporter and scores its val sets in one pass.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from rewardsoup.core.trial import TRIAL_ENV_VAR
from rewardsoup.sweep.study import make_pruner, make_storage, read_study_file

Reporter = Callable[[float, int], bool]  # (running objective, step) -> stop now?


def reporter(sweep_dir: str | Path) -> Reporter | None:
    """The reporter of this job's Optuna trial, or None when the job is not a pruned Optuna trial."""
    number = os.environ.get(TRIAL_ENV_VAR)
    info = read_study_file(Path(sweep_dir))
    if number is None or info is None or info.get("pruner", "none") == "none":
        return None
    import optuna

    study = optuna.load_study(study_name=info["study_name"], storage=make_storage(info["storage"]),
                              pruner=make_pruner(info["pruner"], info.get("pruner_kwargs")))
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, int(number))
    trial = optuna.trial.Trial(study, trial_id)

    def report(value: float, step: int) -> bool:
        trial.report(float(value), step)
        return bool(trial.should_prune())

    return report

