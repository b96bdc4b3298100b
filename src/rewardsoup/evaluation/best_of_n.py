"""Best-of-N accuracy of a reward model on pairwise data (evaluate.py's optional `best_of_n` block).

Pairs sharing a prompt become one group: the preferred reply against every distinct rejected one. A group
earns credit when the reward model ranks the preferred reply first (a tie at the top shares the credit, as
`scoring.metrics.best_of_n_credit` rules for RewardBench-style sets).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from rewardsoup.data import load_splits
from rewardsoup.data.loading import as_dict
from rewardsoup.scoring import stats
from rewardsoup.scoring.metrics import best_of_n_credit
from rewardsoup.scoring.prefix import group_sizes, score_text_groups


@dataclass
class BonGroup:
    """One prompt with its preferred reply and >= 1 distinct rejected replies (n = 1 + len(rejected))."""

    prompt: str
    chosen: str
    rejected: list[str]

    @property
    def n(self) -> int:
        return 1 + len(self.rejected)


def group_pairs_by_prompt(ds, min_candidates: int = 2) -> tuple[list[BonGroup], dict[str, int]]:
    """Group canonical pairwise rows sharing a (non-empty) prompt into best-of-n groups.

    A group keeps its distinct rejected replies (any equal to the chosen one dropped). Skipped and counted
    in the report: rows without a prompt (`no_prompt`), groups whose pairs disagree on the chosen reply
    (`inconsistent_chosen`), groups with fewer than `min_candidates` candidates (`too_few`).
    """
    by_prompt: dict[str, list[tuple[str, str]]] = {}
    report = {"pairs": len(ds), "no_prompt": 0, "inconsistent_chosen": 0, "too_few": 0, "groups": 0}
    for row in ds:
        if not row["prompt"]:
            report["no_prompt"] += 1
            continue
        by_prompt.setdefault(row["prompt"], []).append((row["chosen"], row["rejected"]))
    groups = []
    for prompt, pairs in by_prompt.items():
        if len({c for c, _ in pairs}) > 1:
            report["inconsistent_chosen"] += 1
            continue
        chosen = pairs[0][0]
        rejected = list(dict.fromkeys(r for _, r in pairs if r != chosen))
        if not rejected or 1 + len(rejected) < min_candidates:
            report["too_few"] += 1
            continue
        groups.append(BonGroup(prompt, chosen, rejected))
    report["groups"] = len(groups)
    return groups, report


def best_of_n_accuracy(groups: Sequence[BonGroup], scorer: Callable[[list[str]], Sequence[float]],
                       bootstrap: int = 1000, seed: int = 0) -> dict[str, float]:
    """Fraction of groups where `scorer` (texts -> rewards) ranks the preferred reply first (ties share).

    Texts are `prompt + reply`, scored in one call. Returns `bon` with its seeded bootstrap 95% interval
    (`bon_lo`, `bon_hi`, groups resampled), `bon_chance` (mean of 1/n: a random pick's expected score),
    `bon_groups` and `bon_mean_candidates`.
    """
    if not groups:
        return {**dict.fromkeys(("bon", "bon_lo", "bon_hi", "bon_chance", "bon_mean_candidates"), float("nan")),
                "bon_groups": 0}
    texts = [g.prompt + reply for g in groups for reply in [g.chosen, *g.rejected]]
    rewards = np.asarray(scorer(texts), dtype=np.float64)
    if rewards.shape != (len(texts),):
        raise ValueError(f"scorer returned {rewards.shape} rewards for {len(texts)} texts")
    sizes = np.array([g.n for g in groups])
    hits = best_of_n_credit(rewards, sizes)
    lo, hi = stats.interval(hits, bootstrap, seed)
    return {"bon": float(hits.mean()), "bon_lo": lo, "bon_hi": hi, "bon_chance": float(np.mean(1.0 / sizes)),
            "bon_groups": len(groups), "bon_mean_candidates": float(sizes.mean())}


_BON_GROUPS: dict[str, tuple] = {}


def dataset_best_of_n(model, tokenizer_dir: str | Path, data_cfg, split: str, max_length: int,
                      batch_size: int = 32, min_candidates: int = 2, bootstrap: int = 1000,
                      share_prefix: bool = False, truncation: str = "independent") -> dict[str, float]:
    """best_of_n_accuracy of `model` on one pairwise split (groups built once per process and dataset)."""
    from transformers import AutoTokenizer

    key = json.dumps([as_dict(data_cfg), split, min_candidates, str(tokenizer_dir)], sort_keys=True, default=str)
    if key not in _BON_GROUPS:
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        groups, report = group_pairs_by_prompt(getattr(load_splits(data_cfg, tokenizer), split), min_candidates)
        _BON_GROUPS[key] = (tokenizer, groups)
        print(f"[rewardsoup] best-of-n groups of {as_dict(data_cfg).get('name')} ({split}): {report}", flush=True)
    tokenizer, groups = _BON_GROUPS[key]
    index = group_sizes([g.n for g in groups])  # a group's candidates share its prompt
    return best_of_n_accuracy(groups, lambda texts: score_text_groups(model, tokenizer, texts, index, max_length,
                                                                      batch_size, share_prefix, truncation),
                              bootstrap)
