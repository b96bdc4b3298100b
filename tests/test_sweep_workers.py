"""Sweeps as users run them (`python merge.py -m …` on tiny members): the Pareto search, pruning with a kill
and a resume, two workers on one journal study, and a study on PostgreSQL."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from omegaconf import OmegaConf

from conftest import ROOT
from postgres import postgres_url, unique_name  # noqa: F401  (postgres_url: the session fixture)
from rewardsoup.sweep import ledger
from rewardsoup.sweep.objective import non_dominated


SMALL = [f"datasets.{name}.limit=300" for name in ("demo_thumbs", "demo_pairs", "demo_harmless")]  # ~1/4 of val


def _cmd(merge_overrides, *extra):
    return [sys.executable, "merge.py", "-m", *merge_overrides, "trial.max_length=64", *SMALL, *extra]


def _run(cmd, timeout=600):
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out


def _study(storage, name):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=storage)


def test_a_floors_sweep_with_no_feasible_trial_completes_and_picks_by_the_fallback(merge_overrides, out_root):
    """Floors no trial can meet (every member 'alone on val' at 1.0, cached where the sweep reads it): the
    Optuna sweep and the pick both finish, and the pick is the trial with the smallest worst-dataset shortfall."""
    from rewardsoup.sweep.objective import floor_constraints, worst_shortfall

    sweep = out_root / "sweeps" / "nofloor"
    sweep.mkdir(parents=True)
    perfect = {"n": 100.0, "accuracy": 1.0, "auc": 1.0}
    members = [o.split("=")[0].split(".")[1] for o in merge_overrides if o.startswith("members.")]
    (sweep / "members.json").write_text(json.dumps(
        {"members": {m: {d: perfect for d in ("demo_thumbs", "demo_pairs", "demo_harmless")} for m in members}}))
    args = ("search=optuna", "sweep.name=nofloor", "sweep.objective.kind=floors", "hydra.sweeper.n_trials=4")
    out = _run(_cmd(merge_overrides, *args))
    assert "NO TRIAL MEETS THE FLOORS" in out.stdout + out.stderr
    results = OmegaConf.to_container(OmegaConf.load(sweep / "optimization_results.yaml"))
    assert results["n_complete"] == 4 and results["best_trial"] is None and "floors" in results["note"]
    _, rows = ledger.read(sweep)
    assert len(rows) == 4 and not any(r["feasible"] for r in rows)
    pick = json.loads((sweep / "pick.json").read_text())
    shortfall = {int(r["trial"]): worst_shortfall(floor_constraints(r["val"], pick["floors"])) for r in rows}
    assert shortfall[int(pick["trial"])] == min(shortfall.values()) and "NO TRIAL MEETS THE FLOORS" in pick["note"]
    picked = _run([sys.executable, "merge.py", "mode=pick", *merge_overrides, *args[:3], "trial.max_length=64",
                   *SMALL, "pick.bootstrap=50"])
    assert "WARNING: NO TRIAL MEETS THE FLOORS" in picked.stdout
    assert (out_root / "soups" / "best-nofloor" / "mergekit_config.yml").exists()


# slow: 22 s; the front plot and the pick's floors run in make test (test_a_floors_sweep_with_no_feasible_trial...)
@pytest.mark.slow
def test_pareto_search_marks_the_front_in_the_ledger_and_plots_it(merge_overrides, out_root):
    _run(_cmd(merge_overrides, "search=optuna_pareto", "sweep.name=par", "hydra.sweeper.n_trials=5"))
    sweep = out_root / "sweeps" / "par"
    header, rows = ledger.read(sweep)
    assert len(rows) == 5 and all("front" in r for r in rows)
    points = [[r["val"][d] for d in header["datasets"]] for r in rows]
    brute = [not any(all(q[k] >= p[k] for k in range(3)) and q != p for q in points) for p in points]
    assert [r["front"] for r in rows] == brute == non_dominated(points)
    results = OmegaConf.to_container(OmegaConf.load(sweep / "optimization_results.yaml"))
    assert results["objectives"] == ["demo_thumbs", "demo_pairs", "demo_harmless"]
    assert sorted(t["trial"] for t in results["front"]) == sorted(int(r["trial"]) for r in rows if r["front"])
    assert (sweep / "plots" / "front.png").stat().st_size > 10_000
    pick = json.loads((sweep / "pick.json").read_text())
    assert pick["kind"] == "floors" and pick["trial"] in pick["front"]  # the rule picks on the front
    study = _study(f"sqlite:///{sweep / 'optuna.db'}", "par")  # the floors reached the sampler as constraints
    by_trial = {int(r["trial"]): r for r in rows}
    for t in study.trials:
        assert t.constraints == pytest.approx(by_trial[t.number]["constraints"])
        assert t.values == pytest.approx([by_trial[t.number]["val"][d] for d in results["objectives"]])


# slow: 34 s; test_kill_matrix kills the sweep at exact points in make test, this adds a pruner
@pytest.mark.slow
def test_pruned_sweep_survives_a_kill_and_never_redoes_a_trial(merge_overrides, out_root):
    name, n = "prune", 6
    cmd = _cmd(merge_overrides, "search=optuna", f"sweep.name={name}", f"hydra.sweeper.n_trials={n}",
               "hydra.sweeper.pruner=successive_halving",
               "+hydra.sweeper.pruner_kwargs={min_resource: 1, reduction_factor: 2}")
    sweep = out_root / "sweeps" / name
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and proc.poll() is None:
        if (sweep / ledger.HEADER).exists() and len(ledger.read(sweep)[1]) >= 3:
            break
        time.sleep(0.5)
    assert proc.poll() is None, "the sweep ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {r["key"]: r for r in ledger.read(sweep)[1]}
    _run(cmd)
    rows = ledger.read(sweep)[1]
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys))  # no request scored twice
    assert all(any(r["key"] == k and r["time"] == b["time"] for r in rows) for k, b in before.items())
    study = _study(f"sqlite:///{sweep / 'optuna.db'}", name)
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") + states.count("PRUNED") == n
    assert {r["state"] for r in rows} == {"complete", "pruned"}
    pruned = {t.number for t in study.trials if t.state.name == "PRUNED"}
    assert {r["trial"] for r in rows if r["state"] == "pruned"} <= pruned
    assert all(r["texts"] < max(x["texts"] for x in rows) for r in rows if r["state"] == "pruned")
    killed = [t for t in study.trials if t.state.name == "FAIL"]
    assert killed and all(any(u.system_attrs.get("failed_trial") == t.number for u in study.trials) for t in killed)
    _run(cmd)  # finished: a rerun adds nothing
    assert len(ledger.read(sweep)[1]) == len(rows)


def test_two_workers_share_one_journal_study_without_running_a_trial_twice(merge_overrides, out_root, tmp_path):
    journal = tmp_path / "shared" / "optuna.journal"
    cmd = _cmd(merge_overrides, "search=optuna", "sweep.name=workers", "hydra.sweeper.n_trials=4",
               f"hydra.sweeper.storage='journal:{journal}'")
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    rows = ledger.read(out_root / "sweeps" / "workers")[1]
    study = _study(__import__("rewardsoup.sweep.study", fromlist=["x"]).make_storage(f"journal:{journal}"), "workers")
    complete = {t.number: t for t in study.trials if t.state.name == "COMPLETE"}
    assert 4 <= len(complete) <= 5  # two workers may each take the last open slot at the same moment
    assert sorted(int(r["trial"]) for r in rows) == sorted(complete)  # each trial run once, by one worker
    assert len({r["key"] for r in rows}) == len(rows)
    assert {t.user_attrs["worker"]["pid"] for t in complete.values()} <= {p.pid for p in procs}
    points = [tuple(sorted(t.user_attrs["overrides"].items())) for t in complete.values()]
    assert len(set(points)) == len(points)  # each worker draws from its own stream: no point tried twice


def test_sweep_on_postgresql(merge_overrides, out_root, postgres_url):
    name = unique_name("sweep")
    _run(_cmd(merge_overrides, "search=optuna", "sweep.name=pg", "hydra.sweeper.n_trials=2",
              f"hydra.sweeper.storage='{postgres_url}'", f"hydra.sweeper.study_name={name}"))
    rows = ledger.read(out_root / "sweeps" / "pg")[1]
    study = _study(postgres_url, name)
    assert sorted(int(r["trial"]) for r in rows) == [t.number for t in study.trials if t.state.name == "COMPLETE"]
    assert len(rows) == 2
