"""The ``rewardsoup_optuna`` Hydra sweeper plugin, driven end to end through a tiny Hydra app.

Each test writes ``my_app.py`` + ``config.yaml`` into ``tmp_path`` and runs ``my_app.py -m`` in a subprocess
(Hydra's plugin registry is process-global). The app appends one JSON line per job to ``jobs.jsonl`` so the
tests can count the jobs that really ran and see the values each job received.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

SRC = Path(__file__).resolve().parents[1] / "src"

APP = '''
import json, math, os, time
import hydra
from omegaconf import OmegaConf


@hydra.main(config_path=".", config_name="config", version_base="1.3")
def main(cfg):
    trial = int(os.environ["REWARDSOUP_OPTUNA_TRIAL"])
    time.sleep(cfg.sleep)
    row = {"trial": trial, **OmegaConf.to_container(cfg, resolve=True)}
    with open(cfg.jobs_file, "a") as f:
        f.write(json.dumps(row) + "\\n")
    if trial == cfg.fail_trial:
        raise RuntimeError(f"boom in trial {trial}")
    if trial == cfg.nan_trial:
        return math.nan
    return -(cfg.x - 0.3) ** 2 - (cfg.y - 0.7) ** 2


if __name__ == "__main__":
    main()
'''


class App:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "my_app.py").write_text(APP)
        self.jobs_file = root / "jobs.jsonl"
        self.sweep_dir = root / "sweep"

    def command(self, *args: str, sleep: float = 0.0, **sweeper) -> dict:
        """subprocess arguments of one worker; `sleep`: seconds each job waits (to keep workers overlapping)."""
        cfg = {
            "defaults": ["_self_", {"override hydra/sweeper": "rewardsoup_optuna"}],
            "x": 0.0, "y": 0.0, "w": {"a": 0.0, "b": 0.0, "c": 0.0}, "sleep": sleep,
            "fail_trial": -1, "nan_trial": -1, "jobs_file": str(self.jobs_file),
            "hydra": {"sweep": {"dir": str(self.sweep_dir)}, "sweeper": sweeper},
        }
        (self.root / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
        env.pop("REWARDSOUP_OPTUNA_TRIAL", None)
        return {"args": [sys.executable, "my_app.py", "-m", *args], "cwd": self.root, "env": env, "text": True}

    def run(self, *args: str, **sweeper) -> subprocess.CompletedProcess:
        return subprocess.run(**self.command(*args, **sweeper), capture_output=True, timeout=120)

    def jobs(self) -> list[dict]:
        if not self.jobs_file.exists():
            return []
        return [json.loads(line) for line in self.jobs_file.read_text().splitlines()]

    def results(self) -> dict:
        return OmegaConf.to_container(OmegaConf.load(self.sweep_dir / "optimization_results.yaml"))


XY = {"x": {"low": 0.0, "high": 1.0}, "y": {"low": 0.0, "high": 1.0}}


def objective(job: dict) -> float:
    return -(job["x"] - 0.3) ** 2 - (job["y"] - 0.7) ** 2


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def load_study(storage: str, name: str = "rewardsoup"):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=storage)


def test_tpe_sweep_improves_and_writes_results(tmp_path):
    app = App(tmp_path / "app")
    proc = ok(app.run(n_trials=8, n_jobs=2, seed=0, params=XY, sampler_kwargs={"n_startup_trials": 4}))
    jobs = app.jobs()
    assert [j["trial"] for j in jobs] == list(range(8))
    assert all(0.0 <= j["x"] <= 1.0 and 0.0 <= j["y"] <= 1.0 for j in jobs)
    res = app.results()
    assert res["n_complete"] == 8 and res["n_failed"] == 0 and res["sampler"] == "tpe"
    assert res["best_value"] == pytest.approx(max(objective(j) for j in jobs))
    assert res["best_value"] == pytest.approx(-(res["best_params"]["x"] - 0.3) ** 2
                                              - (res["best_params"]["y"] - 0.7) ** 2)
    assert res["best_value"] > objective(jobs[0])  # better than the first trial
    assert res["best_value"] > -0.05  # near the optimum (0.3, 0.7)
    assert "optimization_results.yaml" in proc.stdout
    assert sorted(p.name for p in app.sweep_dir.iterdir() if p.is_dir()) == [str(i) for i in range(8)]


def test_resume_counts_complete_trials_and_fails_stale_running(tmp_path):
    import optuna

    app = App(tmp_path / "app")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    ok(app.run(n_trials=4, storage=storage, params=XY))
    assert len(app.jobs()) == 4
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a worker process that is gone
    load_study(storage).ask().set_user_attr("worker", {"host": socket.gethostname(), "pid": dead.pid})  # trial 4

    ok(app.run(n_trials=6, storage=storage, params=XY))
    assert len(app.jobs()) == 6  # exactly 2 more jobs
    trials = load_study(storage).get_trials()
    states = [t.state for t in trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 6
    assert trials[4].state == optuna.trial.TrialState.FAIL
    assert trials[5].system_attrs["failed_trial"] == 4  # queued again by Optuna's retry callback
    assert [j["trial"] for j in app.jobs()] == [0, 1, 2, 3, 5, 6]
    assert {p.name for p in app.sweep_dir.iterdir() if p.is_dir()} == {"0", "1", "2", "3", "5", "6"}

    ok(app.run(n_trials=6, storage=storage, params=XY))
    assert len(app.jobs()) == 6  # nothing left to do
    assert app.results()["n_complete"] == 6
    assert len(load_study(storage).get_trials()) == 7


def test_a_live_workers_running_trial_is_left_alone_and_counted(tmp_path):
    import optuna

    app = App(tmp_path / "app")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    ok(app.run(n_trials=2, storage=storage, params=XY))
    other = load_study(storage).ask()  # another worker's trial in flight: this test process is alive
    other.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
    ok(app.run(n_trials=4, storage=storage, params=XY))
    assert len(app.jobs()) == 3  # one more: 2 finished + 1 running elsewhere + 1 new = 4
    trials = load_study(storage).get_trials()
    assert trials[2].state == optuna.trial.TrialState.RUNNING and trials[3].state == optuna.trial.TrialState.COMPLETE


def test_same_seed_same_sequence_and_value_formats(tmp_path):
    params = {**XY, "+mode": {"choices": ["fast", "slow mode", "true", 3]}, "+k": {"low": 1, "high": 5},
              "+lr": {"low": 1.0e-5, "high": 1.0e-2, "log": True}}

    def sequence(name: str, seed: int) -> list[tuple]:
        app = App(tmp_path / name)
        ok(app.run(n_trials=6, seed=seed, params=params, sampler_kwargs={"n_startup_trials": 3}))
        return [(j["x"], j["y"], j["mode"], j["k"], j["lr"]) for j in app.jobs()]

    first, second, other = sequence("a", 123), sequence("b", 123), sequence("c", 124)
    assert first == second
    assert first != other
    for _, _, mode, k, lr in first:
        assert mode in ("fast", "slow mode", "true", 3) and type(mode) in (str, int)
        assert isinstance(k, int) and 1 <= k <= 5
        assert isinstance(lr, float) and 1e-5 <= lr <= 1e-2


def test_one_worker_draws_what_optuna_draws_with_the_seed(tmp_path):
    """Alone, a worker draws Optuna's own sequence for `seed` (what it drew before workers got streams)."""
    import optuna
    from optuna.distributions import FloatDistribution

    app = App(tmp_path / "app")
    ok(app.run(n_trials=4, seed=0, params=XY, sampler_kwargs={"n_startup_trials": 10}))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=10))
    expected = []
    for _ in range(4):
        trial = study.ask(fixed_distributions={"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)})
        expected += [trial.params["x"], trial.params["y"]]
        study.tell(trial, objective(trial.params))
    assert [v for j in app.jobs() for v in (j["x"], j["y"])] == pytest.approx(expected, rel=1e-12)


def test_two_concurrent_workers_draw_distinct_start_up_points(tmp_path):
    """Two workers started at once on one journal study with the same seed: no start-up point drawn twice."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    app = App(tmp_path / "app")
    journal = tmp_path / "shared" / "optuna.journal"
    cmd = app.command(n_trials=8, seed=0, params=XY, storage=f"journal:{journal}", sleep=0.5,
                      sampler_kwargs={"n_startup_trials": 20})
    procs = [subprocess.Popen(**cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="rewardsoup",
                              storage=optuna.storages.JournalStorage(JournalFileBackend(str(journal))))
    pids = {t.user_attrs["worker"]["pid"] for t in study.trials if t.state.name == "COMPLETE"}
    assert pids == {p.pid for p in procs}  # both workers really ran trials of the one study
    points = [(j["x"], j["y"]) for j in app.jobs()]
    assert 8 <= len(points) <= 9  # two workers may each take the last open slot at the same moment
    assert len(set(points)) == len(points), points


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_workers_that_join_at_once_draw_from_streams_of_their_own(tmp_path, sampler):
    """The race of two workers started together, step by step: both join the empty study (same seed, same
    count), then ask in turn. Each trial's point differs; a worker alone still draws Optuna's sequence."""
    import optuna
    from hydra_plugins.rewardsoup_optuna.sweeper import RewardsoupOptunaSweeper

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"journal:{tmp_path / 'optuna.journal'}"
    workers = [RewardsoupOptunaSweeper(sampler=sampler, seed=0, params=XY, storage=storage,
                                       sampler_kwargs={"n_startup_trials": 20} if sampler == "tpe" else {})
               for _ in range(2)]
    studies = []
    for w in workers:
        w.validate()
        studies.append(w.open_study(tmp_path / "sweep"))
    for w, study in zip(workers, studies):
        assert w.join(study) == []  # both joined before either asked
    points = []
    for _ in range(3):
        for w, study in zip(workers, studies):
            trial = w.ask(study)
            points.append((trial.number, trial.params["x"], trial.params["y"]))
            study.tell(trial, objective(trial.params))
    assert [p[0] for p in points] == list(range(6))
    assert len({p[1:] for p in points}) == 6, points
    alone = optuna.create_study(sampler=workers[0].make_sampler(0))
    assert points[0][1:] == tuple(alone.ask(fixed_distributions=dict(workers[0].space)).params.values())


def test_cmaes_sampler_runs(tmp_path):
    app = App(tmp_path / "app")
    storage = f"sqlite:///{tmp_path / 'cma.db'}"
    ok(app.run(sampler="cmaes", n_trials=6, n_jobs=2, seed=1, storage=storage, direction="minimize",
               params={"x": {"low": -1.0, "high": 1.0}, "y": {"low": -1.0, "high": 1.0}}))
    assert len(app.jobs()) == 6
    res = app.results()
    assert res["n_complete"] == 6 and res["direction"] == "minimize" and res["sampler"] == "cmaes"
    assert res["best_value"] == pytest.approx(min(objective(j) for j in app.jobs()))
    trials = load_study(storage).get_trials()
    assert any(k.startswith("cma:") for t in trials for k in t.system_attrs)  # CMA-ES really sampled


def test_simplex_weights_sum_to_one(tmp_path):
    app = App(tmp_path / "app")
    ok(app.run(n_trials=6, n_jobs=3, simplex=["w.a", "w.b", "w.c"], params={"x": {"low": 0.0, "high": 1.0}}))
    jobs = app.jobs()
    assert len(jobs) == 6
    for j in jobs:
        w = j["w"]
        assert abs(w["a"] + w["b"] + w["c"] - 1.0) < 1e-9
        assert all(0.0 <= v <= 1.0 for v in w.values())
    assert len({j["w"]["a"] for j in jobs}) == 6  # really sampled
    best = app.results()["best_params"]
    assert set(best) == {"x", "w.a", "w.b", "w.c"}
    assert math.isclose(sum(best[k] for k in ("w.a", "w.b", "w.c")), 1.0, abs_tol=1e-9)


@pytest.mark.parametrize(
    "sweeper, args, needles",
    [
        ({"params": {}}, [], ["hydra.sweeper.params", "nothing to search"]),
        ({"params": {"x": {"low": 1.0, "high": 0.5}}}, [], ["params['x']", "inverted"]),
        ({"params": {"y": {"low": 0.5, "high": 0.5}}}, [], ["params['y']", "empty range"]),
        ({"params": XY, "sampler": "bogus"}, [], ["bogus", "tpe", "cmaes", "random"]),
        ({"params": {"w.a": {"low": 0.0, "high": 1.0}}, "simplex": ["w.a", "w.b"]}, [], ["'w.a'"]),
        ({"params": {"x": {"low": 0, "high": 1, "scale": 2}}}, [], ["params['x']", "scale"]),
        ({"params": XY}, ["x=0.5"], ["x=0.5", "'x'"]),
        ({"params": {"x": {"low": 0.0, "high": 1.0}}}, ["y=0.1,0.2"], ["y=0.1,0.2", "sweep"]),
    ],
    ids=["empty", "inverted", "low-eq-high", "unknown-sampler", "simplex-in-params", "unknown-spec-key",
         "cli-overrides-searched-key", "cli-sweep"],
)
def test_bad_search_space_fails_naming_the_key(tmp_path, sweeper, args, needles):
    app = App(tmp_path / "app")
    proc = app.run(*args, n_trials=2, **sweeper)
    assert proc.returncode != 0
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    assert app.jobs() == []


def test_failing_jobs_are_recorded_and_sweep_continues(tmp_path):
    import optuna

    app = App(tmp_path / "app")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    proc = ok(app.run("fail_trial=1", "nan_trial=2", n_trials=4, n_jobs=2, storage=storage, params=XY))
    assert [j["trial"] for j in app.jobs()] == [0, 1, 2, 3]
    assert all(j["fail_trial"] == 1 for j in app.jobs())  # the user's fixed overrides are kept
    trials = load_study(storage).get_trials()
    F, C = optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE
    assert [t.state for t in trials] == [C, F, F, C]
    assert "boom in trial 1" in trials[1].user_attrs["error"]
    assert "non-finite" in trials[2].user_attrs["error"]
    res = app.results()
    assert res["n_complete"] == 2 and res["n_failed"] == 2
    assert "boom in trial 1" in proc.stdout + proc.stderr

    ok(app.run("fail_trial=-5", n_trials=4, n_jobs=2, storage=storage, params=XY))  # rerun retries 2
    assert len(app.jobs()) == 6
    assert app.results()["n_complete"] == 4
