"""bench/search_strategies.py's second table: each pick paired with the specialists (the bar), the multi-task
model and the ensemble, on synthetic per-row credits whose answers are known."""

import importlib.util
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1] / "bench" / "search_strategies.py"


def _bench():
    spec = importlib.util.spec_from_file_location("search_strategies_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _credits(acc: float, n: int, seed: int) -> np.ndarray:
    rows = np.zeros(n)
    rows[np.random.default_rng(seed).permutation(n)[: round(acc * n)]] = 1.0
    return rows


def test_alternatives_pair_each_pick_with_its_specialist_and_the_alternatives():
    n = 800
    helpful_member = {"helpful": _credits(0.70, n, 0), "harmless": _credits(0.40, n, 1)}
    harmless_member = {"helpful": _credits(0.40, n, 2), "harmless": _credits(0.70, n, 3)}
    alts = {"a": helpful_member, "b": harmless_member,
            "multitask": {d: np.where(_credits(0.5, n, 4) > 0, 1.0, c) for d, c in helpful_member.items()},
            "ensemble": {"helpful": helpful_member["helpful"].copy(), "harmless": harmless_member["harmless"] * 0}}
    # a pick equal to the helpful specialist on helpful, 30 points under the harmless one on harmless
    picks = {"soup": {"helpful": helpful_member["helpful"].copy(), "harmless": harmless_member["harmless"] * 0 +
                      _credits(0.40, n, 5)}}
    table = _bench().against_alternatives(picks, alts, ["a", "b"])
    soup = table["soup"]
    assert soup["bar"]["helpful"]["specialist"] == "a" and soup["bar"]["harmless"]["specialist"] == "b"
    assert soup["bar"]["helpful"]["verdict"] == "holds" and soup["bar"]["helpful"]["diff"] == 0.0
    assert soup["bar"]["harmless"]["verdict"] == "fails" and soup["bar"]["harmless"]["n"] == n
    assert abs(soup["bar"]["harmless"]["diff"] + 0.30) < 1e-9
    # the ensemble scores 0 on harmless here: the soup is better on the mean; the multitask model is better
    assert soup["vs_ensemble"]["verdict"] == "better" and soup["vs_multitask"]["verdict"] == "worse"
    # the alternatives are rows of their own, never compared with themselves
    assert "vs_multitask" not in table["multitask"] and "vs_ensemble" in table["multitask"]
    assert "vs_ensemble" not in table["ensemble"] and table["ensemble"]["bar"]["harmless"]["verdict"] == "fails"


def test_specialist_ties_go_to_the_first_member_by_name_as_in_evaluate():
    n = 200
    same = _credits(0.6, n, 0)
    alts = {"b": {"x": same.copy()}, "a": {"x": same.copy()}, "ensemble": {"x": same.copy()}}
    table = _bench().against_alternatives({"soup": {"x": _credits(0.5, n, 1)}}, alts, ["b", "a"])
    assert table["soup"]["bar"]["x"]["specialist"] == "a"
