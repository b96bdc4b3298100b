"""Trials per minute with 1 and 2 sweep workers sharing one Optuna study (journal file) on this machine.

Same demo members (`make demo` first), the same search=optuna sweep of `--trials` trials, in two fresh sweep
folders under --root: one worker (torch using every core), then two workers started together on the same
journal study (each with OMP_NUM_THREADS = cores / 2, so they do not oversubscribe). Reported: wall time of
the whole command (process start, member loading, trials, sweep summary) and the steady-state rate from the
ledger (first trial start to last trial end), with the number of cores. Each sweep folder gets the members'
val scores (`members.json`) copied from --members-json when given, so both measure trials, not references.

    .venv/bin/python bench/workers.py [--root outputs] [--trials 8]

Last line: JSON {"bench", "cores", "trials", "wall_min_1", "wall_min_2", "trials_per_min_1",
"trials_per_min_2", "steady_per_min_1", "steady_per_min_2", "speedup"}.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rewardsoup.pipeline.recipes import compose_cfg  # noqa: E402
from rewardsoup.sweep import ledger  # noqa: E402


def run(root: Path, workers: int, trials: int, members_json: Path | None) -> dict:
    name = f"bench-workers-{workers}-{trials}-{int(time.time())}"
    args = [f"paths.root={root}", "search=optuna", f"sweep.name={name}", f"hydra.sweeper.n_trials={trials}",
            "logger=none"]
    sweep_dir = Path(compose_cfg("merge", args).sweep.dir)
    args.append(f"hydra.sweeper.storage='journal:{sweep_dir / 'optuna.journal'}'")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if members_json and members_json.exists():
        shutil.copy(members_json, sweep_dir / "members.json")
    cores = os.cpu_count() or 1
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // workers))}
    start = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "merge.py", "-m", *args], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(workers)]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"worker failed:\n{err[-3000:]}")
    wall = time.monotonic() - start
    rows = ledger.read(sweep_dir)[1]
    window = max(r["time"] for r in rows) - min(r["time"] - r["trial_s"] for r in rows)
    return {"wall_min": wall / 60, "n": len(rows), "per_min": len(rows) / (wall / 60),
            "steady_per_min": len(rows) / (window / 60), "trial_s": sum(r["trial_s"] for r in rows) / len(rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(ROOT / "outputs"))
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--members-json", default=None, help="members.json of an earlier sweep of the same members")
    a = ap.parse_args()
    root = Path(a.root).resolve()
    mj = Path(a.members_json) if a.members_json else root / "sweeps" / "ties" / "members.json"
    res = {w: run(root, w, a.trials, mj) for w in (1, 2)}
    cores = os.cpu_count()
    print(f"{a.trials} trials of search=optuna on the demo members, one journal study, {cores} cores\n")
    print("| workers | trials | wall min | trials/min (wall) | trials/min (steady) | mean trial s |")
    print("|---|---|---|---|---|---|")
    for w, r in res.items():
        print(f"| {w} | {r['n']} | {r['wall_min']:.2f} | {r['per_min']:.2f} | {r['steady_per_min']:.2f} | {r['trial_s']:.1f} |")
    speedup = res[2]["per_min"] / res[1]["per_min"]
    print(f"\n2 workers vs 1: {speedup:.2f}x trials/min (wall) on {cores} cores")
    print(json.dumps({"bench": "workers", "cores": cores, "trials": a.trials,
                      "wall_min_1": round(res[1]["wall_min"], 3), "wall_min_2": round(res[2]["wall_min"], 3),
                      "trials_per_min_1": round(res[1]["per_min"], 3), "trials_per_min_2": round(res[2]["per_min"], 3),
                      "steady_per_min_1": round(res[1]["steady_per_min"], 3),
                      "steady_per_min_2": round(res[2]["steady_per_min"], 3), "speedup": round(speedup, 3)}))


if __name__ == "__main__":
    main()
