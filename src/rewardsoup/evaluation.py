"""Held-out metrics of reward models on canonical splits, through `rewardsoup.scoring`.

- pairwise: accuracy = P(chosen > rejected), ties counted wrong (the tie rate is reported);
- binary: accuracy of (logit > 0) against the label, and ROC AUC;
each with a seeded bootstrap 95% interval. `Scored` keeps the raw rewards so the logit ensemble (mean of
member rewards) is computed from the same numbers without another forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from datasets import Dataset

from rewardsoup.data.schema import pair_texts
from rewardsoup.scoring import binary_accuracy, pairwise_accuracy, score_ids, tokenize


@dataclass
class EvalSet:
    """One dataset split, tokenized once: pairwise sets hold chosen ids then rejected ids."""

    name: str
    schema: str
    ids: list[list[int]]
    labels: np.ndarray | None  # binary labels; None for pairwise
    truncated: int = 0

    @property
    def n(self) -> int:
        return len(self.ids) // 2 if self.schema == "pairwise" else len(self.ids)


@dataclass
class Scored:
    """Rewards of one model on one EvalSet (pairwise: chosen half then rejected half)."""

    evalset: EvalSet
    rewards: np.ndarray


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney AUC with average ranks for ties; nan when a class is absent."""
    labels = np.asarray(labels) == 1
    pos, neg = int(labels.sum()), int((~labels).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over runs of equal scores
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _stat(evalset: EvalSet, rewards: np.ndarray, idx: np.ndarray, metric: str) -> float:
    if evalset.schema == "pairwise":
        n = evalset.n
        return pairwise_accuracy(rewards[:n][idx], rewards[n:][idx])
    if metric == "auc":
        return roc_auc(rewards[idx], evalset.labels[idx])
    return binary_accuracy(rewards[idx], evalset.labels[idx])


def bootstrap_ci(evalset: EvalSet, rewards: np.ndarray, metric: str, samples: int, seed: int = 0):
    """Percentile 95% interval of `metric` over `samples` resamples of the rows (seeded)."""
    if samples <= 0 or evalset.n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    stats = [_stat(evalset, rewards, rng.integers(0, evalset.n, evalset.n), metric) for _ in range(samples)]
    lo, hi = np.nanpercentile(stats, [2.5, 97.5])
    return float(lo), float(hi)


def metrics(scored: Scored, bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """accuracy (+ CI), and tie_rate for pairs or auc (+ CI) for binary sets."""
    es, r = scored.evalset, scored.rewards
    every = np.arange(es.n)
    out: dict[str, Any] = {"n": es.n, "accuracy": _stat(es, r, every, "accuracy")}
    out["accuracy_lo"], out["accuracy_hi"] = bootstrap_ci(es, r, "accuracy", bootstrap, seed)
    if es.schema == "pairwise":
        out["tie_rate"] = float(np.mean(r[: es.n] == r[es.n:])) if es.n else float("nan")
    else:
        out["auc"] = _stat(es, r, every, "auc")
        out["auc_lo"], out["auc_hi"] = bootstrap_ci(es, r, "auc", bootstrap, seed)
    return out


def score_evalset(model, evalset: EvalSet, pad_id: int, batch_size: int = 32) -> Scored:
    """One forward pass over every text of the set (chosen and rejected batched together)."""
    return Scored(evalset, score_ids(model, evalset.ids, pad_id, batch_size))


def score_evalsets(model, evalsets: list[EvalSet], pad_id: int, batch_size: int = 32) -> list[Scored]:
    """Several sets in one pass: batches sorted by length across all of them, a text shared by two sets
    (demo_pairs repeats demo_thumbs' texts) scored once."""
    rewards = score_ids(model, [s for es in evalsets for s in es.ids], pad_id, batch_size)
    ends = np.cumsum([len(es.ids) for es in evalsets])
    return [Scored(es, r) for es, r in zip(evalsets, np.split(rewards, ends[:-1]))]


def ensemble(scored: list[Scored]) -> Scored:
    """The logit ensemble: mean of the members' rewards, no merge."""
    return Scored(scored[0].evalset, np.mean([s.rewards for s in scored], axis=0))


def evalset_from_split(name: str, schema: str, ds: Dataset, tokenizer, max_length: int) -> EvalSet:
    """Tokenize a canonical split once (left-truncated): chosen texts then rejected texts for pairs."""
    if schema == "pairwise":
        texts = [pair_texts(row) for row in ds]
        tok = tokenize(tokenizer, [c for c, _ in texts] + [r for _, r in texts], max_length)
        return EvalSet(name, "pairwise", tok.ids, None, tok.truncated)
    tok = tokenize(tokenizer, ds["text"], max_length)
    return EvalSet(name, "binary", tok.ids, np.asarray(ds["label"], dtype=np.int64), tok.truncated)


def validation_metrics(model, evalset: EvalSet, pad_id: int, batch_size: int = 32) -> dict[str, Any]:
    """Training's per-epoch validation: the same scoring and metrics as evaluate.py, without intervals."""
    scored = score_evalset(model, evalset, pad_id, batch_size)
    out = metrics(scored, bootstrap=0)
    out = {k: v for k, v in out.items() if not k.endswith(("_lo", "_hi"))}
    if evalset.schema == "pairwise":
        out["margin"] = float(np.mean(scored.rewards[: evalset.n] - scored.rewards[evalset.n:]))
    else:
        out["positive_rate"] = float(np.mean(scored.rewards > 0))
    return out
