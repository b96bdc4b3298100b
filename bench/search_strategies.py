"""Search strategies at equal compute: which way of choosing the merge finds the best soup per text forwarded?

On trained members (`make demo`'s under --root, or `make report-real`'s with --recipe real), each strategy runs
as a user would run it, into its own sweep folder `<root>/sweeps/bench-<strategy>` (resumable: a rerun adds
only what is missing, so the dense reference is computed once and cached):

- tpe: the default sweep (`search=optuna`: TPE, floors, the recipe's trial count); `optuna-<method>` is reused
  when it exists (the sweep `make demo` / `make report-real` ran);
- tpe_startup4: the same with 4 random start-up trials instead of Optuna's 10 (a 12- or 8-trial sweep is
  otherwise mostly or wholly random search);
- tpe_pruned: the same with `pruner=successive_halving`, twice the trials, cut at the budget;
- proxy: `search=proxy` (logit-ensemble screening, then its real trials; the members' val pass counts);
- layerwise: `search=layerwise` from the pick of TPE's first half of trials, so with its learning it costs
  about one TPE sweep; layerwise_after_tpe: from the whole TPE sweep's pick (what a user runs after a sweep);
  layerwise_equal: `layerwise.start=equal` (the recipe's merge.weights and density, no sweep at all);
- cmaes_layers: `search=cmaes_layers` (CMA-ES over one weight per member and layer group);
- random: `--reference` random global trials; its best val objective (the floors rule) is the dense
  reference every regret is measured from; its first trials up to the budget are a strategy too (its wall is
  the run's, pro rata to those trials), and the reference's own pick (all its trials) is the row `reference`.

Compute = val texts forwarded (a backward pass counts as two; each member's own val pass for the floors is
shared by all and not counted). The budget is the TPE sweep's texts; a strategy's pick at the budget is the
floors rule over its rows that fit in it (layer-wise: its single row, whatever it cost). Each pick is scored
on TEST and compared with the TPE pick per dataset and on the test mean (paired 95% intervals; the mean's
resamples each dataset's rows on their own; each pick's test credits are kept in
<work>/search-strategies-<recipe>-test.json, so a report-only rerun, `--only ''`, scores only new picks).
A second table pairs each pick on test with what a user would choose instead: each dataset's specialist (the
member best on it; the recipe's 2-point bar: holds / fails / cannot tell), and on the test mean the multi-task
model (when the recipe trained one) and the members' logit ensemble (cached beside the picks' credits).
One plot: best val objective so far against texts forwarded.

    .venv/bin/python bench/search_strategies.py [--recipe demo] [--root outputs] [--reference 100]
    .venv/bin/python bench/search_strategies.py --recipe real --root outputs/real --reference 40

Last line: JSON {"bench": "search_strategies", "recipe", "budget_texts", "reference_trials", "reference_val",
"strategies": {name: {"texts", "wall_s", "peak_rss_mib", "val", "feasible", "regret", "test_mean", "vs_tpe": {diff, lo, hi},
"vs_reference": {diff, lo, hi} (against the dense reference's own pick; null without one),
"bar": {dataset: {diff, lo, hi, n, specialist, verdict}}, "vs_multitask"/"vs_ensemble": {diff, lo, hi, n, verdict}}}
(the multitask and ensemble rows carry test_mean and bar only),
"layerwise_vs_tpe_test_mean": {diff, lo, hi, n}, "layerwise_verdict"}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rewardsoup.core.atomic import atomic_write_json  # noqa: E402
from rewardsoup.core.plain import plain  # noqa: E402
from rewardsoup.evaluation.comparisons import best_member, verdict  # noqa: E402
from rewardsoup.evaluation.job import model_kind  # noqa: E402
from rewardsoup.models.loading import load_reward_model  # noqa: E402
from rewardsoup.pipeline.recipes import compose_cfg, load_recipe  # noqa: E402
from rewardsoup.pipeline.run import WALLS  # noqa: E402
from rewardsoup.scoring import config as scoring  # noqa: E402
from rewardsoup.scoring import stats  # noqa: E402
from rewardsoup.scoring.evalsets import load_evalset  # noqa: E402
from rewardsoup.scoring.metrics import ensemble, row_credit, score_evalsets  # noqa: E402
from rewardsoup.sweep import ledger, references  # noqa: E402
from rewardsoup.sweep.resident import resident  # noqa: E402
from rewardsoup.sweep.summary import choose  # noqa: E402

PRUNED = ["hydra.sweeper.pruner=successive_halving", "+hydra.sweeper.pruner_kwargs.min_resource=1",
          "+hydra.sweeper.pruner_kwargs.reduction_factor=2"]
WALL = "bench_wall.json"  # a strategy's wall seconds and peak resident MiB, beside its ledger
CMAES = {"demo": "cmaes_layers", "real": "cmaes_layers_real"}  # conf/search presets with the recipe's members


def _merge(args: list[str], multirun: bool, log: Path) -> tuple[float, float]:
    """Run merge.py; its wall seconds and peak resident memory in MiB (the child's own, from wait4)."""
    start = time.monotonic()
    with open(log, "a") as out:
        proc = subprocess.Popen([sys.executable, "merge.py", *(["-m"] if multirun else []), *args], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, proc.args)
    return time.monotonic() - start, usage.ru_maxrss / 1024  # Linux: KiB


def _record(folder: Path, wall: float, peak_mib: float) -> None:
    """Add a run's wall to the strategy's (a resumed run adds its time); keep the highest peak."""
    old = _kept(folder)
    atomic_write_json(folder / WALL, {"wall_s": old.get("wall_s", 0.0) + wall,
                                      "peak_rss_mib": max(old.get("peak_rss_mib", 0.0), peak_mib)})


def _kept(folder: Path) -> dict:
    """What this bench measured running the strategy into `folder` (kept there, so a report-only rerun has it)."""
    return json.loads((folder / WALL).read_text()) if (folder / WALL).exists() else {}


def _seed_folder(target: Path, source: Path, rows: list[dict] | None) -> None:
    """A fresh sweep folder with `source`'s header and member scores (and `rows`, when given)."""
    if (target / ledger.HEADER).exists():
        return
    target.mkdir(parents=True, exist_ok=True)
    for name in (ledger.HEADER, "members.json"):
        if (source / name).exists():
            shutil.copy(source / name, target / name)
    for row in rows or []:
        ledger.append(target, row)


def run_strategies(a, common: list[str], cfg) -> dict[str, dict]:
    sweeps, log = Path(cfg.paths.root) / "sweeps", Path(a.work) / f"search-{a.recipe}.log"
    tpe_dir = sweeps / f"optuna-{cfg.merge.method}"
    if not (tpe_dir / "pick.json").exists():
        _record(tpe_dir, *_merge([*common, *a.sweeper, "search=optuna"], True, log))
    tpe_rows = ledger.complete(ledger.read(tpe_dir)[1])
    half = sorted(tpe_rows, key=lambda r: r["trial"])[: max(1, len(tpe_rows) // 2)]
    plan = {
        "tpe_startup4": (True, ["search=optuna", "+hydra.sweeper.sampler_kwargs.n_startup_trials=4"], None),
        "tpe_pruned": (True, ["search=optuna", f"hydra.sweeper.n_trials={2 * len(tpe_rows)}", *PRUNED], None),
        "proxy": (False, ["search=proxy"], None),
        "layerwise": (False, ["search=layerwise"], half),
        "layerwise_after_tpe": (False, ["search=layerwise"], tpe_rows),
        "layerwise_equal": (False, ["search=layerwise", "layerwise.start=equal"], None),
        "cmaes_layers": (True, [f"search={CMAES[a.recipe]}", f"hydra.sweeper.n_trials={a.cmaes_trials}",
                                "hydra.sweeper.simplex=null"], None),
        "random": (True, ["search=optuna", "hydra.sweeper.sampler=random", f"hydra.sweeper.n_trials={a.reference}",
                          "hydra.sweeper.constraints=false"], None),
    }
    dirs = {"tpe": tpe_dir}
    for name in (list(plan) if a.only == "all" else [n for n in a.only.split(",") if n]):  # run now, in this order
        multi, extra, seed_rows = plan[name]
        dirs[name] = sweeps / f"bench-{name}"
        _seed_folder(dirs[name], tpe_dir, seed_rows)
        done = ledger.read(dirs[name])[1]
        if name.startswith("layerwise") and any(r.get("source") == "layerwise" for r in done):
            continue
        sweeper = a.sweeper if multi else []  # extra wins over the recipe's sweeper keys
        _record(dirs[name], *_merge([*common, *sweeper, *extra, f"sweep.name=bench-{name}"], multi, log))
    for name in plan:  # the others, as far as earlier runs got (the dense reference is resumed, not redone)
        if name not in dirs and (sweeps / f"bench-{name}" / ledger.LEDGER).exists():
            dirs[name] = sweeps / f"bench-{name}"
    kept = {n: _kept(d) for n, d in dirs.items()}
    kept["tpe"].setdefault("wall_s", _pipeline_sweep_wall(Path(cfg.paths.root)))  # make demo / report-real ran it
    return {n: {"dir": d, "wall": kept[n].get("wall_s"), "peak": kept[n].get("peak_rss_mib")} for n, d in dirs.items()}


def _pipeline_sweep_wall(root: Path) -> float | None:
    """The sweep stage's seconds when `make demo` / `make report-real` ran the TPE sweep (None when unknown)."""
    walls = json.loads((root / WALLS).read_text()) if (root / WALLS).exists() else {}
    return next((s for stage, s in walls.items() if stage.startswith("3/5 sweep")), None)


def curve(name: str, rows: list[dict], objective: dict, floors: dict, n_members: int, val_texts: int):
    """[(texts so far, best val objective so far by the floors rule)]; each row gets its running cost `_spent`."""
    points, seen = [], []
    spent = n_members * val_texts if name == "proxy" else 0  # the proxy's one val pass per member
    for row in rows:
        spent += int(row.get("texts", 0)) + int(row.get("texts_learned", 0))
        row["_spent"] = spent
        seen.append(row)
        if ledger.complete(seen):
            points.append((spent, choose(seen, objective, floors)[0]["objective"]))
    return points


def _test_sets(cfg, tokenizer_dir: str) -> list:
    return [load_evalset(n, cfg.datasets[n], "test", tokenizer_dir, int(cfg.trial.max_length), cfg.paths.cache,
                         scoring.truncation(cfg)) for n in cfg.datasets]


def test_credits(cfg, request: dict) -> dict:
    prepared, model = resident(request["base"], request["members"])
    prepared.apply(model, request)
    evalsets = _test_sets(cfg, request["base"])
    scored = score_evalsets(model, evalsets, model.config.pad_token_id, int(cfg.trial.batch_size))
    return {es.name: row_credit(es, s.rewards) for es, s in zip(evalsets, scored)}


def alternative_credits(cfg, request: dict, cache: dict, tests: Path) -> dict[str, dict]:
    """Test credits of what a user weighs against a soup: each member (the specialists), the multi-task model
    (kind multitask under paths.members, when trained) and the members' logit ensemble; cached like the picks'."""
    members = {n: Path(p) for n, p in request["members"].items()}
    multitask = [p for p in sorted(Path(cfg.paths.members).glob("*")) if p.is_dir() and model_kind(p) == "multitask"]
    folders = members | ({"multitask": multitask[0]} if multitask else {})
    stamp = "@" + ",".join(f"{n}={p.stat().st_mtime_ns}" for n, p in folders.items())
    if f"ensemble{stamp}" not in cache:
        evalsets, scored = _test_sets(cfg, request["base"]), {}
        for name, folder in folders.items():
            model = load_reward_model(folder)
            scored[name] = score_evalsets(model, evalsets, model.config.pad_token_id, int(cfg.trial.batch_size))
        scored["ensemble"] = [ensemble([scored[m][i] for m in members]) for i in range(len(evalsets))]
        for name, sc in scored.items():
            cache[f"{name}{stamp}"] = {es.name: row_credit(es, s.rewards) for es, s in zip(evalsets, sc)}
        _save_tests(tests, cache)
    return {n: cache[f"{n}{stamp}"] for n in [*folders, "ensemble"]}


def against_alternatives(picks: dict[str, dict], alts: dict[str, dict], members: list[str]) -> dict[str, dict]:
    """Each pick (and the multi-task model and the ensemble) paired on test with each dataset's specialist (the
    member best on it: the recipe's 2-point bar) and, on the test mean, with the multi-task model and the
    ensemble; every cell a paired difference with its interval and verdict."""
    names = sorted(alts["ensemble"])
    accuracy = {m: {d: {"accuracy": alts[m][d].mean()} for d in names} for m in members}
    specialist = {d: best_member(accuracy, dict.fromkeys(members, "member"), d) for d in names}  # as evaluate.py
    rows = picks | {n: alts[n] for n in ("multitask", "ensemble") if n in alts}
    out = {}
    for name, credits in rows.items():
        bar = {d: stats.paired(credits[d], alts[specialist[d]][d]) | {"specialist": specialist[d]} for d in names}
        out[name] = {"bar": {d: b | {"verdict": stats.bar_verdict(b)} for d, b in bar.items()}}
        for alt in ("multitask", "ensemble"):
            if alt in alts and alt != name:
                m = stats.paired_mean(credits, alts[alt])
                out[name][f"vs_{alt}"] = m | {"verdict": verdict(m)}
    return out


def _cell(d: dict, word: str) -> str:
    return f"{100 * d['diff']:+.1f} [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}] {word}"


def print_alternatives(table: dict[str, dict]) -> None:
    """The second table: each pick against the specialists (bar), the multi-task model and the ensemble."""
    names = sorted(next(iter(table.values()))["bar"])
    alts = [a for a in ("multitask", "ensemble") if any(f"vs_{a}" in row for row in table.values())]
    first = next(iter(table.values()))["bar"]
    print("\n| test, paired | " + " | ".join(f"{d} vs {first[d]['specialist']} (bar)" for d in names)
          + "".join(f" | mean vs {a}" for a in alts) + " |")
    print("|---" * (1 + len(names) + len(alts)) + "|")
    for name, row in table.items():
        cells = [_cell(row["bar"][d], row["bar"][d]["verdict"]) for d in names]
        cells += [_cell(row[f"vs_{a}"], row[f"vs_{a}"]["verdict"]) if f"vs_{a}" in row else "-" for a in alts]
        print(f"| {name} | " + " | ".join(cells) + " |")


def _stamped(pick: dict) -> str:
    """The pick's key with its base's and members' folder times: retrained members never reuse old test scores."""
    req = pick["request"]
    return pick["key"] + "@" + ",".join(str(Path(p).stat().st_mtime_ns) for p in [req["base"], *req["members"].values()])


def _load_tests(path: Path) -> dict:
    """Per-row test credits by stamped pick key, kept in `path` so a report-only rerun scores only new picks."""
    kept = json.loads(path.read_text()) if path.exists() else {}
    return {k: {d: np.asarray(v) for d, v in c.items()} for k, c in kept.items()}


def _save_tests(path: Path, cache: dict) -> None:
    atomic_write_json(path, {k: {d: v.tolist() for d, v in c.items()} for k, c in cache.items()})


def plot(path: Path, curves: dict[str, list], budget: int, reference: float) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (name, pts) in enumerate(curves.items()):  # line styles cycle: TPE's random start-up is random's start
        if pts:
            xs, ys = zip(*pts)
            ax.step(xs, ys, where="post", marker="o" if len(pts) < 3 else None, label=name,
                    ls=("-", "--", "-.", ":")[i % 4], lw=2.2 if name == "tpe" else 1.3)
    ax.axvline(budget, color="grey", lw=0.8, ls=":", label="budget (TPE)")
    ax.axhline(reference, color="black", lw=0.8, ls="--", label="dense reference")
    ax.set_xlabel("val texts forwarded (backward = 2)")
    ax.set_ylabel("best val objective so far (floors rule)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="demo", choices=sorted(CMAES))
    ap.add_argument("--root", default=str(ROOT / "outputs"))
    ap.add_argument("--reference", type=int, default=100, help="random global trials of the dense reference")
    ap.add_argument("--cmaes-trials", type=int, default=26, help="CMA-ES trials (two generations on the demo)")
    ap.add_argument("--only", default="all", help="comma-separated strategies to run now, in this order (the "
                    "others are read from their folders when earlier runs left rows); '' runs none")
    ap.add_argument("--work", default=None, help="logs and the plot (default <root>/reports)")
    a = ap.parse_args()
    root = Path(a.root).resolve()
    a.work = a.work or str(root / "reports")
    Path(a.work).mkdir(parents=True, exist_ok=True)
    recipe = load_recipe("real").merge if a.recipe == "real" else []
    a.sweeper = [o for o in recipe if o.startswith("hydra.sweeper.")]  # only Optuna runs have these keys
    common = [f"paths.root={root}", "logger=none", "sweep.objective.kind=floors", *(o for o in recipe if o not in a.sweeper)]
    cfg = compose_cfg("merge", common)
    runs = run_strategies(a, common, cfg)
    report(a, cfg, runs)


def _score_picks(a, cfg, results: dict[str, dict], budget: int, floors: dict | None) -> dict:
    """Each strategy's pick at the budget (`pick`, `texts`) and its per-row test credits (`test`); returns the
    test-credit cache (kept in <work>, so only new picks and alternatives are scored)."""
    objective = plain(cfg.sweep.objective)
    tests = Path(a.work) / f"search-strategies-{a.recipe}-test.json"
    cache = _load_tests(tests)
    for name, r in results.items():
        own = [row for row in r["rows"] if name.startswith("layerwise") and row.get("source") == "layerwise"] \
            or [row for row in r["rows"] if row["_spent"] <= budget * 1.05 or name in ("tpe", "reference")]
        pick = choose(own, objective, floors)[0]
        r.update(pick=pick, texts=own[-1]["_spent"] if not name.startswith("layerwise") else pick["_spent"])
        if name == "random" and r["wall"] is not None:  # its run is the whole reference: count the budget's share
            r["wall"] *= len(own) / len(r["rows"])
        key = _stamped(pick)
        if key not in cache:
            cache[key] = test_credits(cfg, pick["request"])
            _save_tests(tests, cache)
        r["test"] = cache[key]
    return {"cache": cache, "path": tests}


def print_strategies(results: dict[str, dict], reference: dict | None) -> dict[str, dict]:
    """The first table (each pick against the TPE pick); its rows for the JSON line."""
    base, dense = results["tpe"]["test"], results.get("reference", {}).get("test")
    names = sorted(base)
    print("| strategy | texts | wall s | peak RSS GiB | pick | val mean | feasible | regret (pts) | test " + " | test ".join(names)
          + " | test mean vs TPE pick | test mean vs reference pick |")
    print("|---" * (10 + len(names)) + "|")
    out = {}
    for name, r in results.items():
        p = r["pick"]
        per = {d: stats.paired(r["test"][d], base[d]) for d in names}
        mean = stats.paired_mean(r["test"], base)
        vs_dense = stats.paired_mean(r["test"], dense) if dense else None  # did the search stop too early?
        regret = 100 * (reference["objective"] - p["objective"]) if reference else None
        cells = [f"{r['test'][d].mean():.3f} ({100 * per[d]['diff']:+.1f} [{100 * per[d]['lo']:+.1f}, "
                 f"{100 * per[d]['hi']:+.1f}])" for d in names]
        wall = ("" if r["wall"] is None else f"{r['wall']:.0f}") + " | " + ("" if r["peak"] is None else f"{r['peak'] / 1024:.1f}")
        reg = "-" if regret is None else f"{regret:+.1f}"
        print(f"| {name} | {r['texts']:,} | {wall} | {p['trial']} | {p['objective']:.4f} | {p.get('feasible')} | {reg} | "
              + " | ".join(cells) + f" | {_cell(mean, '').strip()} | {_cell(vs_dense, '').strip() if dense else '-'} |")
        out[name] = {"texts": r["texts"], "wall_s": r["wall"], "peak_rss_mib": r["peak"], "val": round(p["objective"], 6),
                     "feasible": p.get("feasible"), "regret": None if regret is None else round(regret, 3),
                     "test_mean": round(float(sum(r["test"][d].mean() for d in names) / len(names)), 6),
                     "vs_tpe": {k: round(mean[k], 6) for k in ("diff", "lo", "hi")},
                     "vs_reference": vs_dense and {k: round(vs_dense[k], 6) for k in ("diff", "lo", "hi")}}
    return out


def _rounded(d: dict) -> dict:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in d.items()}


def report(a, cfg, runs: dict[str, dict]) -> None:
    objective = plain(cfg.sweep.objective)
    tpe_dir = runs["tpe"]["dir"]
    floors = references.floors(cfg, tpe_dir)
    header = ledger.read(tpe_dir)[0]
    val_texts = ledger.complete(ledger.read(tpe_dir)[1])[0]["texts"]
    n_members = len(header["members"])
    results, curves = {}, {}
    for name, run in runs.items():
        rows = ledger.read(run["dir"])[1]
        curves[name] = curve(name, rows, objective, floors, n_members, val_texts)
        results[name] = {"rows": rows, "wall": run["wall"], "peak": run["peak"]}
    budget = curves["tpe"][-1][0]
    reference = choose(results["random"]["rows"], objective, floors)[0] if "random" in results else None
    if reference:  # the dense reference's own pick, all its trials: does searching past the budget pay on test?
        results["reference"] = dict(results["random"])
    kept = _score_picks(a, cfg, results, budget, floors)
    request = results["tpe"]["pick"]["request"]
    alts = alternative_credits(cfg, request, kept["cache"], kept["path"])
    print(f"Recipe {a.recipe}: {n_members} members, val {val_texts:,} texts a trial, budget {budget:,} texts "
          f"(the TPE sweep); dense reference: best of {len(results.get('random', {}).get('rows', []))} random trials, "
          f"val {reference['objective'] if reference else float('nan'):.4f}\n")
    out = print_strategies(results, reference)
    paired = against_alternatives({n: r["test"] for n, r in results.items()}, alts, list(request["members"]))
    print_alternatives(paired)
    for name, row in paired.items():
        if name not in out:  # the multi-task model and the ensemble: rows of the second table only
            out[name] = {"test_mean": round(float(np.mean([c.mean() for c in alts[name].values()])), 6)}
        out[name] |= {"bar": {d: _rounded(b) for d, b in row["bar"].items()}} | {
            k: _rounded(v) for k, v in row.items() if k.startswith("vs_")}
    lw = stats.paired_mean(results["layerwise"]["test"], results["tpe"]["test"]) if "layerwise" in results else None
    lw_verdict = None if lw is None else verdict(lw)
    print(f"\nlayer-wise pick - TPE pick on the test mean: {lw_verdict}" + ("" if lw is None else
          f" ({_cell(lw, '').strip()} points)"))
    png = Path(a.work) / f"search-strategies-{a.recipe}.png"
    plot(png, curves, budget, reference["objective"] if reference else float("nan"))
    summary = {"bench": "search_strategies", "recipe": a.recipe, "budget_texts": budget,
               "reference_trials": len(results.get("random", {}).get("rows", [])),
               "reference_val": None if reference is None else round(reference["objective"], 6), "strategies": out,
               "layerwise_vs_tpe_test_mean": None if lw is None else {k: round(lw[k], 6) for k in ("diff", "lo", "hi", "n")},
               "layerwise_verdict": lw_verdict, "plot": str(png)}
    atomic_write_json(Path(a.work) / f"search-strategies-{a.recipe}.json", summary)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
