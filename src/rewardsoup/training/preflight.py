"""train.py's data check as a Hydra callback: the data is read and checked (`member.member_data`) before Hydra
creates the run's folder, so a bad data file (corrupt .gz, not UTF-8, a missing column, a bad label) is one
`error:` line with nothing under `paths.root` (conf/train.yaml registers it after the value rules)."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rewardsoup.core.config import validate
from rewardsoup.core.errors import RewardSoupError
from rewardsoup.core.jobs import fail
from rewardsoup.training.member import member_data


class CheckData(Callback):
    """`member_data` on a single run's composed config, after the schemas' value rules (applied here too: Hydra
    may call this callback before ValidateConfig, and the rules name a bad key better than a failed read)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            if not validate(config).train.get("base_only", False):
                member_data(config)
        except RewardSoupError as exc:
            fail(str(exc))
