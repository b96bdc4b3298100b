"""Training settings on real data: which of head init, head lr, scheduler and epochs moves held-out accuracy?

The hh member as `--recipe real` trains it (conf/recipe/real.yaml: shared hh-rlhf harmless pairs,
pairwise objective, 1 epoch, lr 2e-5, SmolLM2 cut to 4 layers; each variant names its scheduler; split 1,172 / 200 / 428 from
conf/data/shared_hh_harmless.yaml), once per variant, each into its own member folder under --root (never
the demo's outputs). Every variant, the untrained base and the length heuristic (the evaluation's
`lengths.length_reference`: prefer the shorter or the longer side in tokens, whichever is better on val) are scored on the SAME test pairs through the project's one
scoring path (`evalset_from_split` + `score_evalset`); per-row credit is 1 / 0.5 (tie) / 0, and each row is
compared to `default` with the paired bootstrap interval (`rewardsoup.scoring.stats.paired`): "helps" only when the
whole 95% interval is above 0, "hurts" when it is below, otherwise "cannot tell at n=...".

    .venv/bin/python bench/train_settings.py [--variants default,head_init=zero] [--limit-train 64]
                                             [--root outputs/bench/train_settings] [--out table.md|.json]

Resumable and cheap to re-run: a variant whose member folder exists is not trained again (members are
written atomically; an interrupted one resumes from its checkpoint), and its scores are cached beside it.
`--limit-train N` stops training after N pairs (max_steps = N / batch size; the splits are unchanged) and
keeps its members in their own folder. Last line: JSON with every row.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rewardsoup.scoring import stats  # noqa: E402
from rewardsoup.core.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from rewardsoup.models.base import BASE_META, build_base  # noqa: E402
from rewardsoup.data import load_splits  # noqa: E402
from rewardsoup.scoring.metrics import evalset_from_split, row_credit, score_evalsets  # noqa: E402
from rewardsoup.evaluation.lengths import length_reference  # noqa: E402
from rewardsoup.training.objectives import adapt_splits, get_objective  # noqa: E402
from rewardsoup.pipeline.recipes import compose_cfg, load_recipe, member_overrides  # noqa: E402
from rewardsoup.training.member import MEMBER_META, train_member  # noqa: E402

# name -> train.py overrides on top of the real recipe's hh member. Every variant names its scheduler, so a
# cached member keeps its meaning when the recipe's own setting changes: `default` is the recipe as it was
# before this bench (linear decay), which the bench measured `scheduler=constant` against and moved to.
LINEAR = ["train.scheduler=linear"]
VARIANTS = {
    "default": LINEAR,
    "head_init=zero": LINEAR + ["train.head_init=zero"],
    "head_lr": LINEAR + ["train.head_lr=2e-4"],  # 10x the recipe's lr 2e-5
    "scheduler=constant": ["train.scheduler=constant"],
    "scheduler=cosine": ["train.scheduler=cosine"],
    "epochs=2": LINEAR + ["train.epochs=2"],
    "constant+head_init=zero": ["train.scheduler=constant", "train.head_init=zero"],
}
MEMBER = "hh"  # the real recipe's member this bench varies


def _slug(name: str) -> str:
    return "hh-" + name.replace("=", "-").replace("_", "-")


def member_cfg(root: Path, variant: str, limit_train: int | None):
    recipe = load_recipe("real")
    member = next(m for m in recipe.members if m.name == MEMBER)
    runs = root / (f"limit{limit_train}" if limit_train else "full")
    extra = [f"paths.root={root}", "logger=none", f"train.member_name={_slug(variant)}",
             f"train.output_dir={runs / 'members' / _slug(variant)}"]
    cfg = compose_cfg("train", member_overrides(recipe, member, extra) + VARIANTS[variant])
    if limit_train:
        steps = max(1, math.ceil(limit_train / (int(cfg.train.batch_size) * int(cfg.train.grad_accum))))
        cfg = compose_cfg("train", member_overrides(recipe, member, extra) + VARIANTS[variant]
                          + [f"train.max_steps={steps}"])
    return cfg, runs


def _score(model_dir: Path, evalsets, cache: Path | None) -> list[np.ndarray]:
    """Rewards of the model on [val, test], cached beside the member (keyed by its metadata's mtime)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    meta = next((model_dir / m for m in (MEMBER_META, BASE_META) if (model_dir / m).exists()), None)
    stamp = meta.stat().st_mtime if meta is not None else None
    if cache is not None and cache.exists():
        found = json.loads(cache.read_text())
        if found.get("stamp") == stamp and found.get("n") == [es.n for es in evalsets]:
            return [np.asarray(r) for r in found["rewards"]]
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    rewards = [s.rewards for s in score_evalsets(model, evalsets, model.config.pad_token_id, 32)]
    if cache is not None:
        atomic_write_json(cache, {"stamp": stamp, "n": [es.n for es in evalsets],
                                  "rewards": [r.tolist() for r in rewards]})
    return rewards


def _fmt_diff(d: dict) -> str:
    return f"{100 * d['diff']:+.1f} [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}]"


def verdict(d: dict) -> str:
    if d["lo"] > 0:
        return "helps"
    if d["hi"] < 0:
        return "hurts"
    return f"cannot tell at n={d['n']}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {list(VARIANTS)}")
    p.add_argument("--limit-train", type=int, default=None, help="train on N pairs only (a quick check)")
    p.add_argument("--root", default=str(ROOT / "outputs" / "bench" / "train_settings"))
    p.add_argument("--out", default=None, help="also write the table: .json for JSON, otherwise markdown")
    a = p.parse_args()
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        sys.exit(f"error: unknown variants {unknown}; expected some of {list(VARIANTS)}")
    if "default" not in variants:
        variants.insert(0, "default")  # every row is compared to it
    root = Path(a.root).resolve()

    cfg, runs = member_cfg(root, "default", a.limit_train)
    base_dir = build_base(cfg.model)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    objective = get_objective(str(cfg.objective.name))
    splits, _ = adapt_splits(load_splits(cfg.data, tokenizer), objective, cfg.objective)
    max_length = int(cfg.train.max_length)
    val, test = (evalset_from_split(splits.name, splits.schema, getattr(splits, s), tokenizer, max_length)
                 for s in ("val", "test"))
    print(f"[bench] {splits.name}: train {len(splits.train)}, val {val.n}, test {test.n} pairs; base {base_dir}; "
          f"members under {runs / 'members'}", flush=True)

    rows: dict[str, dict] = {}
    for variant in variants:
        vcfg, _ = member_cfg(root, variant, a.limit_train)
        out = Path(vcfg.train.output_dir)
        if (out / MEMBER_META).exists():
            print(f"[bench] {variant}: member exists ({out}), not retrained", flush=True)
        else:
            print(f"[bench] {variant}: training {' '.join(VARIANTS[variant]) or '(recipe settings)'}", flush=True)
            train_member(vcfg)
        meta = json.loads((out / MEMBER_META).read_text())
        r_val, r_test = _score(out, [val, test], runs / "scores" / f"{_slug(variant)}.json")
        rows[variant] = {"kind": "variant", "overrides": VARIANTS[variant], "wall_s": meta["train_wall_s"],
                         "steps": meta["steps"], "val_credit": row_credit(val, r_val),
                         "test_credit": row_credit(test, r_test)}
    r_val, r_test = _score(base_dir, [val, test], runs / "scores" / "base.json")
    rows["untrained base"] = {"kind": "reference", "val_credit": row_credit(val, r_val),
                              "test_credit": row_credit(test, r_test)}
    on_val, info = length_reference(val, val)  # the evaluation's length row: token lengths, direction from val
    rows[f"{info['rule']} (picked on val)"] = {"kind": "reference", "val_credit": row_credit(val, on_val.rewards),
                                               "test_credit": row_credit(test, length_reference(test, val)[0].rewards)}

    default = rows["default"]["test_credit"]
    for name, r in rows.items():
        r["test_acc"] = float(r["test_credit"].mean())
        r["test_lo"], r["test_hi"] = stats.interval(r["test_credit"])
        r["val_acc"] = float(r["val_credit"].mean())
        r["vs_default"] = None if name == "default" else stats.paired(r["test_credit"], default)

    header = ["variant", f"test acc [95% CI] (n={test.n})", "vs default, points [95% CI]", "verdict",
              f"val acc (n={val.n})", "train wall s"]
    lines = []
    for name, r in rows.items():
        d = r["vs_default"]
        lines.append([name, f"{r['test_acc']:.3f} [{r['test_lo']:.3f}, {r['test_hi']:.3f}]",
                      "-" if d is None else _fmt_diff(d), "-" if d is None else verdict(d), f"{r['val_acc']:.3f}",
                      f"{r['wall_s']:.0f}" if "wall_s" in r else "-"])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    limited = f", training stopped after {a.limit_train} pairs" if a.limit_train else ""
    print(f"\nhh member of --recipe real ({cfg.model.name} cut to {cfg.model.layers} layers, "
          f"{cfg.objective.name}, epochs {cfg.train.epochs}, lr {cfg.train.lr}{limited}); "
          f"train {len(splits.train)} / val {val.n} / test {test.n} pairs")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for line in lines:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)))
    print("'vs default' is paired: the same test pairs, both models; 'helps'/'hurts' only when its whole 95% "
          "interval is above/below 0.")

    result = {"dataset": splits.name, "n_train": len(splits.train), "n_val": val.n, "n_test": test.n,
              "limit_train": a.limit_train, "rows": {
                  name: {"test_acc": round(r["test_acc"], 4), "test_ci": [round(r["test_lo"], 4), round(r["test_hi"], 4)],
                         "val_acc": round(r["val_acc"], 4), "wall_s": r.get("wall_s"), "steps": r.get("steps"),
                         "overrides": r.get("overrides"),
                         "vs_default": None if r["vs_default"] is None else {
                             **{k: round(v, 4) if isinstance(v, float) else v for k, v in r["vs_default"].items()},
                             "verdict": verdict(r["vs_default"])}}
                  for name, r in rows.items()}}
    if a.out:
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".json":
            atomic_write_json(out, result)
        else:
            md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            md += ["| " + " | ".join(line) + " |" for line in lines]
            atomic_write_text(out, "\n".join(md) + "\n")
        print(f"table written to {out}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
