"""Training throughput: our binary objective vs the seed's run_classification-style recipe.

Same base (the embedded SmolLM2 cut to 4 layers, single-logit head), same demo_thumbs rows, same number
of examples, same lr and batch size. What differs is what the seed did: two labels with cross-entropy and
every example padded to max_length (1024); ours is one logit with BCE, dynamic padding, length-grouped
batches. tokens/s counts REAL (non-pad) tokens, the useful work, for both.

    .venv/bin/python bench/train_throughput.py [--examples 128] [--max-length 1024] [--model smollm2_135m]

Prints a table and, as its last line, JSON {"speedup", "ours_tokens_per_s", "seed_tokens_per_s", ...}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import rewardsoup.schemas  # noqa: E402,F401  (config schemas and resolvers, before compose)
from rewardsoup.models.base import build_base  # noqa: E402
from rewardsoup.data import load_splits  # noqa: E402
from rewardsoup.training.objectives import OBJECTIVES  # noqa: E402
from rewardsoup.scoring.metrics import binary_credit  # noqa: E402
from rewardsoup.scoring.rewards import score_texts  # noqa: E402


def _args(out: str, batch: int, lr: float, seed: int) -> dict:
    return dict(output_dir=out, learning_rate=lr, num_train_epochs=1, per_device_train_batch_size=batch,
                seed=seed, data_seed=seed, save_strategy="no", report_to=[], use_cpu=True,
                logging_steps=1000, disable_tqdm=True, lr_scheduler_type="linear")


def run_ours(base, tokenizer, train, val, max_length, batch, lr, seed):
    from transformers import AutoModelForSequenceClassification

    obj = OBJECTIVES["binary"]
    ds, _ = obj.tokenize(train, tokenizer, max_length, {})
    tokens = int(sum(len(x) for x in ds["input_ids"]))
    model = AutoModelForSequenceClassification.from_pretrained(str(base), dtype=torch.float32)
    with tempfile.TemporaryDirectory() as out:
        args = {**_args(out, batch, lr, seed), "train_sampling_strategy": "group_by_length"}
        trainer = obj.trainer(model, tokenizer, ds, args, {}, [])
        start = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - start
    acc = float(binary_credit(score_texts(model, tokenizer, val["text"], max_length), val["label"]).mean())
    return wall, tokens, acc


def run_seed(base, tokenizer, train, val, max_length, batch, lr, seed):
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

    enc = tokenizer(list(train["text"]), padding="max_length", truncation=True, max_length=max_length)
    ds = Dataset.from_dict({**enc, "labels": list(train["label"])})
    tokens = int(sum(sum(m) for m in enc["attention_mask"]))
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(base), num_labels=2, ignore_mismatched_sizes=True, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(model=model, args=TrainingArguments(**_args(out, batch, lr, seed)), train_dataset=ds)
        start = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - start
    model.eval()
    venc = tokenizer(list(val["text"]), padding="max_length", truncation=True, max_length=max_length,
                     return_tensors="pt")
    with torch.inference_mode():
        preds = torch.cat([model(input_ids=venc["input_ids"][i:i + 16],
                                 attention_mask=venc["attention_mask"][i:i + 16]).logits.argmax(-1)
                           for i in range(0, len(val), 16)])
    acc = float((preds.numpy() == np.asarray(val["label"])).mean())
    return wall, tokens, acc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=128)
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--model", default="smollm2_135m")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", [f"model={a.model}", "data=demo_thumbs", "logger=none"])
    base = build_base(cfg.model)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    splits = load_splits(cfg.data, tokenizer)
    train = splits.train.select(range(min(a.examples, len(splits.train))))
    torch.set_num_threads(torch.get_num_threads())
    rows = {}
    for name, fn in (("ours", run_ours), ("seed", run_seed)):
        wall, tokens, acc = fn(base, tokenizer, train, splits.val, a.max_length, a.batch, a.lr, a.seed)
        rows[name] = {"wall_s": wall, "tokens": tokens, "tokens_per_s": tokens / wall, "val_accuracy": acc}
    print(f"\nbase {base.name}, {len(train)} demo_thumbs examples, batch {a.batch}, lr {a.lr}, "
          f"max_length {a.max_length}, val n={len(splits.val)}")
    print(f"{'recipe':<36}{'wall s':>9}{'real tokens/s':>15}{'val acc':>9}")
    for name, label in (("seed", "seed: 2 labels, pad to max_length"), ("ours", "ours: 1 logit BCE, dynamic pad")):
        r = rows[name]
        print(f"{label:<36}{r['wall_s']:>9.1f}{r['tokens_per_s']:>15.0f}{r['val_accuracy']:>9.3f}")
    speedup = rows["ours"]["tokens_per_s"] / rows["seed"]["tokens_per_s"]
    print(f"speedup (ours / seed tokens/s): {speedup:.1f}x")
    print(json.dumps({"speedup": round(speedup, 2), "ours_tokens_per_s": round(rows["ours"]["tokens_per_s"], 1),
                      "seed_tokens_per_s": round(rows["seed"]["tokens_per_s"], 1),
                      "ours_val_accuracy": rows["ours"]["val_accuracy"],
                      "seed_val_accuracy": rows["seed"]["val_accuracy"], "examples": len(train)}))


if __name__ == "__main__":
    main()
