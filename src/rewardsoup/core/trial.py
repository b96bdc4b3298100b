"""The environment variable that carries an Optuna trial number from the sweeper plugin to its job.

`hydra_plugins.rewardsoup_optuna` sets it per job (`hydra.job.env_set`); `rewardsoup.search.jobs` reads it
to label the ledger row. One spelling, here, below both.
"""

TRIAL_ENV_VAR = "REWARDSOUP_OPTUNA_TRIAL"
