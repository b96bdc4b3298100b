"""Training settings: which of head init, head lr, scheduler, epochs, steps, max_length and LoRA (rank, lr)
moves held-out accuracy?

One member of `--recipe real` (`--member`: `harmless`, hh-rlhf harmless-base, split 1,172 / 200 / 428 from
conf/data/shared_hh_harmless.yaml; or `helpful`, 3,403 / 497 / 1,169), trained as the recipe trains it
(conf/recipe/real.yaml: pairwise objective, 1 epoch, lr 2e-5, SmolLM2 cut to 4 layers) plus each variant's
overrides, once per variant, each into its own member folder under --root (never the demo's outputs). A
variant with its own `train.max_length` is scored at that length (the same pairs, tokenized as it trained). Every variant, the untrained base and the length heuristic (the evaluation's
`lengths.length_reference`: prefer the shorter or the longer side in tokens, whichever is better on val) are scored on the SAME test pairs through the project's one
scoring path (`evalset_from_split` + `score_evalset`); per-row credit is 1 / 0.5 (tie) / 0, and each row is
compared to `--baseline` (default `default`) with the paired bootstrap interval (`rewardsoup.scoring.stats.paired`),
on val (where a setting is decided) and on test (reported): "better" only when the whole 95% interval is above 0,
"worse" when it is below, otherwise "cannot tell at n=...".

    .venv/bin/python bench/train_settings.py [--member harmless] [--variants default,head_init=zero]
        [--baseline default] [--limit-train 64] [--root outputs/bench/train_settings] [--out table.md|.json]

Resumable and cheap to re-run: a variant whose member folder exists is not trained again (members are
written atomically; an interrupted one resumes from its checkpoint), and its scores are cached beside it.
`--limit-train N` stops training after N pairs (max_steps = N / batch size; the splits are unchanged) and
keeps its members in their own folder. `--recipe demo --member harmless` varies a demo member instead (the
LoRA variants: `--variants recipe,lora_r4,lora_r16,lora_r64 --baseline recipe`, docs/lora.md). Memory is not a
column: variants train in one process, which keeps what earlier ones allocated (measure one `train.py` per
process with `/usr/bin/time -v` instead). Last line: JSON with every row.
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
from rewardsoup.evaluation.comparisons import verdict  # noqa: E402
from rewardsoup.evaluation.lengths import length_reference  # noqa: E402
from rewardsoup.training.objectives import adapt_splits, get_objective  # noqa: E402
from rewardsoup.pipeline.recipes import compose_cfg, load_recipe, member_overrides  # noqa: E402
from rewardsoup.training.member import MEMBER_META, train_member  # noqa: E402

# name -> train.py overrides on top of the real recipe's hh member. Every variant names its scheduler, so a
# cached member keeps its meaning when the recipe's own setting changes: `default` is the recipe as it was
# before this bench (linear decay), which the bench measured `scheduler=constant` against and moved to.
LINEAR = ["train.scheduler=linear"]
LORA = ["train.lora.enabled=true", "train.lr=5e-4"]  # the demo_lora recipe's LoRA lr: 10x the full demo members'
VARIANTS = {
    "default": LINEAR,
    "head_init=zero": LINEAR + ["train.head_init=zero"],
    "head_lr": LINEAR + ["train.head_lr=2e-4"],  # 10x the recipe's lr 2e-5
    "scheduler=constant": ["train.scheduler=constant"],
    "scheduler=cosine": ["train.scheduler=cosine"],
    "epochs=2": LINEAR + ["train.epochs=2"],
    "constant+head_init=zero": ["train.scheduler=constant", "train.head_init=zero"],
    # The recipe's budget choices (#18), each against `recipe` (the member exactly as conf/recipe/real.yaml trains it):
    "recipe": [],
    "max_length=512": ["train.max_length=512"],  # 2-8% of hh pairs left-truncated instead of 22-44%; ~2x the tokens
    "full_epoch": ["train.max_steps=-1"],  # the helpful member without the recipe's 200-step cap (426 steps)
    # LoRA members (#32, training/lora.py), each against `recipe` (the full fine-tune): rank at alpha = 2r, then lr
    **{f"lora_r{r}": LORA + [f"train.lora.r={r}", f"train.lora.alpha={2 * r}"] for r in (4, 16, 64)},
    **{f"lora_r16_lr{lr}": ["train.lora.enabled=true", f"train.lr={lr}", "train.lora.r=16", "train.lora.alpha=32"]
       for lr in ("2e-4", "1e-3")},
}


def _slug(member: str, name: str) -> str:
    return f"{member}-" + name.replace("=", "-").replace("_", "-").replace("+", "-")


def member_cfg(root: Path, variant: str, limit_train: int | None, member_name: str, recipe_name: str = "real"):
    recipe = load_recipe(recipe_name)
    names = [m.name for m in recipe.members]
    if member_name not in names:
        sys.exit(f"error: --member {member_name!r} is not a member of --recipe {recipe_name} ({', '.join(names)})")
    member = next(m for m in recipe.members if m.name == member_name)
    runs = root / recipe_name / (f"limit{limit_train}" if limit_train else "full")
    slug = _slug(member_name, variant)
    extra = [f"paths.root={root}", "logger=none", f"train.member_name={slug}",
             f"train.output_dir={runs / 'members' / slug}"]
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


def _sets(splits, tokenizer, max_length: int, cache: dict) -> tuple:
    """(val, test) evalsets of `splits` tokenized at `max_length`, built once per length."""
    if max_length not in cache:
        cache[max_length] = tuple(evalset_from_split(splits.name, splits.schema, getattr(splits, s), tokenizer,
                                                     max_length) for s in ("val", "test"))
    return cache[max_length]


def _variant_row(root: Path, variant: str, a, splits, tokenizer, sets: dict, runs: Path) -> dict:
    """Train the variant's member unless it exists, score it on val and test at its own max_length."""
    vcfg, _ = member_cfg(root, variant, a.limit_train, a.member, a.recipe)
    out = Path(vcfg.train.output_dir)
    if (out / MEMBER_META).exists():
        print(f"[bench] {variant}: member exists ({out}), not retrained", flush=True)
    else:
        print(f"[bench] {variant}: training {' '.join(VARIANTS[variant]) or '(recipe settings)'}", flush=True)
        train_member(vcfg)
    meta = json.loads((out / MEMBER_META).read_text())
    val, test = _sets(splits, tokenizer, int(vcfg.train.max_length), sets)
    r_val, r_test = _score(out, [val, test], runs / "scores" / f"{_slug(a.member, variant)}.json")
    return {"kind": "variant", "overrides": VARIANTS[variant], "wall_s": meta["train_wall_s"],
            "steps": meta["steps"], "max_length": int(vcfg.train.max_length),
            "val_credit": row_credit(val, r_val), "test_credit": row_credit(test, r_test)}


def _reference_rows(base_dir: Path, val, test, runs: Path) -> dict:
    r_val, r_test = _score(base_dir, [val, test], runs / "scores" / "base.json")
    rows = {"untrained base": {"kind": "reference", "val_credit": row_credit(val, r_val),
                               "test_credit": row_credit(test, r_test)}}
    on_val, info = length_reference(val, val)  # the evaluation's length row: token lengths, direction from val
    rows[f"{info['rule']} (picked on val)"] = {"kind": "reference", "val_credit": row_credit(val, on_val.rewards),
                                               "test_credit": row_credit(test, length_reference(test, val)[0].rewards)}
    return rows


def _compare(rows: dict, baseline: str) -> None:
    """Accuracy, interval and the paired difference against `baseline`, on val and on test, into each row."""
    for split in ("val", "test"):
        ref = rows[baseline][f"{split}_credit"]
        for name, r in rows.items():
            r[f"{split}_acc"] = float(r[f"{split}_credit"].mean())
            r[f"{split}_lo"], r[f"{split}_hi"] = stats.interval(r[f"{split}_credit"])
            r[f"{split}_vs"] = None if name == baseline else stats.paired(r[f"{split}_credit"], ref)


def _lines(rows: dict) -> list[list[str]]:
    lines = []
    for name, r in rows.items():
        cells = [name]
        for split in ("val", "test"):
            d = r[f"{split}_vs"]
            cells += [f"{r[f'{split}_acc']:.3f} [{r[f'{split}_lo']:.3f}, {r[f'{split}_hi']:.3f}]",
                      "-" if d is None else f"{_fmt_diff(d)} {verdict(d)}"]
        lines.append(cells + [str(r.get("max_length", "-")), str(r.get("steps", "-")),
                              f"{r['wall_s']:.0f}" if "wall_s" in r else "-"])
    return lines


def _result(rows: dict, a, splits, val, test) -> dict:
    def vs(d):
        return None if d is None else {**{k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()},
                                       "verdict": verdict(d)}

    return {"recipe": a.recipe, "member": a.member, "dataset": splits.name, "n_train": len(splits.train), "n_val": val.n,
            "n_test": test.n, "baseline": a.baseline, "limit_train": a.limit_train, "rows": {
                name: {"val_acc": round(r["val_acc"], 4), "test_acc": round(r["test_acc"], 4),
                       "test_ci": [round(r["test_lo"], 4), round(r["test_hi"], 4)], "wall_s": r.get("wall_s"),
                       "steps": r.get("steps"), "max_length": r.get("max_length"), "overrides": r.get("overrides"),
                       "vs_baseline_val": vs(r["val_vs"]), "vs_baseline_test": vs(r["test_vs"])}
                for name, r in rows.items()}}


def _write(out: Path, result: dict, header: list, lines: list) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".json":
        atomic_write_json(out, result)
    else:
        md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        atomic_write_text(out, "\n".join(md + ["| " + " | ".join(line) + " |" for line in lines]) + "\n")
    print(f"table written to {out}")


def _args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default="real", choices=("real", "demo"), help="whose member: conf/recipe/<name>.yaml")
    p.add_argument("--member", default="harmless", help="the recipe's member to vary (real: harmless or helpful; "
                                                        "demo: thumbs, pairs or harmless)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {list(VARIANTS)}")
    p.add_argument("--baseline", default="default", help="the variant every row is compared with")
    p.add_argument("--limit-train", type=int, default=None, help="train on N pairs only (a quick check)")
    p.add_argument("--root", default=str(ROOT / "outputs" / "bench" / "train_settings"))
    p.add_argument("--out", default=None, help="also write the table: .json for JSON, otherwise markdown")
    a = p.parse_args()
    a.variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    unknown = [v for v in a.variants + [a.baseline] if v not in VARIANTS]
    if unknown:
        sys.exit(f"error: unknown variants {unknown}; expected some of {list(VARIANTS)}")
    if a.baseline not in a.variants:
        a.variants.insert(0, a.baseline)  # every row is compared to it
    return a


def main() -> None:
    a = _args()
    root = Path(a.root).resolve()
    cfg, runs = member_cfg(root, a.baseline, a.limit_train, a.member, a.recipe)
    base_dir = build_base(cfg.model)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    objective = get_objective(str(cfg.objective.name))
    splits, _ = adapt_splits(load_splits(cfg.data, tokenizer), objective, cfg.objective)
    sets: dict = {}
    val, test = _sets(splits, tokenizer, int(cfg.train.max_length), sets)
    print(f"[bench] {splits.name}: train {len(splits.train)}, val {val.n}, test {test.n} pairs; base {base_dir}; "
          f"members under {runs / 'members'}", flush=True)
    rows = {v: _variant_row(root, v, a, splits, tokenizer, sets, runs) for v in a.variants}
    rows.update(_reference_rows(base_dir, val, test, runs))
    _compare(rows, a.baseline)
    header = ["variant", f"val acc [95% CI] (n={val.n})", f"vs {a.baseline} on val, points [95% CI]",
              f"test acc [95% CI] (n={test.n})", f"vs {a.baseline} on test", "max_length", "steps", "train wall s"]
    lines = _lines(rows)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    limited = f", training stopped after {a.limit_train} pairs" if a.limit_train else ""
    print(f"\n{a.member} member of --recipe {a.recipe} ({cfg.model.name} cut to {cfg.model.layers} layers, "
          f"{cfg.objective.name}, epochs {cfg.train.epochs}, lr {cfg.train.lr}{limited}); "
          f"train {len(splits.train)} / val {val.n} / test {test.n} pairs")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for line in lines:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)))
    print(f"'vs {a.baseline}' is paired: the same pairs, both models; a setting is decided on val, test is "
          f"reported; 'better'/'worse' only when the whole 95% interval is above/below 0.")
    result = _result(rows, a, splits, val, test)
    if a.out:
        _write(Path(a.out), result, header, lines)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
