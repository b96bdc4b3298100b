"""Held-out metrics of reward models on canonical splits, through `rewardsoup.scoring.rewards`.

Every metric is a mean of per-row credits (`row_credit`), so intervals and paired differences all come from
`rewardsoup.scoring.stats`:
- pairwise: chosen > rejected earns 1, a tie earns 1/2 (reward-bench's rule); `accuracy_strict` counts
  ties wrong and `tie_rate` says how often they happen;
- binary: (logit > 0) against the label, a logit of exactly 0 earns 1/2; ROC AUC beside it, since a
  Bradley-Terry reward has no calibrated zero and only its ranking means something;
- multi (RewardBench-style, one chosen and several rejected): best-of-N accuracy, the chosen reply above
  every rejected one (a tie at the top shares the credit among the tied replies), per subset and overall,
  with `chance` = mean of 1/N.
`Scored` keeps the raw rewards so the logit ensemble and the paired comparisons reuse the same numbers
without another forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from datasets import Dataset

from rewardsoup.scoring import stats
from rewardsoup.data.schema import multi_texts, pair_texts
from rewardsoup.scoring.prefix import group_sizes, score_groups
from rewardsoup.scoring.rewards import score_ids, tokenize

SCHEMAS = ("pairwise", "binary", "multi")


@dataclass
class EvalSet:
    """One dataset split, tokenized once. pairwise: chosen ids then rejected ids; binary: one text a row;
    multi: each row's texts in turn (chosen first), `sizes` texts per row, `subsets` a label per row."""

    name: str
    schema: str
    ids: list[list[int]]
    labels: np.ndarray | None  # binary labels; None otherwise
    truncated: int = 0
    sizes: np.ndarray | None = None  # multi: candidates per row
    subsets: list[str | None] | None = field(default=None)  # multi: subset name per row
    joint: int = 0  # rows whose texts took one common left cut (truncation=joint)
    fallback: int = 0  # rows a joint cut could not fit (a reply alone longer than max_length): cut independently

    @property
    def n(self) -> int:
        if self.schema == "pairwise":
            return len(self.ids) // 2
        return len(self.sizes) if self.schema == "multi" else len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        """Token length of every scored text (after left truncation: what the model saw)."""
        return np.array([len(s) for s in self.ids], dtype=np.float64)


@dataclass
class Scored:
    """Rewards of one model on one EvalSet, one per text in `EvalSet.ids` order."""

    evalset: EvalSet
    rewards: np.ndarray


def _groups(sizes: np.ndarray, values: np.ndarray) -> list[np.ndarray]:
    return np.split(values, np.cumsum(sizes)[:-1])


def row_credit(evalset: EvalSet, rewards: np.ndarray, strict: bool = False) -> np.ndarray:
    """Per-row credit in [0, 1]: the accuracy is its mean. `strict` gives ties no credit."""
    rewards = np.asarray(rewards, dtype=np.float64)
    if evalset.schema == "pairwise":
        return pair_credit(rewards[: evalset.n], rewards[evalset.n:], strict)
    if evalset.schema == "binary":
        return binary_credit(rewards, evalset.labels, strict)
    return best_of_n_credit(rewards, evalset.sizes, strict)


def pair_credit(chosen: np.ndarray, rejected: np.ndarray, strict: bool = False) -> np.ndarray:
    """1 where chosen > rejected, 1/2 on a tie (0 when `strict`), else 0."""
    c, r = np.asarray(chosen, dtype=np.float64), np.asarray(rejected, dtype=np.float64)
    return (c > r) + (0.0 if strict else 0.5 * (c == r))


def binary_credit(logits: np.ndarray, labels: np.ndarray, strict: bool = False) -> np.ndarray:
    """1 where (logit > 0) matches the label, 1/2 for a logit of exactly 0 (0 when `strict`), else 0."""
    logits = np.asarray(logits, dtype=np.float64)
    right = ((logits > 0) == (np.asarray(labels) == 1)).astype(np.float64)
    return right if strict else np.where(logits == 0, 0.5, right)


def best_of_n_credit(rewards: np.ndarray, sizes: np.ndarray, strict: bool = False) -> np.ndarray:
    """Per group of `sizes` candidates (the preferred one first): 1 when it is ranked first, 0 when a
    rejected one is above it, 1/k when it ties k-1 rejected ones at the top (0 when `strict`)."""
    out = np.empty(len(sizes))
    for i, g in enumerate(_groups(np.asarray(sizes), np.asarray(rewards, dtype=np.float64))):
        top = g[1:].max()
        out[i] = 1.0 if g[0] > top else 0.0 if (g[0] < top or strict) else 1.0 / (1 + int((g[1:] == g[0]).sum()))
    return out


def tie_rate(evalset: EvalSet, rewards: np.ndarray) -> float:
    """Rows whose chosen reply ties the best rejected one (pairwise, multi)."""
    rewards = np.asarray(rewards, dtype=np.float64)
    if evalset.schema == "pairwise":
        return float(np.mean(rewards[: evalset.n] == rewards[evalset.n:]))
    return float(np.mean([g[0] == g[1:].max() for g in _groups(evalset.sizes, rewards)]))


def metrics(scored: Scored, bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """accuracy (half credit for ties) with its interval, accuracy_strict; tie_rate for pairs and multi
    sets, auc (+ interval) for binary sets, chance and per-subset accuracy for multi sets."""
    es, r = scored.evalset, scored.rewards
    out: dict[str, Any] = {"n": es.n}
    if es.n == 0:
        return {**out, "accuracy": float("nan"), "accuracy_lo": float("nan"), "accuracy_hi": float("nan")}
    credit = row_credit(es, r)
    out["accuracy"] = float(credit.mean())
    out["accuracy_lo"], out["accuracy_hi"] = stats.interval(credit, bootstrap, seed)
    out["accuracy_strict"] = float(row_credit(es, r, strict=True).mean())
    if es.schema == "binary":
        out["auc"] = stats.auc(r, es.labels)
        out["auc_lo"], out["auc_hi"] = stats.auc_interval(r, es.labels, bootstrap, seed)
    else:
        out["tie_rate"] = tie_rate(es, r)
    if es.schema == "multi":
        out["chance"] = float(np.mean(1.0 / es.sizes))
        subsets = np.array([s or "all" for s in es.subsets], dtype=object)
        out["subsets"] = {str(s): {"n": int((subsets == s).sum()), "accuracy": float(credit[subsets == s].mean())}
                          for s in sorted(set(subsets))}
    return out


def text_index(evalset: EvalSet, rows: np.ndarray) -> np.ndarray:
    """Positions in `evalset.ids` of the texts of `rows`, in the order `take_rows` keeps them."""
    rows = np.asarray(rows, dtype=np.int64)
    if evalset.schema == "pairwise":
        return np.concatenate([rows, rows + evalset.n])
    if evalset.schema == "binary":
        return rows
    starts = np.concatenate([[0], np.cumsum(evalset.sizes)[:-1]]).astype(np.int64)
    return np.concatenate([np.arange(starts[r], starts[r] + evalset.sizes[r]) for r in rows] or [np.zeros(0, np.int64)])


def take_rows(evalset: EvalSet, rows: np.ndarray) -> EvalSet:
    """The rows `rows` of `evalset` as an EvalSet of their own (a sweep trial scores its val sets in chunks)."""
    rows = np.asarray(rows, dtype=np.int64)
    ids = [evalset.ids[i] for i in text_index(evalset, rows)]
    labels = None if evalset.labels is None else evalset.labels[rows]
    sizes = None if evalset.sizes is None else evalset.sizes[rows]
    subsets = None if evalset.subsets is None else [evalset.subsets[i] for i in rows]
    return EvalSet(evalset.name, evalset.schema, ids, labels, evalset.truncated, sizes, subsets, evalset.joint,
                   evalset.fallback)


def score_evalset(model, evalset: EvalSet, pad_id: int, batch_size: int = 32) -> Scored:
    """One forward pass over every text of the set (chosen and rejected batched together)."""
    return Scored(evalset, score_ids(model, evalset.ids, pad_id, batch_size))


def text_groups(evalset: EvalSet) -> list:
    """Texts that share a prompt, as index groups: a pair's two sides, a multi row's candidates (binary
    rows share with nothing)."""
    if evalset.schema == "pairwise":
        return [(i, i + evalset.n) for i in range(evalset.n)]
    return group_sizes(evalset.sizes) if evalset.schema == "multi" else []


def evalsets_groups(evalsets: list[EvalSet]) -> list[list[int]]:
    """Every set's `text_groups`, as indices into the sets' texts end to end (how score_evalsets lays them)."""
    starts = np.concatenate([[0], np.cumsum([len(es.ids) for es in evalsets])[:-1]])
    return [[int(start) + i for i in g] for es, start in zip(evalsets, starts) for g in text_groups(es)]


def score_evalsets(model, evalsets: list[EvalSet], pad_id: int, batch_size: int = 32,
                   share_prefix: bool = False) -> list[Scored]:
    """Several sets in one pass: batches sorted by length across all of them, a text shared by two sets
    (demo_pairs repeats demo_thumbs' texts) scored once. `share_prefix`: the texts of a row (`text_groups`)
    run their common prefix once (`scoring.prefix`; same rewards)."""
    ids = [s for es in evalsets for s in es.ids]
    ends = np.cumsum([len(es.ids) for es in evalsets])
    if share_prefix:
        rewards = score_groups(model, ids, evalsets_groups(evalsets), pad_id, batch_size)[0]
    else:
        rewards = score_ids(model, ids, pad_id, batch_size)
    return [Scored(es, r) for es, r in zip(evalsets, np.split(rewards, ends[:-1]))]


def ensemble(scored: list[Scored]) -> Scored:
    """The logit ensemble: mean of the members' rewards, no merge."""
    return Scored(scored[0].evalset, np.mean([s.rewards for s in scored], axis=0))


def evalset_from_split(name: str, schema: str, ds: Dataset, tokenizer, max_length: int,
                       truncation: str = "independent") -> EvalSet:
    """Tokenize a canonical split once (left-truncated; `truncation="joint"` cuts a row's texts by one common
    amount, `scoring.truncation`): chosen texts then rejected texts for pairs, each row's candidates in turn
    (chosen first) for multi sets."""
    if schema == "pairwise":
        texts = [pair_texts(row) for row in ds]
        groups = [(i, i + len(texts)) for i in range(len(texts))]
        tok = tokenize(tokenizer, [c for c, _ in texts] + [r for _, r in texts], max_length, groups, truncation)
        return EvalSet(name, "pairwise", tok.ids, None, tok.truncated, joint=tok.joint, fallback=tok.fallback)
    if schema == "multi":
        rows = [multi_texts(row) for row in ds]
        sizes = np.array([len(t) for t in rows], dtype=np.int64)
        tok = tokenize(tokenizer, [t for texts in rows for t in texts], max_length, group_sizes(sizes), truncation)
        return EvalSet(name, "multi", tok.ids, None, tok.truncated, sizes, list(ds["subset"]) if len(ds) else [],
                       tok.joint, tok.fallback)
    tok = tokenize(tokenizer, ds["text"], max_length)  # a binary row is one text: nothing to cut jointly
    return EvalSet(name, "binary", tok.ids, np.asarray(ds["label"], dtype=np.int64), tok.truncated)


def validation_metrics(model, evalset: EvalSet, pad_id: int, batch_size: int = 32,
                       scored: Scored | None = None) -> dict[str, Any]:
    """Training's validation: the same scoring and metrics as evaluate.py, without intervals (`scored`: the
    set's rewards when a caller scored several sets in one pass, `score_evalsets`)."""
    scored = scored if scored is not None else score_evalset(model, evalset, pad_id, batch_size)
    out = metrics(scored, bootstrap=0)
    out = {k: v for k, v in out.items() if not k.endswith(("_lo", "_hi"))}
    if evalset.schema == "pairwise":
        out["margin"] = float(np.mean(scored.rewards[: evalset.n] - scored.rewards[evalset.n:]))
    elif evalset.schema == "binary":
        out["positive_rate"] = float(np.mean(scored.rewards > 0))
    return out
