"""Schemas of train.py: the training loss (`objective` group), the `train` block and the root config.

Registered as `objective/binary_schema`, `objective/pairwise_schema` and `train_schema` (conf/train.yaml
extends it). Values and their reasons are in conf/; the rules here are what a value must satisfy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from omegaconf import MISSING

from rewardsoup.core.config import (LoggerConfig, PathsConfig, at_least_one, checked, folder_name, folder_path,
                                    not_negative, one_of, positive, store, within)
from rewardsoup.data.config import MIX, DataConfig
from rewardsoup.models.config import ModelConfig

# train.scheduler -> transformers' lr_scheduler_type; each starts with the linear warmup of train.warmup_ratio
SCHEDULERS = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}
HEAD_INITS = ("base", "zero")  # base: the base's seeded random head; zero: the member starts from a zero head
VALIDATES = ("end", "epochs")  # end: val once, on the final weights; epochs: after every epoch too (W&B val curve)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # auto: bf16 on GPUs that support it, else fp32


@dataclass
class ObjectiveConfig:
    name: str = MISSING  # a built-in objective (training/objectives.py) or your own `module:attribute`
    group_key: Optional[str] = "group"  # binary data under a pairwise loss: pair rows of the same group


@dataclass
class BinaryObjectiveConfig(ObjectiveConfig):
    pos_weight: Optional[float] = checked(check=positive)  # BCE weight of positives; null = plain BCE


@dataclass
class PairwiseObjectiveConfig(ObjectiveConfig):
    use_margin: bool = MISSING  # subtract a `margin` column from the logit gap when the data has one
    center_rewards_coefficient: Optional[float] = checked(check=not_negative)  # trl's; null = off


@dataclass
class MultitaskObjectiveConfig(ObjectiveConfig):
    use_margin: bool = MISSING  # pairs subtract a `margin` column from the logit gap when the data has one


def _some_modules(v) -> str | None:
    return None if len(v) and all(str(x).strip() for x in v) else "must name at least one module (or [all-linear])"


@dataclass
class LoraSettings:
    """train.lora: a LoRA member (training/lora.py) instead of a full fine-tune."""

    enabled: bool = MISSING  # false: every weight trains (the recipes' members)
    r: int = checked(check=at_least_one)  # the adapters' rank
    alpha: float = checked(check=positive)  # peft's lora_alpha: the update is scaled by alpha / r
    dropout: float = checked(check=within(0, 1, high_open=True))  # dropout on the adapters' input
    targets: List[str] = checked(check=_some_modules)  # module names peft adapts, or [all-linear]


@dataclass
class TrainConfig:
    lr: float = checked(check=positive)
    head_lr: Optional[float] = checked(None, check=positive)  # null: the head trains at train.lr
    head_init: str = checked(check=one_of(*HEAD_INITS))
    scheduler: str = checked(check=one_of(*SCHEDULERS))
    epochs: int = MISSING  # at least 1 unless max_steps caps the run (rules below)
    batch_size: int = checked(check=at_least_one)
    grad_accum: int = checked(check=at_least_one)
    eval_batch_size: int = checked(check=at_least_one)
    max_length: int = checked(check=at_least_one)
    max_steps: int = MISSING  # > 0 caps optimizer steps; <= 0 runs `epochs` passes
    warmup_ratio: float = checked(check=within(0, 1, high_open=True))  # a share of the optimizer steps
    weight_decay: float = checked(check=not_negative)
    seed: int = MISSING
    precision: str = checked(check=one_of(*PRECISIONS))
    resume: bool = MISSING
    save_steps: int = checked(check=at_least_one)
    validate: str = checked(check=one_of(*VALIDATES))  # when the val split is scored during training
    logging_steps: int = checked(check=at_least_one)
    member_name: str = checked(check=folder_name)  # the member's folder under paths.members ('' = paths.members)
    output_dir: str = checked(check=folder_path)  # written by an atomic rename that replaces what is there
    base_only: bool = MISSING
    lora: LoraSettings = field(default_factory=LoraSettings)

    @staticmethod
    def rules(node) -> list[tuple[str, str]]:
        if node.max_steps <= 0 and node.epochs < 1:
            return [("epochs", "must be >= 1 (or cap the run with train.max_steps > 0)")]
        return []


@dataclass
class TrainJobConfig:
    """conf/train.yaml: one member = model x data x objective, trained with `train`."""

    paths: PathsConfig = MISSING
    model: ModelConfig = MISSING
    data: DataConfig = MISSING
    objective: ObjectiveConfig = MISSING
    logger: LoggerConfig = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)

    @staticmethod
    def rules(node) -> list[tuple[str, str]]:
        """A mix of sets (data.adapter=mix) trains with objective=multitask, and multitask only on a mix
        (an objective of your own, `module:attribute`, declares its schema itself)."""
        mix, name = node.data.adapter == MIX, str(node.objective.name)
        if mix and name != "multitask" and ":" not in name:
            return [("objective.name", f"data={node.data.name} is a mix of sets: train it with objective=multitask")]
        if name == "multitask" and not mix:
            return [("objective.name", f"objective=multitask trains on a mix of sets (data.adapter={MIX}, e.g. "
                                       f"data=demo_mix); data={node.data.name} is one set")]
        return []


store(BinaryObjectiveConfig, "binary_schema", group="objective")
store(PairwiseObjectiveConfig, "pairwise_schema", group="objective")
store(MultitaskObjectiveConfig, "multitask_schema", group="objective")
store(TrainJobConfig, "train_schema")
