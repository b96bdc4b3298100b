"""What a sweep decides and shows: floors, the Pareto front, chunked scoring with pruning, the pick rule,
and the keys a W&B user sees (tiny members, in process)."""

import json

import numpy as np
import pytest

from rewardsoup.merging.soup import merge_request
from rewardsoup.sweep import ledger, objective, summary, trials
from rewardsoup.sweep import record as recording


@pytest.fixture
def sweep_cfg(compose_cfg, merge_overrides, out_root):
    def _cfg(*extra):
        return compose_cfg("merge", merge_overrides + ["trial.max_length=64", "sweep.name=o", *extra])

    return _cfg


def _brute_front(points):
    """Non-dominated by definition, written the slow way: no other point is >= everywhere and > somewhere."""
    out = []
    for i, p in enumerate(points):
        beaten = False
        for j, q in enumerate(points):
            if i != j and all(q[k] >= p[k] for k in range(len(p))) and any(q[k] > p[k] for k in range(len(p))):
                beaten = True
        out.append(not beaten)
    return out


def test_non_dominated_matches_brute_force_on_random_and_tied_points():
    rng = np.random.default_rng(0)
    for _ in range(30):
        pts = np.round(rng.random((rng.integers(1, 25), 3)), 1).tolist()  # rounding makes ties and duplicates
        assert objective.non_dominated(pts) == _brute_front(pts)


def test_floors_constraints_and_violation():
    members = {"a": {"x": 0.90, "y": 0.60}, "b": {"x": 0.70, "y": 0.80}}
    floors = objective.floors_from_members(members, 0.02)
    assert floors == pytest.approx({"x": 0.88, "y": 0.78})
    cons = objective.floor_constraints({"x": 0.89, "y": 0.75}, floors)
    assert cons == pytest.approx({"x": -0.01, "y": 0.03}) and objective.violation(cons) == pytest.approx(0.03)
    assert objective.objective_value({"x": 0.89, "y": 0.75}, {"kind": "floors"}) == pytest.approx(0.82)


def _row(trial, val, state="complete"):
    return {"trial": trial, "source": "optuna", "key": str(trial), "val": val, "state": state, "params": {},
            "objective": sum(val.values()) / len(val)}


def test_choose_takes_the_best_feasible_or_the_least_violating_and_says_so():
    floors = {"x": 0.80, "y": 0.80}
    rows = [_row(0, {"x": 0.99, "y": 0.70}), _row(1, {"x": 0.82, "y": 0.81}), _row(2, {"x": 0.81, "y": 0.80}),
            _row(3, {"x": 0.99, "y": 0.99}, state="pruned")]  # pruned: partial scores, never picked
    best, note = summary.choose(rows, {"kind": "floors", "max_loss": 0.02}, floors)
    assert best["trial"] == 1 and note is None  # trial 0 has the higher mean but fails y's floor
    assert summary.choose(rows, {"kind": "mean"})[0]["trial"] == 0
    infeasible = [_row(0, {"x": 0.99, "y": 0.70}), _row(1, {"x": 0.79, "y": 0.78})]
    best, note = summary.choose(infeasible, {"kind": "floors", "max_loss": 0.02}, floors)
    assert best["trial"] == 1 and "NO TRIAL MEETS THE FLOORS" in note and "picked trial 1" in note
    # the fallback is the smallest WORST-dataset shortfall, not the smallest sum: trial 0 misses both floors by
    # 1 point (sum 2), trial 1 only y's, by 1.5 points (sum 1.5)
    spread = [_row(0, {"x": 0.79, "y": 0.79}), _row(1, {"x": 0.95, "y": 0.785})]
    best, note = summary.choose(spread, {"kind": "floors", "max_loss": 0.02}, floors)
    assert best["trial"] == 0 and "1.0 points" in note
    ties = [_row(0, {"x": 0.5, "y": 0.6}), _row(1, {"x": 0.9, "y": 0.6})]
    for r in ties:
        r["objective"] = min(r["val"].values())
    assert summary.choose(ties, {"kind": "worst"})[0]["trial"] == 1  # same worst, better mean: on the front


def test_chunked_scoring_equals_one_pass_and_stops_when_told(sweep_cfg):
    cfg = sweep_cfg()
    request = merge_request(cfg)
    full = trials.score_request(cfg, request)
    seen = []
    chunked = trials.score_request(cfg, request, lambda value, step: seen.append((value, step)) or False)
    assert chunked["state"] == "complete" and chunked["texts"] == full["texts"]
    assert chunked["val"] == pytest.approx(full["val"]) and chunked["objective"] == pytest.approx(full["objective"])
    assert [s for _, s in seen] == [1, 2, 3] and chunked["steps"][-1] == pytest.approx(full["objective"], abs=1e-6)
    pruned = trials.score_request(cfg, request, lambda value, step: True)
    assert pruned["state"] == "pruned" and len(pruned["steps"]) == 1
    assert pruned["texts"] < 0.3 * full["texts"]  # a quarter of every val set
    assert all(pruned["val_detail"][d]["n"] < full["val_detail"][d]["n"] for d in full["val"])


def test_trials_with_and_without_prefix_sharing_agree(sweep_cfg):
    """scoring.share_prefix changes how the val texts are forwarded, not a trial's numbers (one pass and chunks)."""
    shared = sweep_cfg("trial.max_length=256", "scoring.share_prefix=true")
    full = sweep_cfg("trial.max_length=256", "scoring.share_prefix=false")
    request = merge_request(shared)
    one, whole = trials.score_request(shared, request), trials.score_request(full, request)
    assert one["val"] == whole["val"] and one["objective"] == whole["objective"]
    chunked = trials.score_request(shared, request, lambda value, step: False)
    assert chunked["val"] == pytest.approx(whole["val"], abs=1e-9)


def test_floors_trial_records_constraints_and_the_wandb_keys(sweep_cfg, monkeypatch):
    """Two trials and the summary, with what the project hands to wandb captured."""
    import rewardsoup.core.tracking as tracking

    runs = []

    class FakeRun:
        def __init__(self, **kw):
            self.init, self.logged, self.summary, self.dir = kw, [], {}, None
            runs.append(self)

        def log(self, data, step=None):
            self.logged.append(data)

        def finish(self):
            pass

    monkeypatch.setattr(tracking, "_init", lambda logger, config, job_type, name, group, tags:
                        FakeRun(config=config, job_type=job_type, name=name, group=group))
    cfg = sweep_cfg("logger=wandb", "sweep.objective.kind=floors", "sweep.name=wb")
    for i, w in enumerate((0.2, 0.8)):
        recording.record(cfg, merge_request(sweep_cfg("logger=wandb", "sweep.objective.kind=floors", "sweep.name=wb",
                                                   f"merge.weights.thumbs={w}")), "optuna", i)
    members = json.loads((ledger.Path(cfg.sweep.dir) / "members.json").read_text())["members"]
    assert set(members) == {"thumbs", "pairs", "harmless"}
    _, rows = ledger.read(cfg.sweep.dir)
    floors = objective.floors_from_members({m: {d: v["accuracy"] for d, v in per.items()} for m, per in members.items()},
                                           0.02)
    for r in rows:
        assert r["constraints"] == pytest.approx({d: floors[d] - r["val"][d] for d in floors})
        assert r["feasible"] == all(r["val"][d] >= floors[d] for d in floors)
    trial_runs = [r for r in runs if r.init["job_type"] == "trial"]
    assert len(trial_runs) == 2
    for run, row in zip(trial_runs, rows):
        assert {"weight_thumbs", "weight_pairs", "weight_harmless", "density", "method"} <= set(run.init["config"])
        assert run.init["group"] == "wb"
        for d in ("demo_thumbs", "demo_pairs", "demo_harmless"):
            assert run.summary[f"val/{d}/accuracy"] == row["val_detail"][d]["accuracy"]
        assert run.summary["objective"] == row["objective"] and run.summary["feasible"] == row["feasible"]
        assert run.summary["pruned"] is False and run.summary["state"] == "complete"
    out = summary.summarize(cfg)
    (sweep,) = [r for r in runs if r.init["job_type"] == "sweep-summary"]
    table = next(d["ledger"] for d in sweep.logged if "ledger" in d)
    assert len(table.data) == 2 and {"val/demo_thumbs", "feasible", "front", "weight_thumbs"} <= set(table.columns)
    assert {k for d in sweep.logged for k in d if k.startswith("sweep/")} == {"sweep/objective_vs_params", "sweep/front"}
    assert sweep.summary["picked_trial"] == f"wb-optuna-{out['best']['trial']}"
    pick = json.loads((ledger.Path(cfg.sweep.dir) / summary.PICK_FILE).read_text())
    assert pick["trial"] == out["best"]["trial"] and pick["floors"] == pytest.approx(floors)
    marked = ledger.read(cfg.sweep.dir)[1]
    assert [r["front"] for r in marked] == _brute_front([[r["val"][d] for d in sorted(r["val"])] for r in marked])
    assert [p.name for p in out["plots"]] == ["objective_vs_params.png", "front.png"]


def test_push_to_hub_with_the_hub_offline_fails_before_the_pick_writes_anything(sweep_cfg, monkeypatch):
    from rewardsoup.core import hub
    from rewardsoup.core.errors import RewardSoupError
    from rewardsoup.sweep.pick import pick_best

    cfg = sweep_cfg("sweep.name=hubpush", "pick.push_to_hub=someone/soup")
    recording.record(cfg, merge_request(cfg), "optuna", 0)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.hub_reachable.cache_clear()
    with pytest.raises(RewardSoupError, match="someone/soup.*unreachable"):
        pick_best(cfg)
    assert not ledger.Path(cfg.paths.soups).exists()  # nothing exported, nothing evaluated
