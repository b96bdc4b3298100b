"""tune.py's work: supervised fine-tuning of a generator on the replies a reward model picked (trl SFTTrainer).

Flow: read the generator's config and tokenizer -> read and check the picks (`tuning.picks`: a `mode=best` file
of this generator's family; a bad file stops the job before the model loads, nothing written) -> one
prompt-completion example per pick: the prompt is exactly the text the generator continued when it sampled
(`sampling.generation.generator_prompt`: its chat template, or the plain format), the completion is the
chosen reply -> trl's `SFTTrainer` with `completion_only_loss` (the loss covers the reply tokens and the
end-of-turn token only; prompt tokens are labelled -100), a full fine-tune or LoRA through peft (merged into
the weights on save) -> the picks' mean loss before and after training -> one folder, written atomically:
the weights, the tokenizer, `tuned_generator.json` and a model card. Checkpoints beside it let a killed run
resume (`tune.resume`, `core.checkpoints`); one W&B run per job.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rewardsoup.core.atomic import atomic_dir, atomic_write_json, atomic_write_text
from rewardsoup.core.checkpoints import last_checkpoint
from rewardsoup.core.plain import plain
from rewardsoup.core.tracking import start_run
from rewardsoup.models.assets import from_pretrained, resolve_model
from rewardsoup.sampling.generation import Generator, family, generator_prompt
from rewardsoup.training import lora
from rewardsoup.training.member import trainer_precision
from rewardsoup.tuning.picks import Pick, read_picks

TUNED_META = "tuned_generator.json"  # marks a tuned generator folder: source, family, picks, losses


def examples(picks: list[Pick], tokenizer) -> list[dict[str, str]]:
    """trl prompt-completion rows: the generator's own prompt text and the chosen reply after it."""
    gen = Generator(None, tokenizer, bool(getattr(tokenizer, "chat_template", None)))
    return [{"prompt": generator_prompt(gen, p.item), "completion": p.reply if gen.chat else " " + p.reply}
            for p in picks]


def _sft_config(t: DictConfig, work_dir: Path, tracked: bool, name: str):
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(work_dir / "checkpoints"), learning_rate=float(t.lr), num_train_epochs=float(t.epochs),
        max_steps=int(t.max_steps), per_device_train_batch_size=int(t.batch_size),
        per_device_eval_batch_size=int(t.batch_size), gradient_accumulation_steps=int(t.grad_accum),
        warmup_steps=float(t.warmup_ratio), weight_decay=float(t.weight_decay), seed=int(t.seed),
        data_seed=int(t.seed), logging_steps=int(t.logging_steps), save_strategy="steps",
        save_steps=int(t.save_steps), save_total_limit=2, eval_strategy="no",
        report_to=["wandb"] if tracked else [], run_name=name, dataloader_num_workers=0,
        max_length=int(t.max_length), completion_only_loss=True, packing=False,
        **trainer_precision(str(t.precision)),
    )


def build_trainer(model, tokenizer, rows: list[dict[str, str]], t: DictConfig, work_dir: Path, tracked: bool,
                  name: str):
    """The SFTTrainer over `rows` (also used by the tests to read its labels)."""
    from datasets import Dataset
    from trl import SFTTrainer

    return SFTTrainer(model=model, args=_sft_config(t, work_dir, tracked, name), train_dataset=Dataset.from_list(rows),
                      processing_class=tokenizer,
                      peft_config=lora.peft_config(t.lora, "CAUSAL_LM") if lora.enabled(t) else None)


def _work_dir(output: Path, t: DictConfig, resume: bool) -> tuple[Path, str | None]:
    work_dir = output.with_name(f".{output.name}.work")
    resume_from = last_checkpoint(work_dir, int(t.max_steps)) if resume else None
    if resume_from is None and work_dir.exists():
        shutil.rmtree(work_dir)
    return work_dir, resume_from


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _card(meta: dict[str, Any]) -> str:
    return "\n".join([
        "---", "library_name: transformers", "tags: [rewardsoup, best-of-n, sft]", "---", "",
        f"# {Path(meta['output']).name}", "",
        f"`{meta['source']}` fine-tuned with trl's SFTTrainer on {meta['examples']} replies that a reward model "
        f"picked (best of the candidates in `{meta['picks']}`); loss on the reply tokens only.", "",
        f"- picks' mean loss: {meta['loss_before']:.4f} before, {meta['loss_after']:.4f} after "
        f"({meta['steps']} optimizer steps, {meta['train_wall_s']:.0f} s)",
        f"- {'LoRA r=' + str(meta['lora']['r']) + ', merged into the weights' if meta['lora'] else 'full fine-tune'}",
        f"- generator family: `{meta['family']}`", ""])


def _save(output: Path, trainer, tokenizer, meta: dict[str, Any]) -> None:
    model = trainer.model
    if meta["lora"]:
        model = model.merge_and_unload()
    with atomic_dir(output, overwrite=True) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        atomic_write_json(tmp / TUNED_META, meta)
        atomic_write_text(tmp / "README.md", _card(meta))


def tune_generator(cfg: DictConfig) -> dict[str, Any]:
    """Fine-tune `cfg.generator` on `cfg.picks`; returns the metadata written beside the weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, set_seed

    t, output, picks_path = cfg.tune, Path(str(cfg.output)), Path(str(cfg.picks))
    path = resolve_model(str(cfg.generator))
    tokenizer = from_pretrained(AutoTokenizer, path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    fam = family(from_pretrained(AutoConfig, path), tokenizer)  # a fine-tuned copy keeps it: computed once
    picks = read_picks(picks_path, fam)
    rows = examples(picks, tokenizer)
    set_seed(int(t.seed))
    model = from_pretrained(AutoModelForCausalLM, path, dtype=torch.float32)
    work_dir, resume_from = _work_dir(output, t, bool(cfg.resume))
    name = str(cfg.get("name") or f"tune-{output.name}")
    with start_run(cfg, job_type="tune", name=name) as tracker:
        trainer = build_trainer(model, tokenizer, rows, t, work_dir, tracker.enabled, name)
        longest = max(len(ids) for ids in trainer.train_dataset["input_ids"])
        before = trainer.evaluate(trainer.train_dataset, metric_key_prefix="picks")["picks_loss"]
        start = time.monotonic()
        result = trainer.train(resume_from_checkpoint=resume_from)
        wall = time.monotonic() - start
        after = trainer.evaluate(trainer.train_dataset, metric_key_prefix="picks")["picks_loss"]
        meta = {"source": str(cfg.generator), "family": fam, "output": str(output),
                "picks": str(picks_path), "picks_sha256": _sha(picks_path), "examples": len(rows),
                "dropped_no_reply_tokens": len(rows) - len(trainer.train_dataset),  # trl drops fully masked rows
                "truncated": sum(len(ids) >= int(t.max_length) for ids in trainer.train_dataset["input_ids"]),
                "longest_tokens": int(longest), "steps": trainer.state.global_step,
                "loss_before": float(before), "loss_after": float(after), "train_loss": float(result.training_loss),
                "train_wall_s": round(wall, 2), "resumed_from": resume_from, "tune": plain(t),
                "lora": plain(t.lora) if lora.enabled(t) else None}
        tracker.summary({"tune/loss_before": before, "tune/loss_after": after, "tune/examples": len(rows)})
        _save(output, trainer, tokenizer, meta)
    shutil.rmtree(work_dir, ignore_errors=True)
    cut = f"; {meta['truncated']} cut at tune.max_length={int(t.max_length)}" if meta["truncated"] else ""
    print(f"[rewardsoup] tuned generator -> {output}: picks' loss {before:.4f} -> {after:.4f} "
          f"({len(rows)} replies, {trainer.state.global_step} steps in {wall:.0f}s{cut})", flush=True)
    return meta
