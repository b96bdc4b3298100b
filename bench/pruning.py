"""Pruning: the same Optuna sweep with and without a pruner, on the demo members (`make demo` first).

Both sweeps: search=optuna, the same seed, `--trials` trials, the floors objective, their own sweep folders
under --root. The pruned one adds `hydra.sweeper.pruner=<--pruner>`: each trial scores its val rows in
`trial.chunks` chunks and stops when the pruner says so. Reported: val texts scored (forward passes),
the trials' seconds (sum of the ledger's trial_s: scoring and merging, not process start), trials pruned, and the pick of each sweep (`pick.json`, the floors rule). When the picks
differ, both are scored again on the same val rows and compared per dataset with paired 95% intervals:
"within the val interval" when every interval holds 0.

    .venv/bin/python bench/pruning.py [--root outputs] [--trials 16] [--pruner successive_halving]

Last line: JSON {"bench", "trials", "pruner", "texts_full", "texts_pruned", "texts_ratio", "wall_ratio",
"n_pruned", "same_pick", "within_val_interval"}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rewardsoup.pipeline.recipes import compose_cfg  # noqa: E402
from rewardsoup.scoring import stats  # noqa: E402
from rewardsoup.scoring.evalsets import load_evalset  # noqa: E402
from rewardsoup.scoring.metrics import row_credit, score_evalsets  # noqa: E402
from rewardsoup.sweep import ledger  # noqa: E402
from rewardsoup.sweep.resident import resident  # noqa: E402

PRUNER_KWARGS = {"successive_halving": "{min_resource: 1, reduction_factor: 2}", "median": "{n_startup_trials: 4}",
                 "hyperband": "{min_resource: 1, reduction_factor: 2}"}


def sweep(root: Path, name: str, trials: int, extra: list[str], seed_from: Path | None,
          members_from: Path | None) -> tuple[float, Path]:
    args = [f"paths.root={root}", "search=optuna", "sweep.objective.kind=floors", f"sweep.name={name}",
            f"hydra.sweeper.n_trials={trials}", "logger=none", *extra]
    target = Path(compose_cfg("merge", args).sweep.dir)
    if seed_from is not None and not target.exists():  # an earlier sweep with the same settings (make demo's)
        shutil.copytree(seed_from, target, ignore=shutil.ignore_patterns("trial-*", "plots"))
    if members_from is not None and (members_from / "members.json").exists() and not (target / "members.json").exists():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(members_from / "members.json", target / "members.json")  # the members are scored once
    start = time.monotonic()
    subprocess.run([sys.executable, "merge.py", "-m", *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start, Path(compose_cfg("merge", args).sweep.dir)


def credits(cfg, request) -> dict[str, np.ndarray]:
    prepared, model = resident(request["base"], request["members"])
    prepared.apply(model, request)
    evalsets = [load_evalset(n, cfg.datasets[n], "val", request["base"], int(cfg.trial.max_length), cfg.paths.cache)
                for n in cfg.datasets]
    scored = score_evalsets(model, evalsets, model.config.pad_token_id, int(cfg.trial.batch_size))
    return {es.name: row_credit(es, s.rewards) for es, s in zip(evalsets, scored)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(ROOT / "outputs"))
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--pruner", default="successive_halving", choices=sorted(PRUNER_KWARGS))
    ap.add_argument("--baseline", default=None, help="an existing unpruned sweep folder with the same settings "
                    "(e.g. outputs/sweeps/optuna-ties after make demo): reused as the unpruned arm")
    a = ap.parse_args()
    root = Path(a.root).resolve()
    runs = {}
    base = Path(a.baseline).resolve() if a.baseline else None
    same_study = [f"hydra.sweeper.study_name={base.name}"] if base else []  # the copied study resumes: nothing to do
    for label, extra, seed_from in (("none", same_study, base), (a.pruner, [f"hydra.sweeper.pruner={a.pruner}",
                                    f"+hydra.sweeper.pruner_kwargs={PRUNER_KWARGS[a.pruner]}"], None)):
        _, sweep_dir = sweep(root, f"bench-prune-{label}-{a.trials}", a.trials, extra, seed_from, base)
        rows = ledger.read(sweep_dir)[1]
        pick = json.loads((sweep_dir / "pick.json").read_text())
        runs[label] = {"wall": sum(r["trial_s"] for r in rows), "rows": rows, "pick": pick, "texts": sum(r["texts"] for r in rows),
                       "pruned": sum(r.get("state") == "pruned" for r in rows),
                       "request": next(r["request"] for r in rows if r["key"] == pick["key"])}
    full, pruned = runs["none"], runs[a.pruner]
    same = full["pick"]["key"] == pruned["pick"]["key"]
    cfg = compose_cfg("merge", [f"paths.root={root}", "logger=none"])
    diffs = {}
    if not same:
        ca, cb = credits(cfg, pruned["request"]), credits(cfg, full["request"])
        diffs = {d: stats.paired(ca[d], cb[d]) for d in ca}
    within = same or all(v["lo"] <= 0 <= v["hi"] for v in diffs.values())
    print(f"{a.trials} trials each, TPE seed 0, floors objective, demo members under {root} ({__import__('os').cpu_count()} cores)\n")
    print("| sweep | texts scored | trial seconds | pruned | picked trial | pick val |")
    print("|---|---|---|---|---|---|")
    for label, r in runs.items():
        vals = ", ".join(f"{d} {v:.3f}" for d, v in r["pick"]["val"].items())
        print(f"| {label} | {r['texts']:,} | {r['wall']:.0f} | {r['pruned']}/{len(r['rows'])} | {r['pick']['trial']} | {vals} |")
    for d, v in diffs.items():
        print(f"pruned pick - full pick on {d} (n={v['n']}): {v['diff']:+.3f} [{v['lo']:+.3f}, {v['hi']:+.3f}]")
    ratio = full["texts"] / pruned["texts"]
    print(f"\ntexts ratio {ratio:.2f}x, wall ratio {full['wall'] / pruned['wall']:.2f}x; same pick: {same}; "
          f"within the val interval: {within}")
    print(json.dumps({"bench": "pruning", "trials": a.trials, "pruner": a.pruner, "texts_full": full["texts"],
                      "texts_pruned": pruned["texts"], "texts_ratio": round(ratio, 3),
                      "wall_ratio": round(full["wall"] / pruned["wall"], 3), "n_pruned": pruned["pruned"],
                      "same_pick": same, "within_val_interval": within}))


if __name__ == "__main__":
    main()
