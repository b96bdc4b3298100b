"""``RewardsoupOptunaSweeper``: a Hydra sweeper driving an Optuna study through ask/tell.

Per batch: ask up to ``n_jobs`` trials; each becomes the user's fixed command-line overrides + ``key=value``
per searched key + ``++hydra.job.env_set.REWARDSOUP_OPTUNA_TRIAL=<n>`` (the job sees its trial number in
the environment under any launcher); launch with ``initial_job_idx`` = trial number (job folders are named
by trial, so a resumed sweep overwrites nothing); tell each job's result (`job_result`: its objective, or per-dataset values
for a multi-objective study, constraints, pruned state). A job that raised or returned None / a non-number /
a non-finite number is told FAIL and the sweep goes on. Several workers may share one stored study
(`rewardsoup.sweep.study`): each asks, runs and tells its own trials, beating their heartbeats while they
run, and a dead worker's RUNNING trials are failed and queued again. Resume: see
``config.py`` (``n_trials``, ``storage``). At the end ``optimization_results.yaml`` goes to the sweep dir.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import warnings
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from rewardsoup.core.atomic import atomic_write_text
from rewardsoup.core.plain import plain
from rewardsoup.core.trial import TRIAL_ENV_VAR
from rewardsoup.sweep.study import PRUNERS, fail_dead_trials, make_pruner, make_storage, this_worker, write_study_file

from .config import DIRECTIONS, SAMPLERS
from .space import SearchSpaceError, _is_int, _name, _require, format_value, parse_distribution, wrap

__all__ = ["RewardsoupOptunaSweeper", "SearchSpaceError", "format_value", "job_result", "parse_distribution"]

log = logging.getLogger(__name__)

SIMPLEX_PREFIX = "_simplex_raw_"
RESULTS_FILE = "optimization_results.yaml"


def job_result(r: JobReturn) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """({objective, values, constraints, state}, None) for a usable return value, else (None, reason).

    A job returns a number (its objective) or a mapping with ``objective`` and optionally ``values``
    (name -> number, for ``objectives``), ``constraints`` (name -> number or a list, <= 0 feasible) and ``state``
    (``complete`` or ``pruned``)."""
    if r.status != JobStatus.COMPLETED:
        return None, f"job raised {type(r._return_value).__name__}: {r._return_value}"
    ret = r.return_value
    out = dict(ret) if isinstance(ret, Mapping) else {"objective": ret}
    try:
        out["objective"] = float(out.get("objective"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None, f"job returned {ret!r}, not a number"
    if not math.isfinite(out["objective"]):
        return None, f"job returned non-finite {out['objective']}"
    out.setdefault("state", "complete")
    return out, None


def _finished(trials: List[Any]) -> int:
    from optuna.trial import TrialState

    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)


class RewardsoupOptunaSweeper(Sweeper):
    """See :mod:`hydra_plugins.rewardsoup_optuna.config` for the fields (same names as the arguments)."""

    def __init__(self, sampler: str = "tpe", sampler_kwargs: Any = None, seed: int = 0,
                 direction: str = "maximize", n_trials: int = 20, n_jobs: int = 1,
                 storage: Optional[str] = None, study_name: str = "rewardsoup", params: Any = None,
                 simplex: Any = None, objectives: Any = None, constraints: bool = False, pruner: str = "none",
                 pruner_kwargs: Any = None, heartbeat_interval: Optional[int] = None,
                 grace_period: Optional[int] = None, max_retry: Optional[int] = 2) -> None:
        super().__init__()
        self.sampler_name = str(sampler).lower()
        self.sampler_kwargs = plain(sampler_kwargs) or {}
        self.seed, self.direction, self.n_trials, self.n_jobs = seed, str(direction).lower(), n_trials, n_jobs
        self.storage, self.study_name = storage, study_name
        self.params, self.simplex = plain(params) or {}, plain(simplex) or []
        self.objectives, self.constraints = plain(objectives), constraints
        self.pruner, self.pruner_kwargs = str(pruner).lower(), plain(pruner_kwargs) or {}
        self.heartbeat_interval, self.grace_period, self.max_retry = heartbeat_interval, grace_period, max_retry
        self.hydra_context, self.config, self.launcher = None, None, None
        self._next_number = 0

    def validate(self) -> None:
        """Check the settings and build the search space; raises SearchSpaceError naming the key."""
        w = "hydra.sweeper"
        _require(self.sampler_name in SAMPLERS, f"{w}.sampler",
                 f"unknown sampler {self.sampler_name!r}; known samplers: {', '.join(SAMPLERS)}")
        _require(self.sampler_name != "cmaes" or importlib.util.find_spec("cmaes") is not None,
                 f"{w}.sampler", "'cmaes' needs the cmaes package (pip install cmaes)")
        _require(isinstance(self.sampler_kwargs, dict) and "seed" not in self.sampler_kwargs,
                 f"{w}.sampler_kwargs", "must be a mapping without 'seed' (set the seed field)")
        _require(self.direction in DIRECTIONS, f"{w}.direction", f"{self.direction!r} not in {DIRECTIONS}")
        for field in ("seed", "n_trials", "n_jobs"):
            v = getattr(self, field)
            _require(_is_int(v) and (field == "seed" or v >= 1), f"{w}.{field}", f"invalid value {v!r}")
        self._validate_study_settings(w)
        self._build_space(w)

    def _validate_study_settings(self, w: str) -> None:
        objectives = self.objectives
        _require(objectives is None or (isinstance(objectives, list) and len(objectives) >= 1
                                        and len(set(map(str, objectives))) == len(objectives)), f"{w}.objectives",
                 f"must be null or a list of distinct names, got {objectives!r}")
        _require(objectives is None or self.sampler_name != "cmaes", f"{w}.sampler",
                 "cmaes cannot run a multi-objective study (hydra.sweeper.objectives): use tpe, nsgaii or random")
        _require(isinstance(self.constraints, bool), f"{w}.constraints", f"must be true or false: {self.constraints!r}")
        _require(self.pruner in PRUNERS, f"{w}.pruner", f"{self.pruner!r} is not one of {', '.join(PRUNERS)}")
        _require(self.pruner == "none" or self.storage is not None, f"{w}.pruner",
                 "pruning needs hydra.sweeper.storage: each trial job reports to the stored study")
        _require(self.pruner == "none" or objectives is None, f"{w}.pruner",
                 "Optuna prunes single-objective studies only; unset hydra.sweeper.objectives or set pruner=none")
        _require(isinstance(self.pruner_kwargs, dict), f"{w}.pruner_kwargs", "must be a mapping")
        for field, low in (("heartbeat_interval", 1), ("grace_period", 1), ("max_retry", 0)):
            v = getattr(self, field)
            _require(v is None or (_is_int(v) and v >= low), f"{w}.{field}", f"must be null or an int >= {low}: {v!r}")
        _require(self.heartbeat_interval is None or self.grace_period is None
                 or self.grace_period > self.heartbeat_interval, f"{w}.grace_period",
                 f"must exceed heartbeat_interval ({self.heartbeat_interval}), got {self.grace_period}")

    def _build_space(self, w: str) -> None:
        from optuna.distributions import FloatDistribution

        self.space: Dict[str, Any] = {}  # Optuna param name -> distribution
        self.override_keys: Dict[str, str] = {}  # value name -> override key as written (with +)
        self.simplex_names: List[str] = []
        _require(isinstance(self.params, dict) and isinstance(self.simplex, list), w,
                 "params must be a mapping and simplex a list")
        _require(bool(self.params or self.simplex), f"{w}.params",
                 "empty and hydra.sweeper.simplex is not set: nothing to search over")
        for key, spec in self.params.items():
            name = _name(key, f"{w}.params")
            _require(name not in self.override_keys, f"{w}.params", f"key '{name}' is given twice")
            self.space[name], self.override_keys[name] = parse_distribution(key, spec), key
        _require(len(self.simplex) != 1, f"{w}.simplex", f"needs at least two keys, got {self.simplex}")
        for key in self.simplex:
            name = _name(key, f"{w}.simplex")
            _require(name not in self.override_keys, f"{w}.simplex", f"key '{name}' is also in "
                     f"{'hydra.sweeper.params' if name in self.space else 'hydra.sweeper.simplex'}")
            self.space[SIMPLEX_PREFIX + name] = FloatDistribution(0.0, 1.0)
            self.override_keys[name] = key
            self.simplex_names.append(name)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        if isinstance(self.objectives, str):  # the key of a mapping whose keys name the objectives
            found = OmegaConf.select(config, self.objectives)
            _require(isinstance(found, DictConfig) and len(found) > 0, "hydra.sweeper.objectives",
                     f"'{self.objectives}' is not a non-empty mapping of the config")
            self.objectives = [str(k) for k in found.keys()]
        self.validate()
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def make_sampler(self, seed: int) -> Any:
        import optuna

        cls = {"tpe": optuna.samplers.TPESampler, "cmaes": optuna.samplers.CmaEsSampler,
               "random": optuna.samplers.RandomSampler, "nsgaii": optuna.samplers.NSGAIISampler}[self.sampler_name]
        try:
            return cls(seed=seed, **self.sampler_kwargs)
        except TypeError as e:
            raise SearchSpaceError(f"hydra.sweeper.sampler_kwargs: {e}") from e

    def values(self, params: Dict[str, Any]) -> Dict[str, Any]:
        """Sampled Optuna params -> {override name: value}; simplex raws become Dirichlet(1) weights."""
        out = {n: v.item() if hasattr(v, "item") else v
               for n, v in params.items() if not n.startswith(SIMPLEX_PREFIX)}
        if self.simplex_names:
            e = [-math.log(max(float(params[SIMPLEX_PREFIX + n]), 1e-300)) for n in self.simplex_names]
            total = sum(e)
            w = [x / total for x in e] if total > 0 else [1.0 / len(e)] * len(e)
            out.update(zip(self.simplex_names, w))
        return out

    def _check_arguments(self, arguments: List[str]) -> List[str]:
        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        for o in parser.parse_overrides(list(arguments)):
            _require(not o.is_sweep_override(), f"command-line override '{o.input_line}'",
                     "a sweep; this sweeper takes its search space from hydra.sweeper.params")
            _require(o.key_or_group not in self.override_keys, f"command-line override '{o.input_line}'",
                     f"key '{o.key_or_group}' is also searched by hydra.sweeper (params/simplex)")
        return list(arguments)

    def open_study(self, sweep_dir: Path) -> Any:
        """Create or load the study (shared by every worker of the same storage and study name)."""
        import optuna

        storage = wrap(make_storage)(self.storage, self.heartbeat_interval, self.grace_period, self.max_retry)
        directions = [self.direction] * len(self.objectives) if self.objectives else [self.direction]
        study = optuna.create_study(study_name=self.study_name, storage=storage, load_if_exists=True,
                                    directions=directions, sampler=self.make_sampler(self.seed),
                                    pruner=wrap(make_pruner)(self.pruner, self.pruner_kwargs))
        stored = [d.name.lower() for d in study.directions]
        _require(stored == directions, "hydra.sweeper.direction",
                 f"stored study '{self.study_name}' has directions {stored}, this sweep {directions}")
        if self.storage is not None:
            write_study_file(sweep_dir, {"study_name": self.study_name, "storage": self.storage,
                                         "pruner": self.pruner, "pruner_kwargs": self.pruner_kwargs})
        return study

    def sweep(self, arguments: List[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        fixed = self._check_arguments(arguments)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        study = self.open_study(sweep_dir)  # first: a storage that cannot be opened leaves no sweep folder
        sweep_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(sweep_dir / "multirun.yaml", OmegaConf.to_yaml(self.config))
        for number in fail_dead_trials(study, self.max_retry):
            log.warning("Trial %d was left RUNNING by a worker that is gone: failed, and queued again", number)
        existing = self.join(study)
        budget = max(0, self.n_trials - _finished(existing))
        log.info("Study '%s' (%s, %s): %d finished trials, launching up to %d (n_trials=%d)",
                 self.study_name, self.sampler_name, self.direction, _finished(existing), budget, self.n_trials)
        launched = 0
        while launched < budget:
            fail_dead_trials(study, self.max_retry)
            trials = study.get_trials(deepcopy=False)
            running = sum(t.state.name == "RUNNING" for t in trials)  # other workers' trials in flight
            n = min(self.n_jobs, budget - launched, self.n_trials - _finished(trials) - running)
            if n <= 0:
                break
            with warnings.catch_warnings():  # we beat each asked trial's heartbeat ourselves (`_launch`)
                warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
                batch = [self.ask(study) for _ in range(n)]
            launched += len(batch)
            self._run_batch(study, batch, fixed)
        return self.report(study, sweep_dir)

    def join(self, study: Any) -> List[Any]:
        """Seed this worker's sampler with ``seed + trials already in the study`` (a resumed run draws new
        points) and expect the next trial number; returns the study's trials."""
        existing = study.get_trials(deepcopy=False)
        study.sampler = self.make_sampler(self.seed + len(existing))
        self._next_number = len(existing)  # the trial number this worker gets if no other worker asks
        return existing

    def ask(self, study: Any) -> Any:
        """``study.ask(fixed_distributions=space)``, with each worker drawing from a stream of its own.

        Alone, a worker gets consecutive trial numbers and draws from the one stream seeded at start with
        ``seed + trials already in the study`` (same seed, same points). When another worker of the same
        study took the numbers in between, this trial's number is past the expected one: the sampler is
        seeded again with ``seed + trial number`` before drawing. Trial numbers are unique in a study, so two
        workers never draw the same start-up point from the same stream (with the same seed both would)."""
        trial = study.ask()
        if trial.number > self._next_number:  # a lower number: a queued retry, whose params are fixed
            study.sampler = self.make_sampler(self.seed + trial.number)
            log.info("Trial %d: another worker shares study '%s'; this one now draws with seed %d",
                     trial.number, self.study_name, self.seed + trial.number)
        self._next_number = max(self._next_number, trial.number + 1)
        for name, distribution in self.space.items():
            trial._suggest(name, distribution)  # what study.ask(fixed_distributions=...) does, after the seed
        return trial

    def _launch(self, study: Any, trials: List[Any], batch: List[List[str]]) -> List[JobReturn]:
        """Launch runs of consecutive trial numbers (= job numbers) while beating each trial's heartbeat."""
        from optuna.storages._heartbeat import get_heartbeat_thread

        assert self.launcher is not None
        results: List[JobReturn] = []
        with contextlib.ExitStack() as beats:
            for trial in trials:
                beats.enter_context(get_heartbeat_thread(trial._trial_id, study._storage))
            start = 0
            for end in range(1, len(trials) + 1):
                if end == len(trials) or trials[end].number != trials[end - 1].number + 1:
                    results += self.launcher.launch(batch[start:end], initial_job_idx=trials[start].number)
                    start = end
        return results

    def _run_batch(self, study: Any, trials: List[Any], fixed: List[str]) -> None:
        from optuna.trial import TrialState

        try:
            batch = []
            for trial in trials:
                values = self.values(trial.params)
                trial.set_user_attr("overrides", values)
                trial.set_user_attr("worker", this_worker())
                batch.append(fixed + [f"{self.override_keys[n]}={format_value(v)}" for n, v in values.items()]
                             + [f"++hydra.job.env_set.{TRIAL_ENV_VAR}={trial.number}"])
            self.validate_batch_is_legal(batch)
            results = self._launch(study, trials, batch)
        except BaseException:
            for trial in trials:
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            raise
        for trial, r in zip(trials, results):
            self._tell(study, trial, r)

    def _tell(self, study: Any, trial: Any, r: JobReturn) -> None:
        from optuna.trial import TrialState

        out, error = job_result(r)
        if out is not None and out.get("constraints") is not None and self.constraints:
            cons = out["constraints"]
            for key, value in (cons.items() if isinstance(cons, Mapping) else enumerate(cons)):
                trial.set_constraint(str(key), float(value))  # the samplers (TPE, NSGA-II) read trial.constraints
        if out is not None and out["state"] == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
            log.info("Trial %d: %s -> pruned at %.6g", trial.number, trial.user_attrs["overrides"], out["objective"])
            return
        if out is not None and self.objectives:
            values = out.get("values") or {}
            missing = [n for n in self.objectives if n not in values]
            if missing:
                error = f"job returned no value for {missing} (hydra.sweeper.objectives); it returned {sorted(values)}"
            else:
                study.tell(trial, [float(values[n]) for n in self.objectives])
                log.info("Trial %d: %s -> %s", trial.number, trial.user_attrs["overrides"], values)
                return
        elif out is not None:
            study.tell(trial, out["objective"])
            log.info("Trial %d: %s -> %.6g", trial.number, trial.user_attrs["overrides"], out["objective"])
            return
        exc = r._return_value if isinstance(r._return_value, BaseException) else None
        log.error("Trial %d FAILED (%s); the sweep goes on", trial.number, error,
                  exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None)
        trial.set_user_attr("error", error)
        study.tell(trial, state=TrialState.FAIL)

    def report(self, study: Any, sweep_dir: Path) -> Dict[str, Any]:
        """Write and print ``optimization_results.yaml``; returns its content."""
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        result: Dict[str, Any] = {
            "study_name": self.study_name, "storage": self.storage, "sampler": self.sampler_name,
            "direction": self.direction, "objectives": self.objectives, "n_trials": self.n_trials,
            "n_complete": len(complete), "n_pruned": sum(t.state == TrialState.PRUNED for t in trials),
            "n_failed": sum(t.state == TrialState.FAIL for t in trials),
            "best_trial": None, "best_value": None, "best_params": None, "front": None,
        }
        if complete and self.objectives:
            result["front"] = [{"trial": t.number, "values": dict(zip(self.objectives, map(float, t.values))),
                                "params": dict(t.user_attrs.get("overrides") or self.values(t.params))}
                               for t in study.best_trials]
        elif complete:
            try:
                best = study.best_trial
            except ValueError:  # Optuna: every complete trial breaks a constraint ("No feasible trials")
                best = None
                result["note"] = ("no complete trial meets the constraints (floors); the pick's rule "
                                  "(rewardsoup.sweep.summary.choose) takes the smallest worst-dataset shortfall")
            if best is not None:
                result.update(best_trial=best.number, best_value=float(best.value),
                              best_params=dict(best.user_attrs.get("overrides") or self.values(best.params)))
        atomic_write_text(sweep_dir / RESULTS_FILE, OmegaConf.to_yaml(OmegaConf.create(result)))
        print(f"[rewardsoup_optuna] {sweep_dir / RESULTS_FILE}:\n{OmegaConf.to_yaml(result)}", flush=True)
        return result
