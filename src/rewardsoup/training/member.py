"""train.py's work: fine-tune one member from the merge-ready base and write it atomically.

Flow (its settings already passed the rules of training/config.py): build/reuse the base -> load and split
the data -> adapt it to the objective -> tokenize (left-truncated, counted) -> train (Trainer or trl
RewardTrainer, checkpoints for resume) -> validation accuracy after every epoch through `rewardsoup.scoring.rewards` -> final folder with tokenizer
and `rewardsoup_member.json` (data, objective, base, split sizes, truncation counts, settings, metrics).

Settings beyond lr/epochs (conf/train.yaml): `head_init` (`base` keeps the base's seeded head, `zero`
zeroes the member's copy before training; the base folder is never changed, so members stay
merge-compatible), `head_lr` (a learning rate of its own for the score head), `scheduler`
(constant|linear|cosine after a warmup of `warmup_ratio` of the optimizer steps).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rewardsoup.core.atomic import atomic_dir, atomic_write_json
from rewardsoup.models.base import BASE_META, MEMBER_META, build_base, check_reward_model
from rewardsoup.data import load_splits
from rewardsoup.core.errors import ConfigError, DataError, RewardSoupError
from rewardsoup.core.plain import plain
from rewardsoup.scoring.metrics import evalset_from_split, validation_metrics
from rewardsoup.training.config import SCHEDULERS
from rewardsoup.training.objectives import adapt_splits, get_objective, head_parameter_names
from rewardsoup.core.tracking import start_run

log = logging.getLogger("rewardsoup.training.member")


class NonFiniteLoss(RewardSoupError):
    pass


def head_lr(t: DictConfig) -> float | None:
    """The score head's own learning rate, or None: one optimizer group at train.lr (the Trainer's default)."""
    return None if t.get("head_lr") is None else float(t.head_lr)


def zero_head(model) -> None:
    """train.head_init=zero: the member's score head starts at zero (the base on disk is unchanged)."""
    import torch

    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in head_parameter_names(model):
            params[name].zero_()


def _precision(choice: str) -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    if choice == "auto":
        choice = "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
    return {"bf16": choice == "bf16", "fp16": choice == "fp16", "use_cpu": not cuda}


def _trainer_args(t: DictConfig, work_dir: Path, tracked: bool, name: str) -> dict[str, Any]:
    return dict(
        output_dir=str(work_dir / "checkpoints"), learning_rate=float(t.lr), num_train_epochs=float(t.epochs),
        max_steps=int(t.max_steps), per_device_train_batch_size=int(t.batch_size),
        gradient_accumulation_steps=int(t.grad_accum),
        # transformers 5.24 has no `warmup_ratio`: `warmup_steps` reads a float in [0, 1) as a share of the
        # optimizer steps (TrainingArguments.get_warmup_steps); the schema keeps the ratio in [0, 1)
        warmup_steps=float(t.warmup_ratio),
        weight_decay=float(t.weight_decay), seed=int(t.seed), data_seed=int(t.seed),
        train_sampling_strategy="group_by_length", lr_scheduler_type=SCHEDULERS[str(t.scheduler)],
        logging_steps=int(t.logging_steps), logging_nan_inf_filter=False, save_strategy="steps", save_steps=int(t.save_steps),
        save_total_limit=2, eval_strategy="no", report_to=["wandb"] if tracked else [], run_name=name,
        dataloader_num_workers=0, disable_tqdm=False, **_precision(str(t.precision)),
    )


def _callbacks(evaluate, tracker):
    from transformers import TrainerCallback

    class Validate(TrainerCallback):
        """Validation accuracy after every epoch, and a stop on a non-finite loss."""

        def __init__(self):
            self.history: list[dict] = []

        def on_log(self, args, state, control, logs=None, **kw):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(loss):
                raise NonFiniteLoss(f"training loss became {loss} at step {state.global_step}; "
                                    f"lower train.lr or check the data")

        def on_epoch_end(self, args, state, control, model=None, **kw):
            metrics = evaluate(model)
            self.history.append({"epoch": round(state.epoch or 0, 3), "step": state.global_step, **metrics})
            tracker.log({**{f"val/{k}": v for k, v in metrics.items()}, "train/epoch": state.epoch})
            log.info("epoch %.2f val %s", state.epoch or 0, metrics)

    return Validate()


def _complete(ckpt: Path) -> bool:
    """The Trainer writes trainer_state.json last: a checkpoint without a readable one was cut short."""
    try:
        json.loads((ckpt / "trainer_state.json").read_text())
        return True
    except (OSError, ValueError):
        return False


def _last_checkpoint(work_dir: Path) -> str | None:
    """The newest COMPLETE checkpoint; ones a kill cut short are removed so they are never resumed."""
    ckpts = sorted((work_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    for ckpt in reversed(ckpts):
        if _complete(ckpt):
            return str(ckpt)
        print(f"[rewardsoup] {ckpt.name} is incomplete (interrupted while saving); removing it", flush=True)
        shutil.rmtree(ckpt, ignore_errors=True)
    return None


def _prepared_data(cfg: DictConfig, objective, tokenizer):
    """The splits in the objective's schema (train and val must have rows) and the tokenized train set."""
    splits, converted = adapt_splits(load_splits(cfg.data, tokenizer), objective, cfg.objective)
    for split in ("train", "val"):
        if len(getattr(splits, split)) == 0:
            raise DataError(f"dataset '{splits.name}' has no {split} rows after splitting and pairing "
                            f"(sizes {splits.report.get('sizes')}, {converted or 'no conversion'}); "
                            f"add data or change data.split")
    max_length = int(cfg.train.max_length)
    train_ds, counts = objective.tokenize(splits.train, tokenizer, max_length, cfg.objective)
    print(f"[rewardsoup] {splits.name} -> {objective.name}: train {len(splits.train)}, val {len(splits.val)}, "
          f"test {len(splits.test)}; left-truncated {counts['left_truncated']} of {counts['texts']} train "
          f"texts to {max_length} tokens (none dropped)", flush=True)
    return splits, train_ds, counts


def _work_dir(t: DictConfig) -> tuple[Path, str | None]:
    """The checkpoint folder beside the member's, and the checkpoint to resume from (train.resume)."""
    final = Path(t.output_dir)
    work_dir = final.with_name(f".{final.name}.work")
    resume_from = _last_checkpoint(work_dir) if t.resume else None
    if t.resume and resume_from is None:
        print(f"[rewardsoup] train.resume=true but no checkpoint in {work_dir}; starting fresh", flush=True)
    if resume_from is None and work_dir.exists():
        shutil.rmtree(work_dir)
    return work_dir, resume_from


def _train(trainer, resume_from: str | None, work_dir: Path):
    try:
        return trainer.train(resume_from_checkpoint=resume_from)
    except ValueError as exc:  # torch refuses optimizer state whose param groups differ from this run's
        if resume_from is None or "parameter group" not in str(exc):
            raise
        raise ConfigError(f"{resume_from} was written with other optimizer groups (train.head_lr set in one "
                          f"run and not the other?); resume with the same settings, or delete {work_dir} "
                          f"to start over") from exc


def _metadata(cfg: DictConfig, base_dir: Path, splits, counts: dict, trainer, result, wall: float,
              metrics: dict, history: list, resume_from: str | None) -> dict:
    """rewardsoup_member.json: what the member was trained on, how, and its validation metrics."""
    t = cfg.train
    return {
        "name": str(t.member_name), "data": plain(cfg.data), "objective": plain(cfg.objective),
        "base": str(base_dir), "base_meta": json.loads((base_dir / BASE_META).read_text()),
        "split_sizes": {s: len(getattr(splits, s)) for s in ("train", "val", "test")},
        "data_report": splits.report, "tokenization": counts, "max_length": int(t.max_length),
        "train": plain(t), "steps": trainer.state.global_step,
        "optimizer": {"lr": float(t.lr), "head_lr": head_lr(t) or float(t.lr), "head_init": str(t.head_init),
                      "lr_scheduler_type": SCHEDULERS[str(t.scheduler)], "warmup_ratio": float(t.warmup_ratio),
                      "warmup_steps": trainer.args.get_warmup_steps(trainer.state.max_steps),
                      "optimizer": type(trainer.optimizer).__name__},
        "train_loss": result.training_loss, "train_wall_s": round(wall, 2),
        "val": metrics, "val_history": history, "resumed_from": resume_from,
    }


def train_member(cfg: DictConfig) -> float | None:
    """Train the member described by `cfg` (train.yaml); returns its final validation accuracy."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

    t = cfg.train  # checked against training/config.py's rules by the caller (run_job, the pipeline)
    base_dir = build_base(cfg.model)
    check_reward_model(base_dir)
    print(f"[rewardsoup] base: {base_dir}", flush=True)
    if t.get("base_only", False):
        return None
    objective = get_objective(str(cfg.objective.name))
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    splits, train_ds, counts = _prepared_data(cfg, objective, tokenizer)
    work_dir, resume_from = _work_dir(t)
    set_seed(int(t.seed))
    model = AutoModelForSequenceClassification.from_pretrained(str(base_dir), dtype=torch.float32)
    if str(t.head_init) == "zero":  # on resume the checkpoint's weights replace it anyway
        zero_head(model)
    val_set = evalset_from_split(splits.name, splits.schema, splits.val, tokenizer, int(t.max_length))  # once
    evaluate = lambda m: validation_metrics(m, val_set, tokenizer.pad_token_id, int(t.eval_batch_size))  # noqa: E731
    name, final = str(t.member_name), Path(t.output_dir)
    with start_run(cfg, job_type="train", name=name) as tracker:
        validate = _callbacks(evaluate, tracker)
        args = _trainer_args(t, work_dir, tracker.enabled, name)
        trainer = objective.trainer(model, tokenizer, train_ds, args, cfg.objective, [validate], head_lr=head_lr(t))
        start = time.monotonic()
        result = _train(trainer, resume_from, work_dir)
        wall = time.monotonic() - start
        last = validate.history[-1] if validate.history else {}
        if last.get("step") == trainer.state.global_step:  # the epoch-end validation saw the final weights
            metrics = {k: v for k, v in last.items() if k not in ("epoch", "step")}
        else:
            metrics = evaluate(trainer.model)
        tracker.summary({f"val/{k}": v for k, v in metrics.items()})
        meta = _metadata(cfg, base_dir, splits, counts, trainer, result, wall, metrics, validate.history, resume_from)
        with atomic_dir(final, overwrite=True) as tmp:
            trainer.model.config.problem_type = None
            trainer.model.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
            atomic_write_json(tmp / MEMBER_META, meta)
    shutil.rmtree(work_dir, ignore_errors=True)
    print(f"[rewardsoup] member '{name}' -> {final}: val accuracy {metrics['accuracy']:.3f} "
          f"(n={metrics['n']}), {trainer.state.global_step} steps in {wall:.1f}s", flush=True)
    return float(metrics["accuracy"])
