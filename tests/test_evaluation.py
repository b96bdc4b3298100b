"""Metrics, intervals, the ensemble, the evalset cache and the result table."""

import itertools
import json

import numpy as np
import pytest

from rewardsoup import evalsets, tables
from rewardsoup.evaluation import EvalSet, Scored, ensemble, metrics, roc_auc


def _brute_auc(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_matches_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=60), 1)  # rounding makes ties
    labels = rng.integers(0, 2, 60)
    assert roc_auc(scores, labels) == pytest.approx(_brute_auc(scores, labels))
    assert np.isnan(roc_auc(scores, np.ones(60)))


def test_pairwise_ties_count_wrong_and_tie_rate_is_reported():
    es = EvalSet("p", "pairwise", [[1]] * 8, None)
    rewards = np.array([1.0, 2.0, 0.5, 0.0, 0.0, 2.0, 0.5, 1.0])  # chosen 1,2,.5,0 vs rejected 0,2,.5,1
    m = metrics(Scored(es, rewards), bootstrap=200)
    assert m["accuracy"] == 0.25 and m["tie_rate"] == 0.5 and m["n"] == 4


def test_binary_metrics_and_interval_brackets_the_estimate():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200)
    logits = labels * 1.0 - 0.5 + rng.normal(scale=0.8, size=200)
    es = EvalSet("b", "binary", [[1]] * 200, labels)
    m = metrics(Scored(es, logits), bootstrap=300)
    assert m["accuracy"] == pytest.approx(np.mean((logits > 0) == (labels == 1)))
    assert m["accuracy_lo"] < m["accuracy"] < m["accuracy_hi"]
    assert m["auc_lo"] < m["auc"] < m["auc_hi"] and m["auc"] > 0.6
    assert metrics(Scored(es, logits), bootstrap=300) == m  # seeded


def test_ensemble_is_the_mean_of_member_rewards():
    es = EvalSet("b", "binary", [[1]] * 3, np.array([1, 0, 1]))
    out = ensemble([Scored(es, np.array([1.0, -1.0, -3.0])), Scored(es, np.array([3.0, 0.0, 1.0]))])
    assert out.rewards.tolist() == [2.0, -0.5, -1.0]


def test_table_shows_soup_difference_from_the_best_member(tmp_path):
    def m(acc):
        return {"accuracy": acc, "accuracy_lo": acc - 0.1, "accuracy_hi": acc + 0.1, "n": 10}

    results = {"a": {"x": m(0.9), "y": m(0.6)}, "b": {"x": m(0.7), "y": m(0.8)}, "soup": {"x": m(0.88), "y": m(0.81)}}
    kinds = {"a": "member", "b": "member", "soup": "soup"}
    rows = tables.rows(results, kinds)
    soup = next(r for r in rows if r["model"] == "soup")
    assert soup["x_vs_best_member"] == pytest.approx(-0.02) and soup["y_vs_best_member"] == pytest.approx(0.01)
    assert "x_vs_best_member" not in rows[0]
    md = tables.write_report(tmp_path / "r", rows, ["x", "y"], "t")
    assert "(-2.0)" in md and "(+1.0)" in md and md == (tmp_path / "r" / "table.md").read_text()
    assert json.loads((tmp_path / "r" / "results.json").read_text())["rows"][2]["model"] == "soup"
    assert (tmp_path / "r" / "results.csv").read_text().startswith("model,kind,x,")


def test_evalsets_are_cached_on_disk_by_tokenizer_data_split_and_length(tmp_path, tiny_base_dir, compose_cfg,
                                                                         monkeypatch):
    cfg = compose_cfg("evaluate")
    data = cfg.datasets.demo_harmless
    monkeypatch.setattr(evalsets, "_MEMORY", {})
    es = evalsets.load_evalset("h", data, "val", tiny_base_dir, 64, tmp_path)
    files = list((tmp_path / "evalsets").glob("*.json"))
    assert len(files) == 1 and es.schema == "pairwise" and es.n > 0
    monkeypatch.setattr(evalsets, "_MEMORY", {})
    monkeypatch.setattr(evalsets, "build_evalset", lambda *a: pytest.fail("should come from the disk cache"))
    again = evalsets.load_evalset("h", data, "val", tiny_base_dir, 64, tmp_path)
    assert again.ids == es.ids
    k = evalsets.cache_key
    assert len({k(tiny_base_dir, data, "val", 64), k(tiny_base_dir, data, "test", 64),
                k(tiny_base_dir, data, "val", 32), k(tiny_base_dir, cfg.datasets.demo_pairs, "val", 64)}) == 4


def test_evaluate_job_scores_members_soups_and_baselines(compose_cfg, merge_overrides, tiny_members, out_root):
    from rewardsoup.evaluate_job import evaluate_models
    from rewardsoup.soup import merge_soup

    soup = merge_soup(compose_cfg("merge", merge_overrides + ["merge=ties"]))
    models = [f"+models.{n}={p}" for n, p in tiny_members.items()] + [f"+models.ties={soup}"]
    cfg = compose_cfg("evaluate", merge_overrides[:3] + models + ["bootstrap=50", "max_length=64"])
    out = evaluate_models(cfg)
    by_model = {r["model"]: r for r in out["rows"]}
    assert set(by_model) == {"thumbs", "pairs", "harmless", "ties", "logit_ensemble", "uniform_soup"}
    assert by_model["ties"]["kind"] == "soup" and by_model["uniform_soup"]["kind"] == "baseline"
    for ds in ("demo_thumbs", "demo_pairs", "demo_harmless"):
        best = max(by_model[m][ds] for m in ("thumbs", "pairs", "harmless"))
        assert by_model["ties"][f"{ds}_vs_best_member"] == pytest.approx(by_model["ties"][ds] - best)
        assert by_model["thumbs"][f"{ds}_lo"] <= by_model["thumbs"][ds] <= by_model["thumbs"][f"{ds}_hi"]
    assert "demo_thumbs_auc" in by_model["thumbs"] and "demo_pairs_tie_rate" in by_model["thumbs"]
    report = out_root / "reports" / "evaluate-test"
    assert (report / "table.md").read_text().count("\n| ") == 7  # header + 6 models
    assert (report / "results.csv").exists() and (report / "results.json").exists()


def test_evaluate_with_nothing_to_score_is_a_clear_error(out_root):
    import subprocess
    import sys

    from conftest import ROOT

    out = subprocess.run([sys.executable, "evaluate.py", "logger=none"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 1 and "no models to evaluate" in out.stderr
