"""Sweeps through other Hydra launchers: an Optuna sweep as submitit jobs on this machine (tiny members)."""

import pytest
import re
import subprocess
import sys

from omegaconf import OmegaConf

from conftest import ROOT
from rewardsoup.sweep import ledger


def _merge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "merge.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


# slow: 43 s; the plain Optuna sweep and pick run in make test (test_search), this adds submitit's launcher
@pytest.mark.slow
def test_optuna_sweep_as_submitit_local_jobs_then_pick(merge_overrides, out_root):
    """Two trials as two submitit jobs (fresh processes, the job pickled by the launcher): each job gets its
    trial number through hydra.job.env_set, appends its ledger row and leaves its own log files."""
    small = [f"datasets.{name}.limit=300" for name in ("demo_thumbs", "demo_pairs", "demo_harmless")]
    common = [*merge_overrides, "trial.max_length=64", "sweep.name=sub", *small]  # ~350 val texts per trial
    out = _merge("-m", *common, "search=optuna", "hydra/launcher=local_submitit", "hydra.sweeper.n_trials=2",
                 "hydra.sweeper.n_jobs=2")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    sweep_dir = out_root / "sweeps" / "sub"
    _, rows = ledger.read(sweep_dir)
    assert sorted(str(r["trial"]) for r in rows) == ["0", "1"], rows  # the Optuna trial numbers
    assert {r["source"] for r in rows} == {"optuna"}  # the env var set per job reached the job
    assert len({r["key"] for r in rows}) == 2  # two distinct merge requests
    assert "n_complete: 2" in (sweep_dir / "optimization_results.yaml").read_text()

    # one folder per submitit job id (submitit also leaves its empty `%j` template folder)
    jobs = sorted(p for p in (sweep_dir / ".submitit").iterdir() if p.is_dir() and p.name.isdigit())
    assert len(jobs) == 2
    assert all((j / f"{j.name}_0_log.err").is_file() and (j / f"{j.name}_0_result.pkl").is_file() for j in jobs)
    lines = [re.findall(r"trial (\d+) \(optuna\b", (j / f"{j.name}_0_log.out").read_text()) for j in jobs]
    assert sorted(lines) == [["0"], ["1"]]  # each job printed its own trial's line into its own log
    ids = {str(OmegaConf.load(sweep_dir / f"trial-{n}" / ".hydra" / "hydra.yaml").hydra.job.id) for n in (0, 1)}
    assert ids == {j.name for j in jobs}  # trial-<n> folders (named by trial number) hold submitit's job ids

    pick = _merge(*common, "mode=pick", "pick.bootstrap=50")
    assert pick.returncode == 0, pick.stdout[-2000:] + pick.stderr[-3000:]
    assert (out_root / "soups" / "best-sub" / "mergekit_config.yml").exists()
