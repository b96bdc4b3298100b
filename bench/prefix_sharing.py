"""Shared-prefix scoring against the full-text path: same model, same rows, same batch size.

Sets: the hh-rlhf harmless and helpful val splits from ../shared/data (skipped when absent) and the demo
pairwise sets' val splits. Model: the embedded SmolLM2 cut base (built if needed) or --model-path. Per set:
tokens forwarded by each path, pairs/s, accuracy of each path and the largest score difference; then all
sets scored together, as one sweep trial scores its val sets (`score_evalsets`), full vs shared.

    .venv/bin/python bench/prefix_sharing.py [--pairs N] [--model-path DIR] [--batch 32] [--max-length 512]

Last line: JSON {"speedup" (pairs/s shared over full on the hh val sets), "token_ratio" (tokens forwarded,
shared over full, hh val sets), "max_abs_score_diff" (every set), ...}.
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
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "src"))

from rewardsoup.models.base import build_base  # noqa: E402
from rewardsoup.models.loading import load_scorer  # noqa: E402
from rewardsoup.pipeline.run import compose_cfg  # noqa: E402
from rewardsoup.scoring.evalsets import build_evalset  # noqa: E402
from rewardsoup.scoring.metrics import Scored, metrics, score_evalsets, take_rows, text_groups  # noqa: E402
from rewardsoup.scoring.prefix import score_groups  # noqa: E402
from rewardsoup.scoring.rewards import score_ids  # noqa: E402

HH = {"hh_harmless_val": "hh-rlhf-harmless-base-test.1800.jsonl.gz",
      "hh_helpful_val": "hh-rlhf-helpful-base-test.jsonl.gz"}


def data_configs() -> dict:
    """name -> data config: the hh sets present in ../shared/data, then the demo pairwise sets."""
    out = {}
    for name, file in HH.items():
        if (SHARED / file).exists():
            out[name] = compose_cfg("train", ["data=shared_hh_harmless", f"data.name={name}",
                                              f"data.source={SHARED / file}"]).data
        else:
            print(f"skipping {name}: {SHARED / file} not present")
    for name in ("demo_harmless", "demo_pairs"):
        out[f"{name}_val"] = compose_cfg("train", [f"data={name}"]).data
    return out


def one_set(model, es, pad_id: int, batch: int) -> dict:
    """Full-text path vs shared-prefix path on one set: walls, tokens, accuracies, max |score diff|."""
    start = time.perf_counter()
    full = score_ids(model, es.ids, pad_id, batch)
    full_s = time.perf_counter() - start
    start = time.perf_counter()
    shared, stats = score_groups(model, es.ids, text_groups(es), pad_id, batch)
    shared_s = time.perf_counter() - start
    acc = [metrics(Scored(es, r), bootstrap=0)["accuracy"] for r in (full, shared)]
    return {"pairs": es.n, "full_s": full_s, "shared_s": shared_s, "tokens_full": stats.tokens_full,
            "tokens_shared": stats.tokens, "fallback": stats.fallback, "acc_full": acc[0], "acc_shared": acc[1],
            "max_diff": float(np.abs(full - shared).max()) if es.n else 0.0}


def trial_walls(model, sets: list, pad_id: int, batch: int) -> tuple[float, float]:
    """Every set scored in one call, as a sweep trial does: (full wall, shared wall)."""
    walls = []
    for share in (False, True):
        start = time.perf_counter()
        score_evalsets(model, sets, pad_id, batch, share_prefix=share)
        walls.append(time.perf_counter() - start)
    return walls[0], walls[1]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", type=int, default=0, help="first N val pairs per set (0: all)")
    p.add_argument("--model-path", default=None)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--max-length", type=int, default=512)
    a = p.parse_args()
    torch.set_grad_enabled(False)
    path = Path(a.model_path) if a.model_path else build_base(compose_cfg("train", ["logger=none"]).model)
    model, tokenizer = load_scorer(path)
    pad_id = model.config.pad_token_id
    sets = {}
    for name, data_cfg in data_configs().items():
        es = build_evalset(name, data_cfg, "val", tokenizer, a.max_length)
        sets[name] = take_rows(es, np.arange(min(a.pairs, es.n) if a.pairs else es.n))
    score_ids(model, [sets[next(iter(sets))].ids[0]], pad_id, 1)  # warm-up
    rows = {name: one_set(model, es, pad_id, a.batch) for name, es in sets.items()}
    trial_full, trial_shared = trial_walls(model, list(sets.values()), pad_id, a.batch)

    print(f"\nmodel {path}, max_length {a.max_length}, batch {a.batch}")
    print(f"{'set':<18}{'pairs':>6}{'tokens full':>13}{'shared':>9}{'ratio':>7}{'full p/s':>10}{'shared p/s':>11}"
          f"{'speedup':>9}{'fallback':>9}{'acc full':>9}{'shared':>8}{'max diff':>10}")
    for name, r in rows.items():
        print(f"{name:<18}{r['pairs']:>6}{r['tokens_full']:>13}{r['tokens_shared']:>9}"
              f"{r['tokens_shared'] / max(1, r['tokens_full']):>7.2f}{r['pairs'] / r['full_s']:>10.1f}"
              f"{r['pairs'] / r['shared_s']:>11.1f}{r['full_s'] / r['shared_s']:>8.2f}x{r['fallback']:>9}"
              f"{r['acc_full']:>9.3f}{r['acc_shared']:>8.3f}{r['max_diff']:>10.1e}")
    print(f"one trial's scoring (all sets together): full {trial_full:.1f}s, shared {trial_shared:.1f}s "
          f"({trial_full / trial_shared:.2f}x)")
    hh = [r for name, r in rows.items() if name in HH] or list(rows.values())
    pairs = sum(r["pairs"] for r in hh)
    speedup = (pairs / sum(r["shared_s"] for r in hh)) / (pairs / sum(r["full_s"] for r in hh))
    print(json.dumps({"speedup": round(speedup, 3),
                      "token_ratio": round(sum(r["tokens_shared"] for r in hh) / sum(r["tokens_full"] for r in hh), 4),
                      "max_abs_score_diff": max(r["max_diff"] for r in rows.values()),
                      "hh_sets": [n for n in rows if n in HH], "pairs": pairs, "max_length": a.max_length,
                      "batch": a.batch,
                      "accuracy_identical": all(r["acc_full"] == r["acc_shared"] for r in rows.values()),
                      "trial_wall_full_s": round(trial_full, 3), "trial_wall_shared_s": round(trial_shared, 3)}))


if __name__ == "__main__":
    main()
