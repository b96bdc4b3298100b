"""Training objectives: name -> builder. Both produce ONE logit per text, so every member merges.

- `binary`: thumbs up/down rows `{text, label}`; loss = BCE on the single logit, so sigmoid(logit) is
  P(liked). Runs through a plain `transformers.Trainer` with `compute_loss_func` (no subclass).
- `pairwise`: `{prompt, chosen, rejected, margin?}`; Bradley-Terry, -log sigmoid(r_chosen - r_rejected
  [- margin]), through trl's `RewardTrainer`.
- `multitask`: a mix of sets (data=<a mix>, data/mix.py): BCE on its binary rows and Bradley-Terry on its
  pairs, in one loss (`training.multitask`), through a plain `Trainer`: one model on all the members' data.

We tokenize ourselves (left truncation, see `rewardsoup.scoring.rewards`), so trl's `max_length` filter, which
silently drops long pairs, is switched off: nothing is ever dropped. `head_lr` (train.head_lr) gives the
score head a learning rate of its own: the Trainer's own optimizer class and settings, with the head in
param groups of its own, passed in as `optimizers=(optimizer, None)` (the Trainer still builds the
scheduler, and restores both from a checkpoint on resume). A data/objective mismatch is
explicit: binary data under `pairwise` is paired within each split by `objective.group_key`; pairwise
data under `binary` becomes chosen=1 / rejected=0 rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F
from datasets import Dataset

from rewardsoup.data import build_pairs, pairs_to_binary
from rewardsoup.data.loading import Splits, check_trainable
from rewardsoup.data.schema import pair_texts
from rewardsoup.core.registry import lookup
from rewardsoup.core.errors import ConfigError, ModelError
from rewardsoup.models.base import HEAD
from rewardsoup.data.mix import MIXED
from rewardsoup.scoring.rewards import tokenize
from rewardsoup.training.multitask import MixedCollator, multitask_loss, tokenize_mixed

log = logging.getLogger("rewardsoup.training.objectives")


def bce_loss(outputs, labels, num_items_in_batch=None, pos_weight: float | None = None) -> torch.Tensor:
    """Binary objective: one logit per text, BCE against the 0/1 label (sigmoid(logit) = P(liked))."""
    logits = outputs.logits.squeeze(-1).float()
    weight = None if pos_weight is None else torch.tensor(float(pos_weight), device=logits.device)
    return F.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=weight)


@dataclass
class Objective:
    name: str
    schema: str  # the canonical schema it trains on
    tokenize: Callable[[Dataset, Any, int, Mapping], tuple[Dataset, dict]]
    trainer: Callable[..., Any]


def adapt_splits(splits: Splits, objective: "Objective", objective_cfg: Mapping) -> tuple[Splits, dict]:
    """Convert the splits to the objective's schema (per split, so no text crosses splits)."""
    check_trainable(splits)  # an evaluation-only set (multi schema): one-line DataError naming the dataset
    if splits.schema == objective.schema:
        return splits, {}
    if MIXED in (splits.schema, objective.schema):
        raise ConfigError(f"objective '{objective.name}' cannot train on {splits.schema} data ('{splits.name}'): "
                          f"a mix of sets (adapter=mix) trains with objective=multitask, and only a mix does")
    report: dict[str, Any] = {"converted": f"{splits.schema} -> {objective.schema}"}
    parts = {}
    for name in ("train", "val", "test"):
        ds = getattr(splits, name)
        if objective.schema == "binary" and splits.schema == "pairwise":
            parts[name] = pairs_to_binary(ds)
        elif objective.schema == "pairwise" and splits.schema == "binary":
            key = objective_cfg.get("group_key", "group")
            parts[name], report[f"pairs_{name}"] = build_pairs(ds, group_key=key, seed=0)
        else:
            raise ConfigError(f"objective '{objective.name}' cannot train on {splits.schema} data "
                              f"('{splits.name}')")
    return Splits(splits.name, objective.schema, parts["train"], parts["val"], parts["test"],
                  {**splits.report, **report}), report


# ------------------------------------------------------------------------------------ score head + optimizer
# Trainer.get_decay_parameter_names' rule (transformers 5.24): no weight decay on biases, norms, LayerNorm
NO_DECAY_PATTERNS = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]


PEFT_PREFIX = "base_model.model."  # where a peft model (a LoRA member in training) keeps the wrapped model


def head_parameter_names(model) -> list[str]:
    """The score head's parameters (a LoRA member's: peft's trained copy and the frozen original)."""
    names = [n for n, _ in model.named_parameters()
             if n.removeprefix(PEFT_PREFIX) == HEAD or n.removeprefix(PEFT_PREFIX).startswith(f"{HEAD}.")]
    if not names:
        raise ModelError(f"{type(model).__name__} has no '{HEAD}' head; rewardsoup members are sequence "
                         f"classifiers with a one-logit '{HEAD}' layer")
    return names


def param_groups(model, lr: float, head_lr: float, weight_decay: float) -> list[dict]:
    """Body first (so the logged learning rate is the body's), then the head; each split by weight decay."""
    from transformers.trainer_pt_utils import get_parameter_names

    decay = set(get_parameter_names(model, [nn.LayerNorm], NO_DECAY_PATTERNS))
    head = set(head_parameter_names(model))
    groups = []
    for is_head, group_lr in ((False, lr), (True, head_lr)):
        for decays in (True, False):
            params = [p for n, p in model.named_parameters()
                      if p.requires_grad and (n in head) == is_head and (n in decay) == decays]
            if params:
                groups.append({"params": params, "lr": group_lr, "weight_decay": weight_decay if decays else 0.0,
                               "name": f"{'head' if is_head else 'body'}{'' if decays else '/no_decay'}"})
    return groups


def _optimizers(trainer_cls, model, args, head_lr: float | None) -> tuple:
    """(None, None): the Trainer's default optimizer; with `head_lr`, the same optimizer class and
    settings (`Trainer.get_optimizer_cls_and_kwargs`) over head/body param groups."""
    if head_lr is None:
        return None, None
    model.to(args.device)  # the Trainer would move it anyway; the optimizer must hold the placed tensors
    cls, kwargs = trainer_cls.get_optimizer_cls_and_kwargs(args, model)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)) or "params" in kwargs:
        raise ConfigError(f"train.head_lr needs a plain torch optimizer; optim={args.optim} builds its own "
                          f"parameter groups: set train.head_lr=null")
    groups = param_groups(model, float(args.learning_rate), float(head_lr), float(args.weight_decay))
    return cls(groups, **kwargs), None


# ---------------------------------------------------------------------------------------------- binary
def _tokenize_binary(ds: Dataset, tokenizer, max_length: int, objective_cfg: Mapping) -> tuple[Dataset, dict]:
    tok = tokenize(tokenizer, ds["text"], max_length)
    out = Dataset.from_dict({"input_ids": tok.ids, "attention_mask": [[1] * len(s) for s in tok.ids],
                             "labels": [float(x) for x in ds["label"]]})
    return out, {"texts": len(tok), "left_truncated": tok.truncated}


def _binary_trainer(model, tokenizer, train_ds: Dataset, args: Mapping, objective_cfg: Mapping, callbacks,
                    head_lr: float | None = None):
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    pos_weight = objective_cfg.get("pos_weight")
    targs = TrainingArguments(**args)
    trainer = Trainer(
        model=model,
        args=targs,
        train_dataset=train_ds,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_loss_func=lambda out, labels, num_items_in_batch=None: bce_loss(out, labels, pos_weight=pos_weight),
        callbacks=callbacks,
        optimizers=_optimizers(Trainer, model, targs, head_lr),
    )
    trainer.loss_is_scaled_for_ga = False  # a per-batch mean: the Trainer divides it by grad_accum itself
    return trainer


# ------------------------------------------------------------------------------------------- multitask
def _multitask_trainer(model, tokenizer, train_ds: Dataset, args: Mapping, objective_cfg: Mapping, callbacks,
                       head_lr: float | None = None):
    from transformers import Trainer, TrainingArguments

    targs = TrainingArguments(**{**args, "remove_unused_columns": False})  # the collator reads our columns
    trainer = Trainer(model=model, args=targs, train_dataset=train_ds, processing_class=tokenizer,
                      data_collator=MixedCollator(tokenizer.pad_token_id), compute_loss_func=multitask_loss,
                      callbacks=callbacks, optimizers=_optimizers(Trainer, model, targs, head_lr))
    trainer.loss_is_scaled_for_ga = False  # a per-batch mean, as the binary objective's
    return trainer


# -------------------------------------------------------------------------------------------- pairwise
def _tokenize_pairwise(ds: Dataset, tokenizer, max_length: int, objective_cfg: Mapping) -> tuple[Dataset, dict]:
    texts = [pair_texts(row) for row in ds]
    chosen = tokenize(tokenizer, [c for c, _ in texts], max_length)
    rejected = tokenize(tokenizer, [r for _, r in texts], max_length)
    columns: dict[str, list] = {
        "chosen_ids": chosen.ids, "rejected_ids": rejected.ids,
        "length": [max(len(c), len(r)) for c, r in zip(chosen.ids, rejected.ids)],
    }
    margins = ds["margin"] if "margin" in ds.column_names else []
    if objective_cfg.get("use_margin", True) and any(m is not None for m in margins):
        columns["margin"] = [float(m) if m is not None else 0.0 for m in margins]
    counts = {"texts": 2 * len(chosen), "left_truncated": chosen.truncated + rejected.truncated}
    return Dataset.from_dict(columns), counts


def _pairwise_trainer(model, tokenizer, train_ds: Dataset, args: Mapping, objective_cfg: Mapping, callbacks,
                      head_lr: float | None = None):
    from trl import RewardConfig, RewardTrainer

    config = RewardConfig(
        **args,
        max_length=None,               # we already left-truncated; trl's filter would DROP long pairs
        gradient_checkpointing=False,  # small models: checkpointing only costs time
        disable_dropout=True,          # trl's default for reward models: deterministic rewards
        remove_unused_columns=False,   # keep `length` for length-grouped batches
        center_rewards_coefficient=objective_cfg.get("center_rewards_coefficient"),
    )
    return RewardTrainer(model=model, args=config, train_dataset=train_ds, processing_class=tokenizer,
                         callbacks=callbacks, optimizers=_optimizers(RewardTrainer, model, config, head_lr))


OBJECTIVES: dict[str, Objective] = {
    "binary": Objective("binary", "binary", _tokenize_binary, _binary_trainer),
    "pairwise": Objective("pairwise", "pairwise", _tokenize_pairwise, _pairwise_trainer),
    "multitask": Objective("multitask", MIXED, tokenize_mixed, _multitask_trainer),
}


def get_objective(name: str) -> Objective:
    """A built-in objective, or an `Objective` of your own named by import path `module:attribute`."""
    objective = lookup(OBJECTIVES, name, "objective.name")
    if not isinstance(objective, Objective):
        raise ConfigError(f"objective.name={name!r} is a {type(objective).__name__}, not a rewardsoup Objective")
    return objective
