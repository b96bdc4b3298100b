"""fp32 against bf16 (mixed precision where the CPU or GPU has it natively): training and scoring.

Training (`train.precision`): each model of a recipe (its members and its multi-task model) trained once in
fp32 (`--fp32-root`, e.g. a run of the recipe with `train.precision=fp32`) and once in bf16 (`--bf16-root`,
the recipe at `train.precision=auto` on a bf16-native machine), both scored in fp32 on the SAME test rows
through the one scoring path; per (model, set) the paired difference bf16 - fp32 with its 95% interval
(`stats.paired`). `worse_sets` counts the pairs whose interval lies wholly below 0. The speed is taken
here, alone: `--speed-steps` optimizer steps of each `--speed-models` model, trained from the same base in
fp32 and in bf16 (fresh processes, `train.max_steps`), the Trainer's own train wall; `train_speedup` is
their fp32 time / bf16 time summed over the models.

Scoring (`scoring.dtype`): every complete trial of the bf16 root's sweep (its requests, merged in memory as
a trial is) re-scored on val in fp32 and in bf16, the members alone too (the floors); the recipe's pick rule
applied to each: `same_pick` says whether the pick moves, and where it does the two picks are paired on test
(fp32). Scoring speed: val texts per second over the same trials (merge time excluded).

    .venv/bin/python bench/precision.py --recipe demo --fp32-root outputs/fp32 --bf16-root outputs
        [--speed-steps 24] [--speed-models harmless,thumbs] [--skip-speed] [--skip-sweep]

Last line: JSON with `train_speedup`, `worse_sets`, every pair, `same_pick` and the scoring speed-up.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from omegaconf import open_dict  # noqa: E402

from rewardsoup.core import precision  # noqa: E402
from rewardsoup.evaluation.job import evaluate_models  # noqa: E402
from rewardsoup.evaluation.comparisons import verdict  # noqa: E402
from rewardsoup.models.loading import load_reward_model  # noqa: E402
from rewardsoup.pipeline.recipes import compose_cfg, load_recipe, member_overrides  # noqa: E402
from rewardsoup.scoring import config as scoring  # noqa: E402
from rewardsoup.scoring import stats  # noqa: E402
from rewardsoup.scoring.evalsets import load_evalset  # noqa: E402
from rewardsoup.scoring.metrics import row_credit, score_evalsets  # noqa: E402
from rewardsoup.sweep import ledger  # noqa: E402
from rewardsoup.sweep.objective import floors_from_members, dataset_score  # noqa: E402
from rewardsoup.sweep.pick import test_config  # noqa: E402
from rewardsoup.sweep.references import ingredients  # noqa: E402
from rewardsoup.sweep.resident import resident  # noqa: E402
from rewardsoup.sweep.summary import choose  # noqa: E402
from rewardsoup.sweep.trials import score_request  # noqa: E402
from rewardsoup.training.member import MEMBER_META  # noqa: E402


def model_dirs(recipe, root: Path) -> dict[str, Path]:
    """Every member's and alternative's folder under `root`, as the pipeline names them."""
    out = {}
    for m in recipe.members + recipe.alternatives:
        cfg = compose_cfg("train", member_overrides(recipe, m, [f"paths.root={root}"]))
        out[m.name] = Path(cfg.train.output_dir)
    return out


def merge_cfg(recipe, root: Path, dtype: str = "fp32"):
    return compose_cfg("merge", ["search=optuna", *recipe.merge, f"paths.root={root}", f"scoring.dtype={dtype}"])


def test_sets(cfg, tokenizer_dir) -> list:
    return [load_evalset(n, cfg.datasets[n], "test", str(tokenizer_dir), int(cfg.trial.max_length), cfg.paths.cache,
                         scoring.truncation(cfg)) for n in cfg.datasets]


def credits(model, evalsets, batch: int) -> dict:
    scored = score_evalsets(model, evalsets, model.config.pad_token_id, batch)  # fp32: no autocast here
    return {es.name: row_credit(es, s.rewards) for es, s in zip(evalsets, scored)}


def training_pairs(recipe, fp32_root: Path, bf16_root: Path) -> list[dict]:
    """Per model and test set: bf16 - fp32 accuracy, paired, both scored in fp32 on the same rows."""
    cfg = merge_cfg(recipe, bf16_root)
    evalsets = test_sets(cfg, cfg.model.base_dir)
    rows = []
    a_dirs, b_dirs = model_dirs(recipe, fp32_root), model_dirs(recipe, bf16_root)
    for name in a_dirs:
        if not all((d[name] / MEMBER_META).exists() for d in (a_dirs, b_dirs)):
            print(f"note: {name} is not trained under both roots; not paired", flush=True)
            continue
        metas = [json.loads((d[name] / MEMBER_META).read_text()) for d in (a_dirs, b_dirs)]
        ran = [m.get("precision") for m in metas]  # what `auto` resolved to, where a member records it
        if ran[0] not in (None, "fp32") or ran[1] not in (None, "bf16"):
            print(f"note: {name}: trained in {ran[0]} / {ran[1]}, expected fp32 / bf16 (not paired)", flush=True)
            continue
        if None in ran:
            print(f"note: {name}: a folder without a recorded precision; train.precision="
                  f"{[m['train']['precision'] for m in metas]}: the fp32 root must have been trained in fp32")
        a = credits(load_reward_model(a_dirs[name]), evalsets, 32)
        b = credits(load_reward_model(b_dirs[name]), evalsets, 32)
        for ds in a:
            d = stats.paired(b[ds], a[ds])
            rows.append({"model": name, "set": ds, "fp32": float(a[ds].mean()), "bf16": float(b[ds].mean()),
                         **d, "verdict": verdict(d), "steps": [m["steps"] for m in metas],
                         "train_wall_s": [m["train_wall_s"] for m in metas]})
    return rows


def speed(recipe, root: Path, models: list[str], steps: int) -> dict:
    """Trainer wall of `steps` optimizer steps per model in fp32 and bf16, fresh processes, same base."""
    by_name = {m.name: m for m in recipe.members + recipe.alternatives}
    base = compose_cfg("train", member_overrides(recipe, recipe.members[0], [f"paths.root={root}"])).model.base_dir
    out = {}
    for name in models:
        walls = {}
        for dtype in ("fp32", "bf16"):
            with tempfile.TemporaryDirectory() as tmp:
                over = member_overrides(recipe, by_name[name], [f"paths.root={tmp}", f"model.base_dir={base}",
                                                                f"train.max_steps={steps}", f"train.precision={dtype}",
                                                                "logger=none", "train.resume=false"])
                subprocess.run([sys.executable, "train.py", *over], cwd=ROOT, check=True, capture_output=True)
                meta = json.loads(next(Path(tmp).glob(f"members/*/{MEMBER_META}")).read_text())
                walls[dtype] = float(meta["train_wall_s"])
        out[name] = walls | {"steps": steps, "speedup": walls["fp32"] / walls["bf16"]}
        print(f"speed {name}: {steps} steps fp32 {walls['fp32']:.1f}s, bf16 {walls['bf16']:.1f}s: "
              f"{out[name]['speedup']:.2f}x", flush=True)
    return out


def _rescore(cfg, requests: list[dict], members: list[str], objective) -> tuple[list[dict], dict, float, int]:
    """Trials and members alone on val at cfg's scoring.dtype: (rows, floors, scoring seconds, texts)."""
    seconds, texts, rows = 0.0, 0, []
    alone = {}
    for name in members:
        res = score_request(cfg, ingredients(requests[0], [name], "linear"))
        alone[name] = {ds: dataset_score(m, objective) for ds, m in res["val_detail"].items()}
    for i, req in enumerate(requests):
        res = score_request(cfg, req)
        seconds += res["trial_s"] - res["merge_s"]
        texts += res["texts"]
        rows.append({"trial": i, "objective": res["objective"], "val": res["val"], "state": "complete"})
        print(f"  {scoring.dtype(cfg)} trial {i}: objective {res['objective']:.4f}", flush=True)
    return rows, floors_from_members(alone, float(objective.get("max_loss", 0.02))), seconds, texts


def sweep_pick(recipe, root: Path, limit: int = 0) -> dict:
    """The recipe's sweep trials re-scored in fp32 and bf16: does the pick move, and what is bf16's speed?
    `limit` > 0: only the first `limit` trials (a speed reading; the pick is then among those only)."""
    cfg32 = merge_cfg(recipe, root, "fp32")
    header, rows = ledger.read(cfg32.sweep.dir)
    requests = [r["request"] for r in ledger.complete(rows)][:limit or None]
    objective = dict(header["objective"])
    out = {}
    for dtype in ("fp32", "bf16"):
        trows, floors, secs, texts = _rescore(merge_cfg(recipe, root, dtype), requests, sorted(header["members"]),
                                              objective)
        best, note = choose(trows, objective, floors if objective.get("kind") == "floors" else None)
        out[dtype] = {"pick": best["trial"], "objective": best["objective"], "note": note, "texts_per_s": texts / secs,
                      "objectives": [r["objective"] for r in trows]}
        print(f"sweep {dtype}: pick trial {best['trial']} (val objective {best['objective']:.4f}), "
              f"{texts / secs:.0f} val texts/s", flush=True)
    out["same_pick"] = out["fp32"]["pick"] == out["bf16"]["pick"]
    out["trials"] = len(requests)
    out["scoring_speedup"] = out["bf16"]["texts_per_s"] / out["fp32"]["texts_per_s"]
    gaps = [abs(a - b) for a, b in zip(out["fp32"]["objectives"], out["bf16"]["objectives"])]
    out["max_objective_gap"] = max(gaps)
    if not out["same_pick"]:  # the two picks on test, fp32
        tests = test_sets(cfg32, requests[0]["base"])
        cred = {}
        for dtype in ("fp32", "bf16"):
            prepared, model = resident(requests[0]["base"], requests[0]["members"])
            prepared.apply(model, requests[out[dtype]["pick"]])
            cred[dtype] = credits(model, tests, 32)
        d = stats.paired_mean(cred["bf16"], cred["fp32"])
        out["picks_on_test"] = d | {"verdict": verdict(d)}
    return out


def _verdicts(result: dict) -> dict[str, str]:
    """Every verdict a test table states: the bar per (model, set), and each paired comparison."""
    out = {f"bar {r['model']} {k[:-len('_bar')]}": v for r in result["rows"] for k, v in r.items()
           if isinstance(v, str) and k.endswith("_bar")}
    out.update({f"{v['model']} vs {v['against']} {v['dataset']}": v["verdict"] for v in result["verdicts"]})
    return out


def test_table(recipe, root: Path) -> dict:
    """The pick's test table (its models, from the report the pipeline wrote) in fp32 and in bf16: does any
    verdict change? Written to a temporary reports folder, the pipeline's report untouched."""
    cfg = merge_cfg(recipe, root)
    models = json.loads((Path(cfg.paths.reports) / "evaluate-test" / "results.json").read_text())["models"]
    alternatives = {n: p for n, p in models.items() if n in [m.name for m in recipe.alternatives]}
    out = {}
    for dtype in ("fp32", "bf16"):
        eval_cfg = test_config(cfg, models, alternatives)
        with tempfile.TemporaryDirectory() as tmp, open_dict(eval_cfg):
            eval_cfg.paths.reports, eval_cfg.scoring.dtype, eval_cfg.logger.backend = tmp, dtype, "none"
            start = time.perf_counter()
            out[dtype] = {"verdicts": _verdicts(evaluate_models(eval_cfg)), "seconds": time.perf_counter() - start}
    changed = {k: [out["fp32"]["verdicts"][k], v] for k, v in out["bf16"]["verdicts"].items()
               if out["fp32"]["verdicts"].get(k) != v}
    print(f"test table: {len(out['fp32']['verdicts'])} verdicts, {len(changed)} changed in bf16 {changed}; "
          f"{out['fp32']['seconds']:.0f} s fp32, {out['bf16']['seconds']:.0f} s bf16", flush=True)
    return {"verdicts": len(out["fp32"]["verdicts"]), "changed": changed,
            "seconds": {d: out[d]["seconds"] for d in out}}


def print_tables(pairs: list[dict], spd: dict, sweep: dict | None) -> None:
    print("\n| model | set | fp32 | bf16 | bf16 - fp32 (points) [95%] | verdict | steps | train wall fp32 / bf16 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in pairs:
        print(f"| {r['model']} | {r['set']} | {r['fp32']:.3f} | {r['bf16']:.3f} | {100 * r['diff']:+.1f} "
              f"[{100 * r['lo']:+.1f}, {100 * r['hi']:+.1f}] | {r['verdict']} | {r['steps'][1]} | "
              f"{r['train_wall_s'][0]:.0f} s / {r['train_wall_s'][1]:.0f} s |")
    if spd:
        print("\n| model | steps | fp32 s | bf16 s | speed-up |\n|---|---|---|---|---|")
        for name, s in spd.items():
            print(f"| {name} | {s['steps']} | {s['fp32']:.1f} | {s['bf16']:.1f} | {s['speedup']:.2f}x |")
    if sweep:
        print(f"\nsweep ({sweep['trials']} trials): fp32 pick trial {sweep['fp32']['pick']}, bf16 pick trial {sweep['bf16']['pick']} "
              f"(same: {sweep['same_pick']}); largest val-objective gap {100 * sweep['max_objective_gap']:.2f} points; "
              f"scoring {sweep['fp32']['texts_per_s']:.0f} -> {sweep['bf16']['texts_per_s']:.0f} val texts/s "
              f"({sweep['scoring_speedup']:.2f}x)" + (f"; picks on test bf16 - fp32 {sweep['picks_on_test']}"
                                                      if "picks_on_test" in sweep else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="demo")
    ap.add_argument("--fp32-root", type=Path, required=True)
    ap.add_argument("--bf16-root", type=Path, required=True)
    ap.add_argument("--speed-steps", type=int, default=24)
    ap.add_argument("--speed-models", default="")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-sweep", action="store_true")
    ap.add_argument("--skip-train", action="store_true", help="no fp32/bf16 member pairing (e.g. only the sweep)")
    ap.add_argument("--test-table", action="store_true", help="the pick's test table in fp32 and bf16: verdicts")
    ap.add_argument("--sweep-root", type=Path, help="whose sweep is re-scored (default: --bf16-root)")
    ap.add_argument("--sweep-trials", type=int, default=0, help="re-score only the first N trials (speed)")
    args = ap.parse_args()
    recipe = load_recipe(args.recipe)
    print(f"bf16 native here: {precision.bf16_native()}; train.precision=auto resolves to "
          f"{precision.resolve('auto')}", flush=True)
    models = [m for m in args.speed_models.split(",") if m] or [m.name for m in recipe.members[:1]]
    spd = {} if args.skip_speed else speed(recipe, args.bf16_root.resolve(), models, args.speed_steps)
    pairs = [] if args.skip_train else training_pairs(recipe, args.fp32_root.resolve(), args.bf16_root.resolve())
    sweep = None if args.skip_sweep else sweep_pick(recipe, (args.sweep_root or args.bf16_root).resolve(),
                                                   args.sweep_trials)
    table = test_table(recipe, args.bf16_root.resolve()) if args.test_table else None
    print_tables(pairs, spd, sweep)
    total = {k: sum(s[k] for s in spd.values()) for k in ("fp32", "bf16")} if spd else {}
    print(json.dumps({"recipe": args.recipe, "train_speedup": total["fp32"] / total["bf16"] if spd else None,
                      "worse_sets": sum(1 for r in pairs if r["hi"] < 0), "speed": spd,
                      "pairs": [{k: v for k, v in r.items()} for r in pairs],
                      "sweep": {k: v for k, v in (sweep or {}).items()}, "test_table": table}))


if __name__ == "__main__":
    main()
