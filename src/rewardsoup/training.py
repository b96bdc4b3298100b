"""train.py's work: fine-tune one member from the merge-ready base and write it atomically.

Flow: build/reuse the base -> load and split the data -> adapt it to the objective -> tokenize
(left-truncated, counted) -> train (Trainer or trl RewardTrainer, checkpoints for resume) -> validation
accuracy after every epoch through `rewardsoup.scoring` -> final folder with tokenizer and
`rewardsoup_member.json` (data, objective, base, split sizes, truncation counts, metrics).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rewardsoup.atomic import atomic_dir, atomic_write_json
from rewardsoup.base import BASE_META, build_base, check_reward_model
from rewardsoup.data import load_splits
from rewardsoup.errors import DataError, RewardSoupError
from rewardsoup.evaluation import evalset_from_split, validation_metrics
from rewardsoup.objectives import adapt_splits, get_objective
from rewardsoup.tracking import start_run

log = logging.getLogger("rewardsoup.training")
MEMBER_META = "rewardsoup_member.json"


class NonFiniteLoss(RewardSoupError):
    pass


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
        gradient_accumulation_steps=int(t.grad_accum), warmup_steps=float(t.warmup_ratio),
        weight_decay=float(t.weight_decay), seed=int(t.seed), data_seed=int(t.seed),
        train_sampling_strategy="group_by_length", lr_scheduler_type="linear",
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


def train_member(cfg: DictConfig) -> float | None:
    """Train the member described by `cfg` (train.yaml); returns its final validation accuracy."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

    t = cfg.train
    base_dir = build_base(cfg.model)
    check_reward_model(base_dir)
    print(f"[rewardsoup] base: {base_dir}", flush=True)
    if t.get("base_only", False):
        return None
    objective = get_objective(str(cfg.objective.name))
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    splits, converted = adapt_splits(load_splits(cfg.data, tokenizer), objective, cfg.objective)
    for split in ("train", "val"):
        if len(getattr(splits, split)) == 0:
            raise DataError(f"dataset '{splits.name}' has no {split} rows after splitting and pairing "
                            f"(sizes {splits.report.get('sizes')}, {converted or 'no conversion'}); "
                            f"add data or change data.split")
    max_length = int(t.max_length)
    train_ds, counts = objective.tokenize(splits.train, tokenizer, max_length, cfg.objective)
    print(f"[rewardsoup] {splits.name} -> {objective.name}: train {len(splits.train)}, val {len(splits.val)}, "
          f"test {len(splits.test)}; left-truncated {counts['left_truncated']} of {counts['texts']} train "
          f"texts to {max_length} tokens (none dropped)", flush=True)

    final = Path(t.output_dir)
    work_dir = final.with_name(f".{final.name}.work")
    resume_from = _last_checkpoint(work_dir) if t.resume else None
    if t.resume and resume_from is None:
        print(f"[rewardsoup] train.resume=true but no checkpoint in {work_dir}; starting fresh", flush=True)
    if resume_from is None and work_dir.exists():
        shutil.rmtree(work_dir)

    set_seed(int(t.seed))
    model = AutoModelForSequenceClassification.from_pretrained(str(base_dir), dtype=torch.float32)
    val_set = evalset_from_split(splits.name, splits.schema, splits.val, tokenizer, max_length)  # tokenized once
    evaluate = lambda m: validation_metrics(m, val_set, tokenizer.pad_token_id, int(t.eval_batch_size))  # noqa: E731
    name = str(t.member_name)
    with start_run(cfg, job_type="train", name=name) as tracker:
        validate = _callbacks(evaluate, tracker)
        args = _trainer_args(t, work_dir, tracker.enabled, name)
        trainer = objective.trainer(model, tokenizer, train_ds, args, cfg.objective, [validate])
        start = time.monotonic()
        result = trainer.train(resume_from_checkpoint=resume_from)
        wall = time.monotonic() - start
        last = validate.history[-1] if validate.history else {}
        if last.get("step") == trainer.state.global_step:  # the epoch-end validation saw the final weights
            metrics = {k: v for k, v in last.items() if k not in ("epoch", "step")}
        else:
            metrics = evaluate(trainer.model)
        tracker.summary({f"val/{k}": v for k, v in metrics.items()})
        meta = {
            "name": name, "data": OmegaConf.to_container(cfg.data, resolve=True),
            "objective": OmegaConf.to_container(cfg.objective, resolve=True),
            "base": str(base_dir), "base_meta": json.loads((base_dir / BASE_META).read_text()),
            "split_sizes": {s: len(getattr(splits, s)) for s in ("train", "val", "test")},
            "data_report": splits.report, "tokenization": counts, "max_length": max_length,
            "train": OmegaConf.to_container(t, resolve=True), "steps": trainer.state.global_step,
            "train_loss": result.training_loss, "train_wall_s": round(wall, 2),
            "val": metrics, "val_history": validate.history, "resumed_from": resume_from,
        }
        with atomic_dir(final, overwrite=True) as tmp:
            trainer.model.config.problem_type = None
            trainer.model.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
            atomic_write_json(tmp / MEMBER_META, meta)
    shutil.rmtree(work_dir, ignore_errors=True)
    print(f"[rewardsoup] member '{name}' -> {final}: val accuracy {metrics['accuracy']:.3f} "
          f"(n={metrics['n']}), {trainer.state.global_step} steps in {wall:.1f}s", flush=True)
    return float(metrics["accuracy"])
