"""What a held-out number is worth: per-row credit, bootstrap intervals, paired differences, AUC.

Every accuracy here is a mean of per-row credits (1 right, 0 wrong, a share for a tie; see
`evaluation.row_credit`), so an interval is the bootstrap of a mean, and the difference of two models on the
same rows is the bootstrap of the mean of their per-row differences: the SAME resampled rows for both
models (a paired interval), far tighter than two unpaired intervals side by side. All resampling goes
through `scipy.stats.bootstrap` (percentile method, seeded) and every AUC through `_auc_axis`
(`scipy.stats.rankdata`), vectorised over resamples.

The recipe's bar: a soup may lose at most `BAR` (2 points) against each specialist. `bar_verdict` says
whether a paired interval shows that ("holds"), shows the opposite ("fails"), or cannot tell at this n.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from scipy import stats as sps

BAR = 0.02  # the recipe's "a couple of points": a soup may lose at most this much to each specialist
CONFIDENCE = 0.95


def _nan2() -> tuple[float, float]:
    return float("nan"), float("nan")


def interval(credit: np.ndarray, samples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of mean(credit) over `samples` resamples of the rows (seeded)."""
    credit = np.asarray(credit, dtype=np.float64)
    if samples <= 0 or len(credit) == 0:
        return _nan2()
    if len(credit) == 1 or np.all(credit == credit[0]):
        return float(credit[0]), float(credit[0])  # no spread to resample
    res = sps.bootstrap((credit,), np.mean, n_resamples=samples, confidence_level=CONFIDENCE,
                        method="percentile", random_state=np.random.default_rng(seed), vectorized=True)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired(credit_a: np.ndarray, credit_b: np.ndarray, samples: int = 1000, seed: int = 0) -> dict[str, float]:
    """a - b on the same rows: the difference of means, its paired 95% interval, and rows won / lost."""
    a, b = np.asarray(credit_a, dtype=np.float64), np.asarray(credit_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired credits must cover the same rows: {a.shape} vs {b.shape}")
    d = a - b
    lo, hi = interval(d, samples, seed)
    return {"diff": float(d.mean()) if len(d) else float("nan"), "lo": lo, "hi": hi, "n": int(len(d)),
            "won": int((d > 0).sum()), "lost": int((d < 0).sum())}


def paired_mean(credits_a: Mapping[str, np.ndarray], credits_b: Mapping[str, np.ndarray], samples: int = 1000,
                seed: int = 0) -> dict[str, float]:
    """The mean over datasets of (a - b), each dataset's rows paired and resampled on their own (a stratified
    paired bootstrap: the datasets are separate samples), e.g. two soups' test-mean difference."""
    names = sorted(credits_a)
    if sorted(credits_b) != names:
        raise ValueError(f"paired credits must cover the same datasets: {names} vs {sorted(credits_b)}")
    diffs = []
    for d in names:
        a, b = np.asarray(credits_a[d], dtype=np.float64), np.asarray(credits_b[d], dtype=np.float64)
        if a.shape != b.shape or not len(a):
            raise ValueError(f"paired credits on {d} must cover the same, non-empty rows: {a.shape} vs {b.shape}")
        diffs.append(a - b)
    diff = float(np.mean([d.mean() for d in diffs]))
    if samples <= 0 or all(np.all(d == diff) for d in diffs):
        lo = hi = diff if samples > 0 else float("nan")
    else:
        res = sps.bootstrap(tuple(diffs), lambda *ds, axis=-1: np.mean([d.mean(axis=axis) for d in ds], axis=0),
                            n_resamples=samples, confidence_level=CONFIDENCE, method="percentile", paired=False,
                            random_state=np.random.default_rng(seed), vectorized=True)
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return {"diff": diff, "lo": lo, "hi": hi, "n": int(sum(len(d) for d in diffs)), "datasets": len(diffs)}


def excludes_zero(lo: float, hi: float) -> bool:
    """True when a 95% interval lies wholly above or below 0 (the difference is resolved)."""
    return bool(lo > 0 or hi < 0)


def bar_verdict(diff: dict[str, float], bar: float = BAR) -> str:
    """The recipe's bar (lose at most `bar` against the specialist) read from a paired interval."""
    if not np.isfinite(diff["lo"]):
        return f"cannot tell at n={diff['n']}"
    if diff["lo"] >= -bar:
        return "holds"
    if diff["hi"] < -bar:
        return "fails"
    return f"cannot tell at n={diff['n']}"


def _auc_axis(scores: np.ndarray, labels: np.ndarray, axis: int = -1) -> np.ndarray:
    """The one ROC AUC: Mann-Whitney U / (n_pos n_neg) from mid-ranks (ties at half), along `axis`.

    nan where a class is absent. Not `scipy.stats.mannwhitneyu`: it takes the two classes as separate
    samples, so it cannot vectorise over bootstrap resamples whose class split differs per resample.
    """
    scores, labels = np.moveaxis(np.asarray(scores, dtype=np.float64), axis, -1), np.moveaxis(labels, axis, -1) == 1
    ranks = sps.rankdata(scores, axis=-1)
    pos, neg = labels.sum(-1), (~labels).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((ranks * labels).sum(-1) - pos * (pos + 1) / 2) / (pos * neg)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC of one set of scores (ties at half); nan when a class is absent."""
    return float(_auc_axis(np.asarray(scores, dtype=np.float64), np.asarray(labels)))


def auc_interval(scores: np.ndarray, labels: np.ndarray, samples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap 95% interval of the AUC (rows resampled with their labels)."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if samples <= 0 or not np.isfinite(auc(scores, labels)):
        return _nan2()
    res = sps.bootstrap((scores, labels), _auc_axis, paired=True, n_resamples=samples, method="percentile",
                        confidence_level=CONFIDENCE, random_state=np.random.default_rng(seed), vectorized=True)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_auc(scores_a: np.ndarray, scores_b: np.ndarray, labels: np.ndarray, samples: int = 1000,
               seed: int = 0) -> dict[str, float]:
    """AUC(a) - AUC(b) on the same rows, with its paired 95% interval."""
    a, b, labels = (np.asarray(x, dtype=np.float64) for x in (scores_a, scores_b, labels))
    diff = auc(a, labels) - auc(b, labels)
    lo = hi = float("nan")
    if samples > 0 and np.isfinite(diff):
        res = sps.bootstrap((a, b, labels), lambda x, y, lab, axis=-1: _auc_axis(x, lab, axis) - _auc_axis(y, lab, axis),
                            paired=True, n_resamples=samples, method="percentile", confidence_level=CONFIDENCE,
                            random_state=np.random.default_rng(seed), vectorized=True)
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return {"diff": float(diff), "lo": lo, "hi": hi, "n": int(len(labels))}


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation; nan when either side is constant or empty."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(sps.spearmanr(x, y).statistic)
