"""train.py's work: fine-tune one member from the merge-ready base and write it atomically.

Flow (its settings already passed the rules of training/config.py): load, split, adapt to the objective and
check the data (`member_data`, before the base: a bad data file stops the job with nothing written) -> build/reuse
the base -> tokenize (left-truncated, counted) -> train (Trainer or trl
RewardTrainer, checkpoints for resume) -> validation accuracy after every epoch through `rewardsoup.scoring.rewards` -> final folder with tokenizer
and `rewardsoup_member.json` (data, objective, base, split sizes, truncation counts, settings, metrics).

Settings beyond lr/epochs (conf/train.yaml): `head_init` (`base` keeps the base's seeded head, `zero`
zeroes the member's copy before training; the base folder is never changed, so members stay
merge-compatible), `head_lr` (a learning rate of its own for the score head), `scheduler`
(constant|linear|cosine after a warmup of `warmup_ratio` of the optimizer steps).

Several processes (`accelerate launch --multi_gpu --num_processes N train.py ...`, or torchrun): DDP through the
Trainer's own accelerate engine; every rank trains on its shard of each step, and only rank 0 writes.
- accelerate's `PartialState` is opened first (same device choice and `ddp_timeout` as the Trainer, which then
  reuses its process group). Under `main_process_first()` rank 0 reads the data, builds the base and tidies
  the work dir (removes a stale one, or checkpoints a kill cut short) while the other ranks wait; they then
  find the base and only read. Checkpoints are the Trainer's (`args.should_save`: rank 0 writes the model,
  optimizer and scheduler; each rank adds only its own `rng_state_<rank>.pth`).
- Only rank 0 opens the W&B run (the others get the no-op `Tracker`), and only `trainer.is_world_process_zero()`
  writes the member folder and `rewardsoup_member.json` and removes the work dir, after a
  `wait_for_everyone()` so no rank still touches a checkpoint.
- Validation runs on EVERY rank, on the full val set, through the unwrapped model (`trainer.model`): forward
  passes only, no collective, no sharding, so it gives a one-process run's numbers and cannot deadlock (a
  collective entered by one rank only would; rank 0 alone plus a barrier would leave the others waiting on a
  timeout through a long evaluation). Rank 0's numbers are the ones logged and saved.
- Data order: the Trainer's length-grouped sampler is drawn identically on every rank and accelerate hands
  each rank its own per-device batches of it, so one optimizer step sees train.batch_size x train.grad_accum
  x N rows (`distributed.effective_batch_size` in the metadata): keep that product when changing N. The
  sampler sizes its length-sorted megabatches from the per-device batch, so N x B rows do not replay the
  one-process order at batch N x B row for row (they do when every row has one length, as in
  tests/test_distributed_training.py): same recipe, not the same bits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rewardsoup.core import precision
from rewardsoup.core.atomic import atomic_dir, atomic_write_json
from rewardsoup.core.checkpoints import last_checkpoint
from rewardsoup.models.base import BASE_META, MEMBER_META, build_base, check_reward_model
from rewardsoup.models.cards import write_member_card
from rewardsoup.data.preflight import needs_tokenizer
from rewardsoup.core.errors import ConfigError, RewardSoupError
from rewardsoup.core.plain import plain
from rewardsoup.scoring.metrics import evalset_from_split, score_evalsets, validation_metrics
from rewardsoup.training import lora
from rewardsoup.training.config import SCHEDULERS
from rewardsoup.training.objectives import head_parameter_names
from rewardsoup.training.preflight import member_data
from rewardsoup.core.tracking import Tracker, start_run

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


def trainer_precision(choice: str) -> dict[str, Any]:
    """TrainingArguments' precision flags: `auto` is bf16 wherever it is native (`core.precision`: CUDA with
    bf16, CPUs with AVX512-BF16 or AMX), fp32 elsewhere. bf16 is the Trainer's mixed precision (autocast over
    fp32 weights), so a member is saved in fp32 and merges as before; bench/precision.py measured it."""
    import torch

    cuda = torch.cuda.is_available()
    choice = precision.resolve(choice, "cuda" if cuda else "cpu")
    return {"bf16": choice == "bf16", "fp16": choice == "fp16", "use_cpu": not cuda}


def _process_state(t: DictConfig):
    """accelerate's PartialState of this launch (one process under plain `python train.py`), opened on the
    device TrainingArguments will pick (train.precision's `use_cpu` or `accelerate launch --cpu`) and with its
    default `ddp_timeout`: the Trainer reuses the process group opened here."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env
    from transformers import TrainingArguments

    cpu = trainer_precision(str(t.precision))["use_cpu"] or parse_flag_from_env("ACCELERATE_USE_CPU")
    return PartialState(cpu=cpu, timeout=timedelta(seconds=TrainingArguments.ddp_timeout))


def _base(model_cfg: DictConfig) -> Path:
    """Build (or reuse) the merge-ready base; under main_process_first only rank 0 can find it missing."""
    fresh = not (Path(model_cfg.base_dir) / BASE_META).exists()
    base_dir = build_base(model_cfg)
    check_reward_model(base_dir)
    print(f"[rewardsoup] base: {base_dir} ({'built' if fresh else 'found'})", flush=True)
    return base_dir


def _tracking(cfg: DictConfig, name: str, main: bool):
    """The job's W&B run on the main process; the no-op Tracker on the other ranks."""
    return start_run(cfg, job_type="train", name=name) if main else contextlib.nullcontext(Tracker())


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
        dataloader_num_workers=0, disable_tqdm=False, **trainer_precision(str(t.precision)),
    )


def _callbacks(evaluate, tracker, every_epoch: bool):
    from transformers import TrainerCallback

    class Validate(TrainerCallback):
        """Validation accuracy after every epoch (train.validate=epochs), and a stop on a non-finite loss."""

        def __init__(self):
            self.history: list[dict] = []

        def on_log(self, args, state, control, logs=None, **kw):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(loss):
                raise NonFiniteLoss(f"training loss became {loss} at step {state.global_step}; "
                                    f"lower train.lr or check the data")

        def on_epoch_end(self, args, state, control, model=None, **kw):
            if not every_epoch:  # train.validate=end: once, on the final weights (_final_metrics)
                return
            metrics = evaluate(model)
            self.history.append({"epoch": round(state.epoch or 0, 3), "step": state.global_step, **metrics})
            tracker.log({**{f"val/{k}": v for k, v in metrics.items()}, "train/epoch": state.epoch})
            log.info("epoch %.2f val %s", state.epoch or 0, metrics)

    return Validate()


def _no_end_checkpoint():
    """transformers' DefaultFlowCallback also checkpoints the last step (model, Adam state, rng: ~3.5 s on the demo
    member); the finished member is written from memory right after, so that checkpoint only serves a kill between
    the two, which then resumes from the last `save_steps` checkpoint instead. Cancelled unless the step is one
    of `save_steps`' own (runs after DefaultFlowCallback: user callbacks follow the defaults)."""
    from transformers import TrainerCallback

    class NoEndCheckpoint(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step >= state.max_steps and state.global_step % max(1, int(args.save_steps)):
                control.should_save = False

    return NoEndCheckpoint()


def _prepared_data(cfg: DictConfig, objective, splits, tokenizer, say=print):
    """The tokenized train set of the checked splits (`member_data`) and its truncation counts."""
    max_length = int(cfg.train.max_length)
    train_ds, counts = objective.tokenize(splits.train, tokenizer, max_length, cfg.objective)
    sizes = splits.report["sizes"] if splits.parts else {s: len(getattr(splits, s)) for s in ("train", "val", "test")}
    mixed = f" from {len(splits.parts)} sets" if splits.parts else ""
    identical = sum(p.report.get("identical_pairs") or 0 for p in splits.parts or [splits])
    say(f"[rewardsoup] {splits.name} -> {objective.name}: train {sizes['train']}{mixed}, val {sizes['val']}, "
        f"test {sizes['test']}; left-truncated {counts['left_truncated']} of {counts['texts']} train "
        f"texts to {max_length} tokens (none dropped); {identical} source pairs with chosen == rejected dropped",
        flush=True)
    return train_ds, counts


def _validator(splits, tokenizer, t: DictConfig):
    """model -> validation metrics, the val rows tokenized once, forwards at the training precision (bf16 training
    validates in bf16, as the recipes' sweep trials score); a mix is validated on each part's val split
    (`<part>/<metric>` keys) and its `accuracy` is their mean, as the sweep objective averages datasets."""
    sets = [evalset_from_split(p.name, p.schema, p.val, tokenizer, int(t.max_length)) for p in splits.parts or [splits]]
    dtype = "bf16" if trainer_precision(str(t.precision))["bf16"] else "fp32"  # forwards at training's own precision

    def evaluate(model) -> dict:
        model, pad, batch = lora.unwrapped(model), tokenizer.pad_token_id, int(t.eval_batch_size)
        with precision.autocast(dtype):  # one pass over every part: a text two parts share is scored once
            scored = score_evalsets(model, sets, pad, batch)
        per = {es.name: validation_metrics(model, es, pad, batch, scored=s) for es, s in zip(sets, scored)}
        if not splits.parts:
            return per[splits.name]
        flat = {f"{name}/{k}": v for name, m in per.items() for k, v in m.items()}
        return {"accuracy": sum(m["accuracy"] for m in per.values()) / len(per),
                "n": sum(int(m["n"]) for m in per.values()), **flat}

    return evaluate


def _work_dir(t: DictConfig, main: bool = True) -> tuple[Path, str | None]:
    """The checkpoint folder beside the member's, and the checkpoint to resume from (train.resume). Only the
    main process removes anything; the other ranks run this after it (main_process_first) and only read."""
    final = Path(t.output_dir)
    work_dir = final.with_name(f".{final.name}.work")
    resume_from = last_checkpoint(work_dir, int(t.max_steps), main) if t.resume else None
    if not main:
        return work_dir, resume_from
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
    t, processes = cfg.train, int(trainer.args.world_size)
    return {
        "name": str(t.member_name), "data": plain(cfg.data), "objective": plain(cfg.objective),
        "base": str(base_dir), "base_meta": json.loads((base_dir / BASE_META).read_text()),
        "split_sizes": splits.report["sizes"] if splits.parts else {s: len(getattr(splits, s))
                                                                    for s in ("train", "val", "test")},
        "data_report": splits.report, "tokenization": counts, "max_length": int(t.max_length),
        "train": plain(t), "steps": trainer.state.global_step,
        "distributed": {"processes": processes, "per_device_batch_size": int(t.batch_size),
                        "grad_accum": int(t.grad_accum),
                        "effective_batch_size": int(t.batch_size) * int(t.grad_accum) * processes},
        "optimizer": {"lr": float(t.lr), "head_lr": head_lr(t) or float(t.lr), "head_init": str(t.head_init),
                      "lr_scheduler_type": SCHEDULERS[str(t.scheduler)], "warmup_ratio": float(t.warmup_ratio),
                      "warmup_steps": trainer.args.get_warmup_steps(trainer.state.max_steps),
                      "optimizer": type(trainer.optimizer).__name__},
        "train_loss": result.training_loss, "train_wall_s": round(wall, 2),
        "val": metrics, "val_history": history, "resumed_from": resume_from,
        "lora": lora.settings(trainer.model, t.lora) if lora.enabled(t) else None,
    }


def _final_metrics(history: list, trainer, evaluate, tracker) -> dict:
    """The last epoch-end validation when it saw the final weights, else one more pass (every rank), logged
    as the run's last val point."""
    last = history[-1] if history else {}
    if last.get("step") == trainer.state.global_step:
        return {k: v for k, v in last.items() if k not in ("epoch", "step")}
    metrics = evaluate(trainer.model)
    tracker.log({**{f"val/{k}": v for k, v in metrics.items()}, "train/epoch": trainer.state.epoch})
    return metrics


def _write_member(final: Path, trainer, tokenizer, meta: dict) -> None:
    with atomic_dir(final, overwrite=True) as tmp:
        model = lora.save(trainer.model, tmp) if meta.get("lora") else trainer.model  # LoRA: adapter/ + merged
        model.config.problem_type = None
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        atomic_write_json(tmp / MEMBER_META, meta)
        write_member_card(tmp, meta, load_from=str(final))  # README.md: the Hugging Face model card


def train_member(cfg: DictConfig) -> float | None:
    """Train the member described by `cfg` (train.yaml); returns its final validation accuracy (on every rank
    of a multi-process launch; only rank 0 writes)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

    t = cfg.train  # checked against training/config.py's rules by the caller (run_job, the pipeline)
    state = _process_state(t)
    with state.main_process_first():  # rank 0 reads the data, builds the base, tidies the work dir; then the rest
        if t.get("base_only", False):
            _base(cfg.model)
            return None
        objective, splits = member_data(cfg)  # before the base: a bad data file stops the job, nothing written
        if lora.enabled(t):  # as the data: LoRA targets that adapt nothing stop the job before the base
            lora.check_targets(cfg.model, t.lora)
        base_dir = _base(cfg.model)
        tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
        if needs_tokenizer(cfg.data):  # a chat template renders with the base's tokenizer: read again with it
            objective, splits = member_data(cfg, tokenizer)
        train_ds, counts = _prepared_data(cfg, objective, splits, tokenizer, say=state.print)
        work_dir, resume_from = _work_dir(t, state.is_main_process)
    set_seed(int(t.seed))
    model = AutoModelForSequenceClassification.from_pretrained(str(base_dir), dtype=torch.float32)
    if str(t.head_init) == "zero":  # on resume the checkpoint's weights replace it anyway
        zero_head(model)
    if lora.enabled(t):  # the body frozen under low-rank adapters; the (initialised) head trains in full
        model = lora.wrap(model, t.lora)
    evaluate = _validator(splits, tokenizer, t)
    name, final = str(t.member_name), Path(t.output_dir)
    with _tracking(cfg, name, state.is_main_process) as tracker:
        validate = _callbacks(evaluate, tracker, str(t.validate) == "epochs")
        args = _trainer_args(t, work_dir, tracker.enabled, name)
        trainer = objective.trainer(model, tokenizer, train_ds, args, cfg.objective, [validate, _no_end_checkpoint()],
                                    head_lr=head_lr(t))
        start = time.monotonic()
        result = _train(trainer, resume_from, work_dir)
        wall = time.monotonic() - start
        metrics = _final_metrics(validate.history, trainer, evaluate, tracker)
        trainer.accelerator.wait_for_everyone()  # no rank still writes its rng state into a checkpoint
        if trainer.is_world_process_zero():
            tracker.summary({f"val/{k}": v for k, v in metrics.items()})
            meta = _metadata(cfg, base_dir, splits, counts, trainer, result, wall, metrics, validate.history,
                             resume_from)
            _write_member(final, trainer, tokenizer, meta)
    if trainer.is_world_process_zero():
        shutil.rmtree(work_dir, ignore_errors=True)
        print(f"[rewardsoup] member '{name}' -> {final}: val accuracy {metrics['accuracy']:.3f} "
              f"(n={metrics['n']}), {trainer.state.global_step} steps in {wall:.1f}s", flush=True)
    return float(metrics["accuracy"])
