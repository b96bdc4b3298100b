"""Schema of tune.py's root config (conf/tune.yaml extends `tune_schema`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from omegaconf import MISSING

from rewardsoup.core.config import (LoggerConfig, PathsConfig, at_least_one, checked, existing_file, folder_path,
                                    not_negative, one_of, positive, store, within)
from rewardsoup.training.config import PRECISIONS, LoraSettings


@dataclass
class TuneSettings:
    """tune.*: supervised fine-tuning of the generator on the chosen replies (tuning/sft.py)."""

    lr: float = checked(check=positive)
    epochs: float = checked(check=positive)
    max_steps: int = MISSING  # > 0 caps optimizer steps; -1 = epochs decide
    batch_size: int = checked(check=at_least_one)
    grad_accum: int = checked(check=at_least_one)
    max_length: int = checked(check=at_least_one)  # prompt + reply tokens; longer examples are cut (counted)
    warmup_ratio: float = checked(check=within(0, 1, high_open=True))
    weight_decay: float = checked(check=not_negative)
    seed: int = MISSING
    precision: str = checked(check=one_of(*PRECISIONS))
    save_steps: int = checked(check=at_least_one)
    logging_steps: int = checked(check=at_least_one)
    lora: LoraSettings = field(default_factory=LoraSettings)


@dataclass
class TuneJobConfig:
    paths: PathsConfig = MISSING
    logger: LoggerConfig = MISSING
    generator: str = MISSING  # the causal LM to fine-tune: hub name, local folder or embedded:...
    picks: str = checked(check=existing_file)  # a sample.py mode=best jsonl written by this generator's family
    output: str = checked(check=folder_path)  # the tuned generator's folder (written atomically)
    resume: bool = MISSING
    tune: TuneSettings = field(default_factory=TuneSettings)
    name: Optional[str] = None  # the W&B run's name; null: tune-<output folder name>


store(TuneJobConfig, "tune_schema")
