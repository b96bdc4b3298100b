"""Members on real data from ../shared/data (skipped when absent), from the embedded base.

- pairwise member on hh-rlhf harmless (1,800 pairs, hash split 80/10/10), left-truncated to 256 tokens;
- binary member on kto_en_demo (300 conversations with a thumbs label, split 70/15/15).
Reports validation accuracy, n, wall time, and for hh-rlhf the "prefer the shorter transcript" baseline
(~0.55-0.57 per shared/NOTES.md) that a real reward model has to beat.

    .venv/bin/python bench/real_members.py [--epochs 1] [--max-steps -1] [--root outputs/real]

Last line: JSON with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SHARED = ROOT.parent / "shared" / "data"

from rewardsoup.data import load_splits  # noqa: E402
from rewardsoup.data.schema import pair_texts  # noqa: E402
from rewardsoup.models.base import MEMBER_META  # noqa: E402
from rewardsoup.pipeline.run import compose_cfg  # noqa: E402
from rewardsoup.training.member import train_member  # noqa: E402

RUNS = {
    "hh_rlhf_harmless": ("hh-rlhf-harmless-base-test.1800.jsonl.gz",
                         ["data=hh_rlhf", "objective=pairwise", "data.split.val=0.1", "data.split.test=0.1"]),
    "kto_en_demo": ("kto_en_demo.json",
                    ["data=local_binary", "data.name=kto_en_demo", "data.adapter=messages_label",
                     "objective=binary", "data.split.val=0.15", "data.split.test=0.15", "data.columns={}"]),
}


def shorter_baseline(cfg) -> float:
    val = load_splits(cfg.data).val
    texts = [pair_texts(r) for r in val]
    return float(np.mean([len(c) < len(r) for c, r in texts]))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=float, default=1)
    p.add_argument("--max-steps", type=int, default=-1)
    p.add_argument("--root", default=str(ROOT / "outputs" / "real"))
    a = p.parse_args()
    results = {}
    for name, (file, overrides) in RUNS.items():
        path = SHARED / file
        if not path.exists():
            print(f"skip {name}: {path} not present")
            continue
        cfg = compose_cfg("train", overrides + [f"data.source={path}", f"paths.root={a.root}", "logger=none",
                                                f"train.epochs={a.epochs}", f"train.max_steps={a.max_steps}",
                                                "train.lr=2e-5"])
        start = time.monotonic()
        acc = train_member(cfg)
        meta = json.loads((Path(cfg.train.output_dir) / MEMBER_META).read_text())
        results[name] = {"val_accuracy": round(acc, 4), "val_n": meta["val"]["n"],
                         "train_n": meta["split_sizes"]["train"], "wall_s": round(time.monotonic() - start, 1),
                         "left_truncated": meta["tokenization"]["left_truncated"]}
        if cfg.objective.name == "pairwise":
            results[name]["shorter_baseline"] = round(shorter_baseline(cfg), 4)
    print(f"\n{'member':<20}{'train n':>9}{'val n':>7}{'val acc':>9}{'baseline':>10}{'wall s':>8}")
    for name, r in results.items():
        print(f"{name:<20}{r['train_n']:>9}{r['val_n']:>7}{r['val_accuracy']:>9.3f}"
              f"{r.get('shorter_baseline', float('nan')):>10.3f}{r['wall_s']:>8.0f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
