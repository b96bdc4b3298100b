"""rewardsoup's Hydra sweeper over current Optuna's ask/tell API (``hydra/sweeper=rewardsoup_optuna``).

``hydra-optuna-sweeper`` pins ``optuna<3`` and ``sqlalchemy<2``; this small plugin replaces it. Hydra finds
it by scanning the ``hydra_plugins`` namespace package, which imports ``config`` (registers the config
node ``hydra/sweeper: rewardsoup_optuna``) and ``sweeper`` (the plugin class). Optuna itself is imported
only when a sweep starts, so plain single runs pay nothing for the plugin.

Select it in a primary config::

    defaults:
      - _self_
      - override hydra/sweeper: rewardsoup_optuna

and see :class:`~hydra_plugins.rewardsoup_optuna.config.RewardsoupOptunaSweeperConf` for the fields.
Each job sees its Optuna trial number in the environment variable ``REWARDSOUP_OPTUNA_TRIAL``
(``TRIAL_ENV_VAR``, spelled once in ``rewardsoup.core.trial``).
"""

from rewardsoup.core.trial import TRIAL_ENV_VAR

__all__ = ["TRIAL_ENV_VAR"]
