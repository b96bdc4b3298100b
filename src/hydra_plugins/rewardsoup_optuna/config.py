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

SAMPLERS = ("tpe", "cmaes", "random", "nsgaii")
DIRECTIONS = ("maximize", "minimize")


@dataclass
class RewardsoupOptunaSweeperConf:
    """Fields of ``hydra.sweeper`` when ``hydra/sweeper=rewardsoup_optuna``."""

    #: Instantiated by Hydra; do not change.
    _target_: str = "hydra_plugins.rewardsoup_optuna.sweeper.RewardsoupOptunaSweeper"

    #: Optuna sampler: ``tpe`` (TPESampler), ``cmaes`` (CmaEsSampler; needs the ``cmaes`` package; it
    #: samples float/int params jointly, categorical params fall back to independent random sampling with an
    #: Optuna warning; single objective only), ``random`` (RandomSampler) or ``nsgaii`` (NSGAIISampler, for
    #: multi-objective studies).
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

    #: TOTAL number of finished (COMPLETE or PRUNED) trials wanted in the study. With ``storage`` set, trials
    #: finished by earlier runs and other workers count toward it (and so do other workers' RUNNING ones), so
    #: rerunning a finished sweep launches nothing. A run launches at most ``n_trials - <finished at start>``
    #: jobs; failed jobs use up this run's budget (so a sweep whose jobs always crash still ends) but are not
    #: counted, so the next rerun retries them.
    n_trials: int = 20

    #: Trials asked per launcher batch (the ``launcher.launch`` call); parallel launchers (joblib, submitit)
    #: run a batch concurrently, the default basic launcher runs it one job after another.
    n_jobs: int = 1

    #: Optuna storage: an RDB URL (``sqlite:////abs/path/optuna.db``, four slashes for an absolute path;
    #: ``postgresql+psycopg2://user:pw@host/db``; ``mysql+pymysql://…``) or ``journal:/abs/path/optuna.journal``
    #: (Optuna's JournalStorage on a file: shared disk, no server). The study is created with
    #: ``load_if_exists=True``: rerunning the command resumes it, and N workers started with the same storage
    #: and study name share it (each asks, runs and tells its own trials; together they stop at n_trials).
    #: ``null``: in-memory study, nothing is resumed or shared.
    storage: Optional[str] = None

    #: Seconds between heartbeats of each running trial (RDB storages; Optuna's heartbeat). A trial whose
    #: worker stops beating for ``grace_period`` seconds is failed and queued again
    #: (``RetryHeartbeatStaleTrialCallback``) by the next worker that looks. On any storage a trial whose
    #: worker process died on the same host is failed and queued again at once. ``null``: no heartbeat.
    heartbeat_interval: Optional[int] = None

    #: Seconds without a heartbeat after which a RUNNING trial counts as dead (> heartbeat_interval).
    grace_period: Optional[int] = None

    #: How many times a dead worker's trial is queued again (``null``: no limit).
    max_retry: Optional[int] = 2

    #: Multi-objective study: the names of the values the job returns (``values`` of its returned mapping),
    #: one objective each, all in ``direction``; the study's best trials are its Pareto front. A list of
    #: names, or the key of a mapping in the task config whose keys are the names (``datasets``: one
    #: objective per eval set). ``null``: one objective (the job's ``objective``).
    objectives: Any = None

    #: Record the job's returned ``constraints`` (name -> value, <= 0 feasible) on its trial with
    #: ``Trial.set_constraint`` (Optuna 5's way; ``constraints_func`` is deprecated there): TPE and NSGA-II
    #: then treat infeasible trials as worse, so they learn where the feasible region is.
    constraints: bool = False

    #: Optuna pruner: ``none``, ``median`` (MedianPruner), ``successive_halving`` or ``hyperband``. A job
    #: reports its running objective after each chunk of val rows and stops when the pruner says so (state
    #: PRUNED). Needs ``storage`` (the job reports to the stored study) and a single objective.
    pruner: str = "none"

    #: Keyword arguments of the pruner, e.g. ``{n_startup_trials: 4}`` for median.
    pruner_kwargs: Dict[str, Any] = field(default_factory=dict)

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
