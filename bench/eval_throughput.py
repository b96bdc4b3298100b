"""Evaluation throughput: our evaluator vs the seed's `scalar_score` loop through `transformers.pipeline`.

Same model (a reward model folder; default: the embedded base, built if needed), same demo_harmless
pairs. Ours: tokenize once (left-truncated), sort by length, batch chosen and rejected together, fp32
under inference_mode. Seed: `pipeline("text-classification")` called on each text one by one.
Both accuracies are printed: they must agree (same model, same texts).

    .venv/bin/python bench/eval_throughput.py [--pairs 200] [--model-path DIR] [--batch 32]

Last line: JSON {"speedup", "ours_pairs_per_s", "pipeline_pairs_per_s", ...}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rewardsoup.models.base import build_base  # noqa: E402
from rewardsoup.data import load_splits  # noqa: E402
from rewardsoup.data.schema import pair_texts  # noqa: E402
from rewardsoup.pipeline.run import compose_cfg  # noqa: E402
from rewardsoup.models.loading import load_scorer  # noqa: E402
from rewardsoup.scoring.metrics import pair_credit  # noqa: E402
from rewardsoup.scoring.rewards import score_pairs  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", type=int, default=200)
    p.add_argument("--model-path", default=None)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--max-length", type=int, default=1024)
    a = p.parse_args()
    cfg = compose_cfg("train", ["data=demo_harmless", "logger=none"])
    path = Path(a.model_path) if a.model_path else build_base(cfg.model)
    rows = load_splits(cfg.data).train
    texts = [pair_texts(r) for r in rows.select(range(min(a.pairs, len(rows))))]
    chosen, rejected = [c for c, _ in texts], [r for _, r in texts]
    model, tokenizer = load_scorer(path)

    start = time.perf_counter()
    c, r = score_pairs(model, tokenizer, chosen, rejected, a.max_length, a.batch)
    ours_s = time.perf_counter() - start

    from transformers import pipeline

    clf = pipeline("text-classification", model=str(path), dtype=torch.float32)
    start = time.perf_counter()
    pc = np.array([clf(t)[0]["score"] for t in chosen])
    pr = np.array([clf(t)[0]["score"] for t in rejected])
    pipe_s = time.perf_counter() - start

    n = len(texts)
    ours_acc, pipe_acc = float(pair_credit(c, r).mean()), float(pair_credit(pc, pr).mean())  # ties: half
    print(f"\nmodel {path}, {n} demo_harmless pairs ({2 * n} texts), batch {a.batch}")
    print(f"{'scorer':<44}{'wall s':>8}{'pairs/s':>10}{'accuracy':>10}")
    print(f"{'pipeline, one text at a time (seed)':<44}{pipe_s:>8.1f}{n / pipe_s:>10.1f}{pipe_acc:>10.3f}")
    print(f"{'rewardsoup scoring (sorted, batched)':<44}{ours_s:>8.1f}{n / ours_s:>10.1f}{ours_acc:>10.3f}")
    speedup = pipe_s / ours_s
    print(f"speedup: {speedup:.1f}x")
    print(json.dumps({"speedup": round(speedup, 2), "ours_pairs_per_s": round(n / ours_s, 2),
                      "pipeline_pairs_per_s": round(n / pipe_s, 2), "pairs": n,
                      "ours_accuracy": ours_acc, "pipeline_accuracy": pipe_acc}))


if __name__ == "__main__":
    main()
