"""Config schema of the ``rewardsoup_optuna`` sweeper, registered as ``hydra/sweeper: rewardsoup_optuna``.

Example (under ``hydra.sweeper`` in the primary config, or as ``hydra.sweeper.*`` overrides)::

    hydra:
      sweeper:
        sampler: tpe            # tpe | cmaes | random
        sampler_kwargs: {n_startup_trials: 5}
        seed: 0
        direction: maximize     # maximize | minimize
        n_trials: 30            # total COMPLETE trials wanted in the study (resumed runs count old ones)
        n_jobs: 1               # trials asked per launcher batch
        storage: sqlite:////abs/path/optuna.db   # null = in-memory (no resume)
        study_name: merge_sweep
        params:
          merge.density: {low: 0.1, high: 1.0}                 # float range
          train.lr: {low: 1.0e-5, high: 1.0e-3, log: true}    # float range, log scale
          merge.method: {choices: [ties, linear, dare_ties]}  # categorical
          merge.k: {low: 1, high: 8, step: 1}                 # int range (low/high ints)
        simplex: [merge.weights.a, merge.weights.b, merge.weights.c]   # Dirichlet(1) weights, sum to 1

Each job finds its Optuna trial number in the environment variable ``REWARDSOUP_OPTUNA_TRIAL`` (set per job
through ``hydra.job.env_set``, so it works under any launcher and stays out of the task config, its
overrides and ``hydra.job.override_dirname``). Job folders under ``hydra.sweep.dir`` are named by trial
number, and the sweep writes ``optimization_results.yaml`` (best params, best value, counts) there.
Keys missing from the config take a ``+`` prefix in YAML (``+extra.key: {choices: [a, b]}``). To add a
searched key from the command line: ``'+hydra.sweeper.params={merge.density: {low: 0.1, high: 1.0}}'``
(a dict literal keeps the dotted key flat; ``+hydra.sweeper.params.merge.density=...`` would nest it).
"""


from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore

SAMPLERS = ("tpe", "cmaes", "random")
DIRECTIONS = ("maximize", "minimize")


@dataclass
class RewardsoupOptunaSweeperConf:
    """Fields of ``hydra.sweeper`` when ``hydra/sweeper=rewardsoup_optuna``."""

    #: Instantiated by Hydra; do not change.
    _target_: str = "hydra_plugins.rewardsoup_optuna.sweeper.RewardsoupOptunaSweeper"

    #: Optuna sampler: ``tpe`` (TPESampler), ``cmaes`` (CmaEsSampler; needs the ``cmaes`` package; it
    #: samples float/int params jointly, categorical params fall back to independent random sampling with an
    #: Optuna warning) or ``random`` (RandomSampler).
    sampler: str = "tpe"

    #: Extra keyword arguments for the sampler's constructor, e.g. ``{n_startup_trials: 5}`` or
    #: ``{multivariate: true, constant_liar: true}`` for TPE, ``{sigma0: 0.2}`` for CMA-ES. ``seed`` is set
    #: from the ``seed`` field and must not appear here.
    sampler_kwargs: Dict[str, Any] = field(default_factory=dict)

    #: Sampler seed: the same seed and search space give the same sequence of sampled params. When a stored
    #: study is resumed, the sampler is seeded with ``seed + <number of trials already in the study>`` so a
    #: resumed run is still deterministic but does not replay the first run's random draws.
    seed: int = 0

    #: ``maximize`` or ``minimize`` the float each job returns.
    direction: str = "maximize"

    #: TOTAL number of COMPLETE trials wanted in the study. With ``storage`` set, trials completed by
    #: earlier runs count toward it, so rerunning a finished sweep launches nothing. A run launches at most
    #: ``n_trials - <complete trials at start>`` jobs; failed jobs use up this run's budget (so a sweep whose
    #: jobs always crash still ends) but are not counted, so the next rerun retries them.
    n_trials: int = 20

    #: Trials asked per launcher batch (the ``launcher.launch`` call); parallel launchers (joblib, submitit)
    #: run a batch concurrently, the default basic launcher runs it one job after another.
    n_jobs: int = 1

    #: Optuna storage URL, e.g. ``sqlite:////abs/path/optuna.db`` (four slashes: absolute path). The study
    #: is created with ``load_if_exists=True``, so rerunning the same sweep resumes it. ``null``: in-memory
    #: study, nothing is resumed. Do not run two sweeps of one stored study at the same time: at start a
    #: sweep marks every RUNNING trial it finds FAIL (it takes them for leftovers of a killed run).
    storage: Optional[str] = None

    #: Study name inside the storage; the same storage can hold several studies.
    study_name: str = "rewardsoup"

    #: Search space: Hydra override key -> spec. A key may carry the ``+``/``++`` prefix when the config
    #: does not define it. Specs: ``{low: float, high: float, log: false, step: null}`` float range;
    #: ``{low: int, high: int, step: 1, log: false}`` int range (chosen when low and high are both ints,
    #: force with ``type: float|int``); ``{choices: [...]}`` categorical (strings, numbers, bools, null).
    #: ``low`` must be < ``high``.
    params: Dict[str, Any] = field(default_factory=dict)

    #: Override keys (at least two) parameterised on the probability simplex, e.g. merge weights: the
    #: study samples one raw ``_simplex_raw_<key>`` ~ Uniform(0, 1) per key and each job gets
    #: ``-log(u_i) / sum_j -log(u_j)`` (a Dirichlet(1) draw), so the values are in [0, 1] and sum to 1.
    #: Keys here must not also be in ``params``. ``null``: no simplex.
    simplex: Optional[List[str]] = None


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="rewardsoup_optuna",
    node=RewardsoupOptunaSweeperConf,
    provider="rewardsoup",
)
