"""Metrics, intervals, the ensemble, the evalset cache and the result table."""

import itertools
import json

import numpy as np
import pytest

from rewardsoup.scoring import evalsets

from rewardsoup.scoring import stats

from rewardsoup.evaluation import tables
from rewardsoup.evaluation.comparisons import compare
from rewardsoup.scoring.metrics import EvalSet, Scored, ensemble, metrics, row_credit
from rewardsoup.evaluation.lengths import length_bias, length_reference


def _brute_auc(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_matches_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=60), 1)  # rounding makes ties
    labels = rng.integers(0, 2, 60)
    assert stats.auc(scores, labels) == pytest.approx(_brute_auc(scores, labels))
    assert np.isnan(stats.auc(scores, np.ones(60)))


def test_pairwise_ties_earn_half_credit_and_the_strict_count_is_kept():
    es = EvalSet("p", "pairwise", [[1]] * 8, None)
    rewards = np.array([1.0, 2.0, 0.5, 0.0, 0.0, 2.0, 0.5, 1.0])  # chosen 1,2,.5,0 vs rejected 0,2,.5,1
    m = metrics(Scored(es, rewards), bootstrap=200)
    assert m["accuracy"] == 0.5 and m["accuracy_strict"] == 0.25 and m["tie_rate"] == 0.5 and m["n"] == 4


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
    zero = metrics(Scored(EvalSet("b", "binary", [[1]] * 2, np.array([1, 0])), np.array([0.0, -1.0])), bootstrap=0)
    assert zero["accuracy"] == 0.75 and zero["accuracy_strict"] == 0.5  # a logit of exactly 0 earns half


def test_multi_rejected_best_of_n_by_hand():
    # rows: chosen above all 3 rejected; chosen tied with one rejected at the top (1/2); below one (0);
    # tied with two at the top (1/3)
    sizes = np.array([4, 3, 3, 3])
    rewards = np.array([5, 1, 2, 3,   2, 2, 1,   1, 3, 0,   4, 4, 4])
    es = EvalSet("rb", "multi", [[1]] * 13, None, 0, sizes, ["safety", "safety", "focus", None])
    m = metrics(Scored(es, rewards.astype(float)), bootstrap=0)
    assert m["accuracy"] == pytest.approx((1 + 0.5 + 0 + 1 / 3) / 4)
    assert m["accuracy_strict"] == 0.25 and m["tie_rate"] == 0.5
    assert m["chance"] == pytest.approx((1 / 4 + 1 / 3 + 1 / 3 + 1 / 3) / 4)
    assert m["subsets"] == {"all": {"n": 1, "accuracy": pytest.approx(1 / 3)}, "focus": {"n": 1, "accuracy": 0.0},
                            "safety": {"n": 2, "accuracy": 0.75}}


def _exact_bootstrap(diffs):
    """Every resample of a handful of rows, equally likely: the exact bootstrap distribution of the mean."""
    means = sorted(np.mean(c) for c in itertools.product(diffs, repeat=len(diffs)))
    return np.percentile(means, [2.5, 97.5])


def test_paired_interval_matches_the_exact_bootstrap_of_row_differences():
    a = np.array([1.0, 1.0, 0.5, 0.0, 1.0])
    b = np.array([0.0, 1.0, 0.5, 0.0, 0.0])
    d = stats.paired(a, b, samples=20000)
    assert d["diff"] == pytest.approx(0.4) and d["won"] == 2 and d["lost"] == 0 and d["n"] == 5
    lo, hi = _exact_bootstrap(a - b)
    assert d["lo"] == pytest.approx(lo, abs=0.021) and d["hi"] == pytest.approx(hi, abs=0.021)
    assert stats.paired(a, a)["lo"] == stats.paired(a, a)["hi"] == 0.0  # the same model: no spread


def test_paired_interval_is_tighter_than_two_unpaired_ones():
    rng = np.random.default_rng(3)
    a = (rng.random(400) < 0.7).astype(float)
    b = a.copy()
    b[rng.choice(400, 12, replace=False)] = 1 - b[rng.choice(400, 12, replace=False)]  # differ on a few rows
    d = stats.paired(a, b)
    (alo, ahi), (blo, bhi) = stats.interval(a), stats.interval(b)
    assert d["hi"] - d["lo"] < 0.3 * ((ahi - alo) + (bhi - blo))


def test_paired_mean_over_datasets_resamples_each_dataset_on_its_own():
    """The test-mean difference of two models: the mean of the per-dataset paired differences, its interval
    from resampling each dataset's rows separately (one dataset: the same as `paired`)."""
    rng = np.random.default_rng(5)
    a = {"x": (rng.random(600) < 0.8).astype(float), "y": (rng.random(200) < 0.6).astype(float)}
    b = {"x": a["x"].copy(), "y": a["y"].copy()}
    b["y"][np.flatnonzero(a["y"] == 1)[:30]] = 0.0  # b loses 30 rows on y only: 15 points there, 7.5 on the mean
    d = stats.paired_mean(a, b, samples=4000)
    assert d["diff"] == pytest.approx(0.075) and d["n"] == 800 and d["datasets"] == 2
    assert 0 < d["lo"] < 0.075 < d["hi"] < 0.15
    assert d["hi"] - d["lo"] == pytest.approx(stats.paired(a["y"], b["y"], samples=4000)["hi"] / 2
                                              - stats.paired(a["y"], b["y"], samples=4000)["lo"] / 2, abs=0.01)
    one = stats.paired_mean({"y": a["y"]}, {"y": b["y"]}, samples=4000)
    assert (one["lo"], one["hi"]) == pytest.approx(tuple(stats.paired(a["y"], b["y"], samples=4000)[k]
                                                          for k in ("lo", "hi")), abs=0.01)
    assert stats.paired_mean(a, a)["lo"] == stats.paired_mean(a, a)["hi"] == 0.0
    with pytest.raises(ValueError, match="same datasets"):
        stats.paired_mean(a, {"x": a["x"]})
    with pytest.raises(ValueError, match="on y"):
        stats.paired_mean(a, {"x": a["x"], "y": a["y"][:-1]})


@pytest.mark.parametrize("lo,hi,verdict", [(-0.01, 0.03, "holds"), (-0.09, -0.03, "fails"),
                                           (-0.06, 0.01, "cannot tell at n=50")])
def test_the_two_point_bar_is_read_from_the_paired_interval(lo, hi, verdict):
    assert stats.bar_verdict({"diff": (lo + hi) / 2, "lo": lo, "hi": hi, "n": 50}) == verdict


def test_length_reference_picks_its_direction_on_val_and_applies_it_to_test():
    # val: chosen is the shorter side in 3 of 4 pairs -> "prefer shorter"
    val = EvalSet("p", "pairwise", [[1] * 2, [1] * 3, [1] * 4, [1] * 9, [1] * 5, [1] * 6, [1] * 7, [1] * 1], None)
    test = EvalSet("p", "pairwise", [[1] * 2, [1] * 8, [1] * 3, [1] * 3, [1] * 4, [1] * 3], None)
    scored, info = length_reference(test, val)
    assert info["rule"] == "prefer shorter" and info["chosen_on"] == "val"
    assert row_credit(test, scored.rewards).tolist() == [1.0, 0.0, 0.5]  # shorter chosen, longer chosen, a tie


def test_length_reference_on_binary_sets_follows_the_sign_of_the_length_label_correlation():
    val = EvalSet("b", "binary", [[1] * 2, [1] * 3, [1] * 8, [1] * 9], np.array([0, 0, 1, 1]))
    test = EvalSet("b", "binary", [[1] * 10, [1] * 1, [1] * 4], np.array([1, 0, 1]))
    scored, info = length_reference(test, val)
    assert info["rule"].startswith("longer than") and scored.rewards.tolist() == [4.5, -4.5, -1.5]
    assert metrics(scored, bootstrap=0)["accuracy"] == pytest.approx(2 / 3)


def test_length_matched_accuracy_keeps_the_pairs_whose_sides_differ_least():
    lens_c, lens_r = [10, 10, 10, 10], [11, 30, 10, 2]  # gaps 1, 20, 0, 8 -> matched half = rows 2 and 0
    es = EvalSet("p", "pairwise", [[1] * n for n in lens_c + lens_r], None)
    rewards = np.array([1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0])  # row credits 1, 1, 0, 1
    out = length_bias(Scored(es, rewards))
    assert out["acc_len_matched"] == 0.5 and out["len_matched_n"] == 2 and out["len_matched_gap"] == 1
    assert out["len_spearman"] == pytest.approx(stats.spearman(rewards, lens_c + lens_r))


def test_ensemble_is_the_mean_of_member_rewards():
    es = EvalSet("b", "binary", [[1]] * 3, np.array([1, 0, 1]))
    out = ensemble([Scored(es, np.array([1.0, -1.0, -3.0])), Scored(es, np.array([3.0, 0.0, 1.0]))])
    assert out.rewards.tolist() == [2.0, -0.5, -1.0]


def test_table_shows_paired_differences_references_and_the_bar(tmp_path):
    rng = np.random.default_rng(0)
    es = EvalSet("x", "pairwise", [[1]] * 800, None)
    chosen = rng.normal(size=400)

    def model(skill):  # reward = chosen side plus noise: higher skill, more pairs right
        return Scored(es, np.concatenate([chosen + skill, chosen + rng.normal(scale=0.5, size=400)]))

    scored = {"a": {"x": model(0.8)}, "b": {"x": model(0.2)}, "soup": {"x": model(0.75)},
              "base": {"x": model(-0.2)}, "length": {"x": model(0.0)}}
    kinds = {"a": "member", "b": "member", "soup": "soup", "base": "reference", "length": "reference"}
    results = {m: {"x": {**metrics(s["x"], 200), **length_bias(s["x"])}} for m, s in scored.items()}
    for m, by_ds in compare(scored, results, kinds, 200).items():
        results[m]["x"].update(by_ds["x"])
    rows = {r["model"]: r for r in tables.rows(results, kinds)}
    credit = {m: row_credit(es, s["x"].rewards) for m, s in scored.items()}
    assert rows["soup"]["x_best_member"] == "a"
    assert rows["soup"]["x_vs_best_member"] == pytest.approx(credit["soup"].mean() - credit["a"].mean())
    assert rows["soup"]["x_vs_best_member_lo"] <= rows["soup"]["x_vs_best_member"] <= rows["soup"]["x_vs_best_member_hi"]
    assert rows["a"]["x_beats_references"] and rows["a"]["x_vs_base_lo"] > 0
    assert "x_vs_best_member" not in rows["a"] and "x_bar" not in rows["base"]
    md = tables.write_report(tmp_path / "r", list(rows.values()), ["x"], "t")
    assert f"({100 * rows['soup']['x_vs_best_member']:+.1f} [" in md and rows["soup"]["x_bar"] in md
    assert "**beats both**" in md and "Length bias" in md and md == (tmp_path / "r" / "table.md").read_text()
    saved = json.loads((tmp_path / "r" / "results.json").read_text())["rows"]
    assert {r["model"] for r in saved} == set(scored)
    assert "x_vs_best_member_lo" in (tmp_path / "r" / "results.csv").read_text().splitlines()[0]


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
    from rewardsoup.evaluation.job import evaluate_models
    from rewardsoup.merging.soup import merge_soup

    soup = merge_soup(compose_cfg("merge", merge_overrides + ["merge=ties"]))
    models = [f"+models.{n}={p}" for n, p in tiny_members.items()] + [f"+models.ties={soup}"]
    cfg = compose_cfg("evaluate", merge_overrides[:3] + models + ["bootstrap=50", "max_length=64"])
    out = evaluate_models(cfg)
    by_model = {r["model"]: r for r in out["rows"]}
    assert set(by_model) == {"thumbs", "pairs", "harmless", "ties", "logit_ensemble", "uniform_soup", "base", "length"}
    assert by_model["ties"]["kind"] == "soup" and by_model["uniform_soup"]["kind"] == "baseline"
    assert by_model["base"]["kind"] == by_model["length"]["kind"] == "reference"
    for ds in ("demo_thumbs", "demo_pairs", "demo_harmless"):
        best = max(by_model[m][ds] for m in ("thumbs", "pairs", "harmless"))
        assert by_model["ties"][f"{ds}_vs_best_member"] == pytest.approx(by_model["ties"][ds] - best)
        assert by_model["thumbs"][f"{ds}_lo"] <= by_model["thumbs"][ds] <= by_model["thumbs"][f"{ds}_hi"]
        assert by_model["ties"][f"{ds}_bar"].startswith(("holds", "fails", "cannot tell at n="))
        assert isinstance(by_model["thumbs"][f"{ds}_beats_references"], bool)
        assert -1 <= by_model["thumbs"][f"{ds}_len_spearman"] <= 1
    assert "demo_thumbs_auc" in by_model["thumbs"] and "demo_pairs_tie_rate" in by_model["thumbs"]
    assert "demo_harmless_acc_len_matched" in by_model["pairs"]
    report = out_root / "reports" / "evaluate-test"
    table = (report / "table.md").read_text()
    assert table.split("\n\n")[1].count("\n| ") == 8  # one line per model after the header
    for f in ("results.csv", "results.json", "length_bias.png"):
        assert (report / f).stat().st_size > 0


def test_evaluate_with_nothing_to_score_is_a_clear_error(out_root):
    import subprocess
    import sys

    from conftest import ROOT

    out = subprocess.run([sys.executable, "evaluate.py", "logger=none"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 1 and "no models to evaluate" in out.stderr


def test_evaluate_scores_a_rewardbench_style_set_per_subset(compose_cfg, merge_overrides, tiny_members, out_root):
    from conftest import ROOT

    from rewardsoup.evaluation.job import evaluate_models
    from rewardsoup.scoring.metrics import score_evalset
    from rewardsoup.models.loading import load_reward_model

    fixture = ROOT / "tests" / "data" / "reward_bench_small.jsonl"
    models = [f"+models.{n}={p}" for n, p in tiny_members.items()]
    cfg = compose_cfg("evaluate", merge_overrides[:3] + models + [
        "datasets=reward_bench", f"datasets.reward_bench.source={fixture}", "bootstrap=50", "max_length=64"])
    by_model = {r["model"]: r for r in evaluate_models(cfg)["rows"]}
    row = by_model["harmless"]
    es = evalsets.load_evalset("reward_bench", cfg.datasets.reward_bench, "test", tiny_members["harmless"], 64, None)
    model = load_reward_model(tiny_members["harmless"])
    rewards = score_evalset(model, es, model.config.pad_token_id).rewards  # the pad id evaluate scores with
    groups = np.split(rewards, np.cumsum(es.sizes)[:-1])
    hits = [1.0 if g[0] > g[1:].max() else 0.0 for g in groups]  # no ties with float rewards
    assert es.schema == "multi" and row["reward_bench_n"] == len(groups) == 13  # 12 rows, one with 2 chosen
    assert row["reward_bench"] == pytest.approx(np.mean(hits))
    safety = [h for h, s in zip(hits, es.subsets) if s == "safety"]
    assert row["reward_bench_subset_safety"] == pytest.approx(np.mean(safety))
    assert row["reward_bench_chance"] == pytest.approx(np.mean(1 / es.sizes))
    table = (out_root / "reports" / "evaluate-test" / "table.md").read_text()
    assert "Best-of-N accuracy per subset" in table and "reward_bench / safety" in table
