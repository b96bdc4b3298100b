"""Sweep trials in memory, the ledger, greedy/uniform searches, and the pick of a sweep (tiny members)."""

import json
import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from rewardsoup.sweep import ledger
from rewardsoup.search import jobs
from rewardsoup.sweep import record as recording
from rewardsoup.sweep import objective, trials
from rewardsoup.core.errors import ConfigError
from rewardsoup.models.loading import load_reward_model
from rewardsoup.merging.soup import merge_request


@pytest.fixture
def sweep_cfg(compose_cfg, merge_overrides, out_root):
    def _cfg(*extra):
        return compose_cfg("merge", merge_overrides + ["trial.max_length=64", "sweep.name=t", *extra])

    return _cfg


def test_trial_scores_equal_a_soup_written_by_mergekit(sweep_cfg, tmp_path):
    from rewardsoup.scoring.evalsets import load_evalset
    from rewardsoup.scoring.metrics import metrics, score_evalset
    from rewardsoup.merging.soup import merge_soup

    cfg = sweep_cfg("merge.density=0.5", "merge.weights.harmless=2.0")
    value = jobs.run_trial(cfg)["objective"]
    row = ledger.read(cfg.sweep.dir)[1][-1]
    assert row["objective"] == value and row["params"]["weight_harmless"] == 2.0 and row["params"]["density"] == 0.5
    soup = merge_soup(cfg)  # the same request through mergekit on disk
    model = load_reward_model(soup)
    for name, data in cfg.datasets.items():
        es = load_evalset(name, data, "val", cfg.model.base_dir, 64, cfg.paths.cache)
        acc = metrics(score_evalset(model, es, model.config.pad_token_id), bootstrap=0)["accuracy"]
        assert acc == pytest.approx(row["val"][name], abs=1e-9)


def test_trials_reuse_the_process_cache_and_skip_known_requests(sweep_cfg, monkeypatch):
    jobs.run_trial(sweep_cfg("merge.weights.thumbs=0.3"))
    loads = []
    real = trials.resident
    monkeypatch.setattr("rewardsoup.sweep.resident.load_state_dict", lambda p: loads.append(p) or pytest.fail("reloaded"))
    jobs.run_trial(sweep_cfg("merge.weights.thumbs=0.6"))
    assert trials.resident is real and not loads
    monkeypatch.setattr(recording, "score_request", lambda *a: pytest.fail("a known request was recomputed"))
    jobs.run_trial(sweep_cfg("merge.weights.thumbs=0.3"))
    assert len(ledger.read(sweep_cfg().sweep.dir)[1]) == 2


def test_objective_kinds():
    vals = {"a": 0.9, "b": 0.6}
    assert objective.objective_value(vals, {"kind": "mean"}) == pytest.approx(0.75)
    assert objective.objective_value(vals, {"kind": "worst"}) == 0.6
    assert objective.objective_value(vals, {"kind": "weighted", "weights": {"a": 3, "b": 1}}) == pytest.approx(0.825)
    with pytest.raises(ConfigError, match="sweep.objective.weights"):
        objective.objective_value(vals, {"kind": "weighted", "weights": {"c": 1}})
    with pytest.raises(ConfigError, match="median"):
        objective.objective_value(vals, {"kind": "median"})


def test_greedy_and_uniform_soups_land_in_the_same_ledger(sweep_cfg):
    cfg = sweep_cfg("mode=greedy")
    best = jobs.merge_job(cfg)
    jobs.merge_job(sweep_cfg("mode=uniform"))
    rows = ledger.read(cfg.sweep.dir)[1]
    sources = [r["source"] for r in rows]
    assert sources.count("greedy") >= 4 and sources.count("uniform") == 1  # 3 solos + >= 1 additions
    solo = max(r["objective"] for r in rows if str(r["trial"]).startswith("solo-"))
    assert best >= solo


def test_ledger_of_other_members_and_non_sweep_folder_are_refused(sweep_cfg, tiny_members, tmp_path):
    jobs.run_trial(sweep_cfg())
    with pytest.raises(ConfigError, match="different sweep"):
        jobs.run_trial(sweep_cfg(f"members.harmless={tiny_members['pairs']}", "~members.pairs"))
    with pytest.raises(ConfigError, match="not a sweep folder"):
        ledger.read(tmp_path)
    with pytest.raises(ConfigError, match="unknown member 'ghost'"):
        jobs.run_trial(sweep_cfg("+merge.weights.ghost=1.0"))


_APPENDER = """
import sys
from rewardsoup.sweep import ledger
for i in range(int(sys.argv[2]), int(sys.argv[2]) + 40):
    ledger.append(sys.argv[1], {"trial": i, "pad": "x" * 5000})
"""


def test_ledger_rows_from_parallel_processes_never_interleave_and_a_torn_line_is_skipped(tmp_path, capsys):
    ledger.open_sweep(tmp_path, {"base": "b", "members": {}, "datasets": [], "objective": {}})
    procs = [subprocess.Popen([sys.executable, "-c", _APPENDER, str(tmp_path), str(k * 40)]) for k in range(3)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    assert sorted(r["trial"] for r in ledger.read(tmp_path)[1]) == list(range(120))
    with open(tmp_path / ledger.LEDGER, "a") as handle:
        handle.write('{"trial": 999, "pa')  # a writer killed mid-row
    ledger.append(tmp_path, {"trial": 120})
    rows = ledger.read(tmp_path)[1]
    assert [r["trial"] for r in rows][-1] == 120 and len(rows) == 121  # the torn row alone is lost
    assert "unreadable ledger row skipped" in capsys.readouterr().out


def test_pick_exports_the_best_trial_and_tests_it(sweep_cfg, out_root):
    for w in (0.2, 3.0):
        jobs.run_trial(sweep_cfg(f"merge.weights.harmless={w}"))
    out = jobs.merge_job(sweep_cfg("mode=pick", "pick.bootstrap=50"))
    rows = ledger.read(sweep_cfg().sweep.dir)[1]
    assert out["best"]["objective"] == max(r["objective"] for r in rows)
    soup = out_root / "soups" / "best-t"
    assert (soup / "mergekit_config.yml").exists()
    models = {r["model"] for r in out["rows"]}
    assert {"best-t", "seed_ties", "uniform_soup", "logit_ensemble", "thumbs", "pairs", "harmless"} <= models
    assert all(p.endswith(".png") for p in out["plots"]) and len(out["plots"]) == 2
    assert json.loads((out_root / "reports" / "evaluate-test" / "results.json").read_text())["split"] == "test"


# slow: 32 s; multirun trials and their ledger run in make test through the Optuna sweep tests
@pytest.mark.slow
def test_grid_multirun_runs_one_trial_per_job(merge_overrides, out_root):
    cmd = [sys.executable, "merge.py", "-m", *merge_overrides, "trial.max_length=64", "sweep.name=grid",
           "merge.weights.thumbs=0.2,0.8", "merge.density=0.5,1.0"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    header, rows = ledger.read(out_root / "sweeps" / "grid")
    assert len(rows) == 4 and {r["source"] for r in rows} == {"grid"}
    assert not (out_root / "soups").exists()  # trials write no model to disk
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count("already in the ledger") == 4
    assert len(ledger.read(out_root / "sweeps" / "grid")[1]) == 4


# slow: 22 s; two workers on one study run in make test (test_sweep_workers), this adds joblib's launcher
@pytest.mark.slow
def test_parallel_launcher_shares_the_disk_cache_and_the_ledger(merge_overrides, out_root):
    cmd = [sys.executable, "merge.py", "-m", *merge_overrides, "trial.max_length=64", "sweep.name=par",
           "hydra/launcher=local_parallel", "merge.weights.thumbs=0.1,0.4,0.7,1.0"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = ledger.read(out_root / "sweeps" / "par")[1]
    assert sorted(r["params"]["weight_thumbs"] for r in rows) == [0.1, 0.4, 0.7, 1.0]
    assert len(list((out_root / "cache" / "evalsets").glob("*.json"))) == 3  # one per dataset, shared


def test_optuna_sweep_logs_flat_runs_and_resumes(merge_overrides, out_root):
    import glob

    overrides = [o for o in merge_overrides if o != "logger=none"] + ["trial.max_length=64", "search=optuna",
                                                                      "sweep.name=opt"]
    cmd = [sys.executable, "merge.py", "-m", *overrides, "hydra.sweeper.n_trials=3"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**__import__("os").environ, "WANDB_MODE": "offline"})
    assert out.returncode == 0, out.stderr[-3000:]
    rows = ledger.read(out_root / "sweeps" / "opt")[1]
    assert len(rows) == 3 and {r["source"] for r in rows} == {"optuna"}
    for r in rows:
        w = [r["params"][f"weight_{n}"] for n in ("thumbs", "pairs", "harmless")]
        assert sum(w) == pytest.approx(1.0) and 0.3 <= r["params"]["density"] <= 1.0
    assert len(glob.glob(str(out_root / "wandb" / "offline-run-*"))) == 4  # one W&B run per trial + the summary
    more = subprocess.run(cmd[:-1] + ["hydra.sweeper.n_trials=5"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert more.returncode == 0, more.stderr[-3000:]
    rows = ledger.read(out_root / "sweeps" / "opt")[1]
    assert len(rows) == 5 and len({r["trial"] for r in rows}) == 5  # 2 new trials, none redone


@pytest.mark.parametrize("method,density", [("ties", 1.0), ("ties", 0.5), ("ties", 0.2), ("task_arithmetic", None),
                                            ("dare_ties", 0.5), ("linear", None)])
def test_prepared_trial_merge_equals_merge_in_memory(sweep_cfg, method, density):
    from rewardsoup.merging.in_memory import merge_in_memory

    extra = [f"merge.method={method}"] + ([f"merge.density={density}"] if density else [])
    if method == "dare_ties":
        extra += ["merge.seed=0", "+merge.rescale=true"]
    request = merge_request(sweep_cfg(*extra))
    prepared, _ = trials.resident(request["base"], request["members"])
    assert prepared.sparse  # most embedding rows are untouched by a few steps of training
    fast = prepared.merge(request)
    ref = merge_in_memory(request["method"], prepared.base_sd, prepared.member_sds, request["weights"],
                          request["density"], request["params"], seed=request["seed"])
    assert fast.keys() == ref.keys()
    assert all(torch.equal(fast[k], ref[k]) for k in ref)


@pytest.mark.parametrize("preset,knob", [("della", "merge.epsilon=0.1"), ("breadcrumbs_ties", "merge.gamma=0.02"),
                                         ("sce", "merge.select_topk=0.3"), ("multislerp", "merge.weights.harmless=3.0")])
def test_mergekit_methods_run_as_sweep_trials_with_their_knobs(sweep_cfg, preset, knob):
    """A method merged through mergekit's in-memory API is a sweep trial like TIES: its parameter reaches the
    merge and the ledger (so a sweep can search it), and the resident model holds exactly that soup."""
    from rewardsoup.merging.in_memory import merge_in_memory

    cfg = sweep_cfg(f"merge={preset}", knob)
    jobs.run_trial(cfg)
    row = ledger.read(cfg.sweep.dir)[1][-1]
    key, value = knob.split("=")
    column = key.split(".", 1)[1].replace("weights.", "weight_")
    assert row["params"]["method"] == preset and row["params"][column] == float(value)
    request = merge_request(cfg)
    prepared, model = trials.resident(request["base"], request["members"])
    ref = merge_in_memory(request["method"], prepared.base_sd, prepared.member_sds, request["weights"],
                          request["density"], request["params"], seed=request["seed"])
    own = model.state_dict()
    assert all(torch.equal(own[k], ref[k]) for k in ref)
    assert any(not torch.equal(ref[k], prepared.base_sd[k]) for k in ref)


@pytest.mark.parametrize("trim_ranks", [True, False])
def test_trials_write_only_changed_positions_and_stay_exact_across_methods(sweep_cfg, trim_ranks):
    """A resident model after ties -> linear -> ties -> task arithmetic trials holds exactly each merge,
    with mergekit's trim order kept per member or (trial.trim_ranks=false) trimmed afresh each trial."""
    from rewardsoup.models.loading import load_reward_model
    from rewardsoup.merging.in_memory import merge_in_memory

    requests = [merge_request(sweep_cfg(*extra)) for extra in (
        ["merge.density=0.5"], ["merge.method=linear"], ["merge.density=0.3", "merge.weights.harmless=2.0"],
        ["merge.density=0.9"], ["merge.method=task_arithmetic"])]
    prepared, _ = trials.resident(requests[0]["base"], requests[0]["members"])
    model = load_reward_model(requests[0]["base"])
    for request in requests:
        prepared.apply(model, request, trim_ranks=trim_ranks)
        ref = merge_in_memory(request["method"], prepared.base_sd, prepared.member_sds, request["weights"],
                              request["density"], request["params"], seed=request["seed"])
        own = model.state_dict()
        assert all(torch.equal(own[k], ref[k]) for k in ref), request["method"]
    assert bool(prepared._ranks) == trim_ranks  # switched off, none are kept (not even from earlier trials)


def test_sweep_objective_worst_reaches_the_trial_and_the_ledger(sweep_cfg):
    cfg = sweep_cfg("sweep.objective.kind=worst", "sweep.name=worst")
    value = jobs.run_trial(cfg)["objective"]
    header, rows = ledger.read(cfg.sweep.dir)
    assert header["objective"]["kind"] == "worst"
    assert value == rows[0]["objective"] == pytest.approx(min(rows[0]["val"].values()))
    auc = sweep_cfg("sweep.objective.binary_metric=auc", "sweep.name=auc")
    result = trials.score_request(auc, merge_request(auc))
    detail = result["val_detail"]
    assert result["val"]["demo_thumbs"] == detail["demo_thumbs"]["auc"] != detail["demo_thumbs"]["accuracy"]
    assert result["val"]["demo_pairs"] == detail["demo_pairs"]["accuracy"]  # pairwise sets keep accuracy
