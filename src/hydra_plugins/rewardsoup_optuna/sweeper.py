"""``RewardsoupOptunaSweeper``: a Hydra sweeper driving an Optuna study through ask/tell.

Per batch: ask up to ``n_jobs`` trials; each becomes the user's fixed command-line overrides + ``key=value``
per searched key + ``++hydra.job.env_set.REWARDSOUP_OPTUNA_TRIAL=<n>`` (the job sees its trial number in
the environment under any launcher); launch with ``initial_job_idx`` = trial number (job folders are named
by trial, so a resumed sweep overwrites nothing); tell each job's float return value. A job that raised or
returned None / a non-number / a non-finite number is told FAIL and the sweep goes on. Resume: see
``config.py`` (``n_trials``, ``storage``). At the end ``optimization_results.yaml`` goes to the sweep dir.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from rewardsoup.core.plain import plain
from rewardsoup.core.trial import TRIAL_ENV_VAR

from .config import DIRECTIONS, SAMPLERS

log = logging.getLogger(__name__)

SIMPLEX_PREFIX = "_simplex_raw_"
RESULTS_FILE = "optimization_results.yaml"
_BARE = re.compile(r"[A-Za-z_][\w\-./]*\Z")
_RESERVED = {"true", "false", "null", "inf", "nan"}


class SearchSpaceError(CompactHydraException):
    """An invalid ``hydra.sweeper`` setting or command line; the message names the offending key."""


def _is_num(v: Any, types: Tuple[type, ...] = (int, float)) -> bool:
    return isinstance(v, types) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return _is_num(v, (int,))


def _name(key: Any, where: str) -> str:
    """The Optuna param name of an override key: the key without a ``+``/``++`` prefix."""
    ok = isinstance(key, str) and key.lstrip("+") != "" and key[0] != "~" and "=" not in key
    _require(ok, where, f"invalid override key {key!r}")
    return key.lstrip("+")


def _require(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise SearchSpaceError(f"{where}: {message}")


def parse_distribution(key: str, spec: Any) -> Any:
    """One ``params`` entry -> an Optuna distribution; raises SearchSpaceError naming ``key``."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    where, spec = f"hydra.sweeper.params['{key}']", plain(spec)
    _require(isinstance(spec, dict), where, f"expected {{low, high}} or {{choices: [...]}}, got {spec!r}")
    if "choices" in spec:
        choices = spec["choices"]
        _require(set(spec) == {"choices"}, where, f"a categorical spec takes only 'choices': {sorted(spec)}")
        _require(isinstance(choices, list) and len(choices) > 0, where, "'choices' must be a non-empty list")
        _require(all(c is None or isinstance(c, (bool, int, float, str)) for c in choices), where,
                 f"choices must be strings, numbers, bools or null: {choices!r}")
        return CategoricalDistribution(choices)
    _require({"low", "high"} <= set(spec) <= {"low", "high", "log", "step", "type"}, where,
             f"a range spec takes low, high and optionally log, step, type; got {sorted(spec)}")
    low, high, step, use_log = spec["low"], spec["high"], spec.get("step"), spec.get("log", False)
    _require(_is_num(low) and _is_num(high), where, f"low/high must be numbers: low={low!r} high={high!r}")
    _require(isinstance(use_log, bool), where, f"log must be true or false, got {use_log!r}")
    kind = spec.get("type") or ("int" if all(_is_int(v) for v in (low, high, step or 1)) else "float")
    _require(kind in ("int", "float"), where, f"type must be 'int' or 'float', got {kind!r}")
    _require(low < high, where, f"low ({low}) must be < high ({high}): "
             f"{'inverted range' if low > high else 'empty range'}")
    _require(not use_log or low > 0, where, f"log scale needs low > 0, got low={low}")
    _require(step is None or (_is_num(step) and step > 0), where, f"step must be a positive number: {step!r}")
    _require(not (use_log and step is not None and (kind == "float" or step != 1)), where,
             "log scale and step cannot be combined")
    if kind == "int":
        _require(all(float(v).is_integer() for v in (low, high, step or 1)), where,
                 "an int range needs integer low/high/step")
        return IntDistribution(int(low), int(high), log=use_log, step=int(step or 1))
    return FloatDistribution(float(low), float(high), log=use_log, step=None if step is None else float(step))


def format_value(v: Any) -> str:
    """A sampled value as the right-hand side of a Hydra override (strings quoted when needed)."""
    if v is None or isinstance(v, bool):
        return {None: "null", True: "true", False: "false"}[v]
    if isinstance(v, (int, float)):
        return repr(v)
    s = str(v)
    if _BARE.match(s) and s.lower() not in _RESERVED:
        return s
    for q in ("'", '"'):
        if q not in s:
            return f"{q}{s}{q}"
    raise SearchSpaceError(f"cannot write {s!r} as a Hydra override value (it holds both quote kinds)")


def job_objective(r: JobReturn) -> Tuple[Optional[float], Optional[str]]:
    """(value, None) for a usable return value, else (None, reason)."""
    if r.status != JobStatus.COMPLETED:
        return None, f"job raised {type(r._return_value).__name__}: {r._return_value}"
    try:
        value = float(r.return_value)
    except (TypeError, ValueError):
        return None, f"job returned {r.return_value!r}, not a number"
    return (value, None) if math.isfinite(value) else (None, f"job returned non-finite {value}")


class RewardsoupOptunaSweeper(Sweeper):
    """See :mod:`hydra_plugins.rewardsoup_optuna.config` for the fields (same names as the arguments)."""

    def __init__(self, sampler: str = "tpe", sampler_kwargs: Any = None, seed: int = 0,
                 direction: str = "maximize", n_trials: int = 20, n_jobs: int = 1,
                 storage: Optional[str] = None, study_name: str = "rewardsoup", params: Any = None,
                 simplex: Any = None) -> None:
        super().__init__()
        self.sampler_name = str(sampler).lower()
        self.sampler_kwargs = plain(sampler_kwargs) or {}
        self.seed, self.direction, self.n_trials, self.n_jobs = seed, str(direction).lower(), n_trials, n_jobs
        self.storage, self.study_name = storage, study_name
        self.params, self.simplex = plain(params) or {}, plain(simplex) or []
        self.hydra_context, self.config, self.launcher = None, None, None

    def validate(self) -> None:
        """Check the settings and build the search space; raises SearchSpaceError naming the key."""
        from optuna.distributions import FloatDistribution

        self.space: Dict[str, Any] = {}  # Optuna param name -> distribution
        self.override_keys: Dict[str, str] = {}  # value name -> override key as written (with +)
        self.simplex_names: List[str] = []
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

        self.validate()
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def make_sampler(self, seed: int) -> Any:
        import optuna

        cls = {"tpe": optuna.samplers.TPESampler, "cmaes": optuna.samplers.CmaEsSampler,
               "random": optuna.samplers.RandomSampler}[self.sampler_name]
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

    def sweep(self, arguments: List[str]) -> Any:
        import optuna
        from optuna.trial import TrialState

        assert self.config is not None and self.launcher is not None
        fixed = self._check_arguments(arguments)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        study = optuna.create_study(study_name=self.study_name, storage=self.storage, load_if_exists=True,
                                    direction=self.direction, sampler=self.make_sampler(self.seed))
        _require(study.direction.name.lower() == self.direction, "hydra.sweeper.direction",
                 f"stored study '{self.study_name}' is {study.direction.name.lower()}, not {self.direction}")
        existing = study.get_trials(deepcopy=False)
        for t in existing:
            if t.state == TrialState.RUNNING:  # left behind by a killed run: not counted, asked anew
                log.warning("Trial %d was left RUNNING by an earlier run: marking it FAIL", t.number)
                study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        study.sampler = self.make_sampler(self.seed + len(existing))  # a resumed run draws new points
        n_complete = sum(t.state == TrialState.COMPLETE for t in existing)
        budget = max(0, self.n_trials - n_complete)
        log.info("Study '%s' (%s, %s): %d complete trials, launching up to %d (n_trials=%d)",
                 self.study_name, self.sampler_name, self.direction, n_complete, budget, self.n_trials)
        launched = 0
        while launched < budget:
            trials = [study.ask(fixed_distributions=dict(self.space))
                      for _ in range(min(self.n_jobs, budget - launched))]
            launched += len(trials)
            self._run_batch(study, trials, fixed)
        return self.report(study, sweep_dir)

    def _run_batch(self, study: Any, trials: List[Any], fixed: List[str]) -> None:
        from optuna.trial import TrialState

        assert self.launcher is not None
        try:
            batch = []
            for trial in trials:
                values = self.values(trial.params)
                trial.set_user_attr("overrides", values)
                batch.append(fixed + [f"{self.override_keys[n]}={format_value(v)}" for n, v in values.items()]
                             + [f"++hydra.job.env_set.{TRIAL_ENV_VAR}={trial.number}"])
            self.validate_batch_is_legal(batch)
            results: List[JobReturn] = []
            start = 0
            for end in range(1, len(trials) + 1):  # runs of consecutive trial numbers = job numbers
                if end == len(trials) or trials[end].number != trials[end - 1].number + 1:
                    results += self.launcher.launch(batch[start:end], initial_job_idx=trials[start].number)
                    start = end
        except BaseException:
            for trial in trials:
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            raise
        for trial, r in zip(trials, results):
            value, error = job_objective(r)
            if error is None:
                study.tell(trial, value)
                log.info("Trial %d: %s -> %.6g", trial.number, trial.user_attrs["overrides"], value)
                continue
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
            "direction": self.direction, "n_trials": self.n_trials, "n_complete": len(complete),
            "n_failed": sum(t.state == TrialState.FAIL for t in trials),
            "best_trial": None, "best_value": None, "best_params": None,
        }
        if complete:
            best = study.best_trial
            result.update(best_trial=best.number, best_value=float(best.value),
                          best_params=dict(best.user_attrs.get("overrides") or self.values(best.params)))
        OmegaConf.save(OmegaConf.create(result), sweep_dir / RESULTS_FILE)
        print(f"[rewardsoup_optuna] {sweep_dir / RESULTS_FILE}:\n{OmegaConf.to_yaml(result)}", flush=True)
        return result
