"""The data a member trains on, read and checked before anything is built (`member_data`: train_member and the
pipeline call it before the base), and the same check as a Hydra callback (`CheckData`, registered in
conf/train.yaml) that runs before Hydra creates the run's folder: a bad data file (corrupt .gz, not UTF-8, a
missing column, a bad label, one class) is one `error:` line with nothing under `paths.root`."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rewardsoup.core.config import validate
from rewardsoup.core.errors import DataError, RewardSoupError
from rewardsoup.core.jobs import fail
from rewardsoup.data.preflight import load_data
from rewardsoup.training import lora
from rewardsoup.training.objectives import adapt_splits, get_objective


def _check_both_classes(splits) -> None:
    """A binary train split with one label only teaches no boundary: a DataError naming the source."""
    if splits.schema != "binary":
        return
    labels = set(splits.train["label"])
    if len(labels) == 1:
        raise DataError(f"{splits.report.get('source')}: every train row of dataset '{splits.name}' has label "
                        f"{labels.pop()} ({len(splits.train)} rows); a binary reward model needs rows of both "
                        f"labels 0 and 1")


def member_data(cfg: DictConfig, tokenizer=None):
    """(objective, the splits in its schema), checked: train and val have rows, a binary train split has both
    labels. Needs no tokenizer (`data.preflight.load_data`), so train_member and the pipeline call it before the
    base is built: a bad data file (or objective) stops the job with nothing written."""
    objective = get_objective(str(cfg.objective.name))
    splits, converted = adapt_splits(load_data(cfg.data, tokenizer), objective, cfg.objective)
    for split in ("train", "val"):
        for part in [splits] if split == "train" or not splits.parts else splits.parts:
            if len(getattr(part, split)) == 0:
                dropped = part.report.get("identical_pairs")
                raise DataError(f"dataset '{part.name}' ({part.report.get('source')}) has no {split} rows after "
                                f"splitting and pairing (sizes {part.report.get('sizes')}, "
                                f"{f'{dropped} identical pairs dropped, ' if dropped else ''}"
                                f"{converted or 'no conversion'}); add data or change data.split")
    for part in splits.parts or [splits]:
        _check_both_classes(part)
    return objective, splits


class CheckData(Callback):
    """`member_data` on a single run's composed config, after the schemas' value rules (applied here too: Hydra
    may call this callback before ValidateConfig, and the rules name a bad key better than a failed read)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            if not validate(config).train.get("base_only", False):
                member_data(config)
                if lora.enabled(config.train):  # targets that adapt no module: before the run's folder
                    lora.check_targets(config.model, config.train.lora)
        except RewardSoupError as exc:
            fail(str(exc))
