"""Optuna studies on PostgreSQL (the storage a sweep shared by several machines would use)."""

import subprocess
import sys

import pytest

from postgres import ENV, SCRIPT, postgres_url, unique_name  # noqa: F401  (postgres_url: the session fixture)

_COUNT = """
import sys, optuna
from optuna.trial import TrialState
study = optuna.load_study(study_name=sys.argv[2], storage=sys.argv[1])
print(sum(t.state == TrialState.COMPLETE for t in study.trials), study.best_value)
"""


def test_optuna_study_on_postgres_is_shared_across_processes(postgres_url):
    import optuna
    from optuna.storages import RDBStorage

    storage = RDBStorage(postgres_url)
    assert storage.engine.dialect.name == "postgresql"
    name = unique_name("smoke")
    study = optuna.create_study(storage=storage, study_name=name, direction="minimize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: (t.suggest_float("x", -1.0, 1.0) - 0.25) ** 2, n_trials=3)
    out = subprocess.run([sys.executable, "-c", _COUNT, postgres_url, name], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    complete, best = out.stdout.split()
    assert int(complete) == 3 and float(best) == pytest.approx(study.best_value)  # another process sees them
    optuna.delete_study(study_name=name, storage=storage)
    assert name not in [s.study_name for s in optuna.get_all_study_summaries(storage)]


def test_server_script_fails_with_one_reason_when_postgres_is_missing(tmp_path):
    """What .ci/run relies on: no server -> exit != 0, nothing on stdout, the reason on a [postgres.sh] line."""
    env = {"PATH": "/usr/bin:/bin", "REWARDSOUP_PG_BINDIR": str(tmp_path / "no-bin")}
    out = subprocess.run(["bash", str(SCRIPT), "start", str(tmp_path / "pg")], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode != 0 and out.stdout == ""
    assert "[postgres.sh] REWARDSOUP_PG_BINDIR=" in out.stderr and "no initdb/pg_ctl" in out.stderr
    assert not (tmp_path / "pg").exists()  # failed before creating anything
    stop = subprocess.run(["bash", str(SCRIPT), "stop", str(tmp_path / "pg")], capture_output=True, text=True,
                          timeout=60)
    assert stop.returncode == 0  # the CI's exit trap is quiet when no server ever started
