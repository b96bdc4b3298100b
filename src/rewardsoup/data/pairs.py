"""Convert between the binary and pairwise schemas.

`build_pairs` turns thumbs-up/down rows into preference pairs: within each group (e.g. one bot), liked
texts are paired with disliked ones after a seeded shuffle. Rows that find no partner are counted in the
report, never dropped silently. `pairs_to_binary` goes the other way (chosen -> 1, rejected -> 0).
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

from datasets import Dataset

from rewardsoup.data.schema import BINARY_FEATURES, PAIRWISE_FEATURES, rows_dataset
from rewardsoup.core.errors import DataError


def build_pairs(binary_ds: Dataset, group_key: str | None = "group", seed: int = 0) -> tuple[Dataset, dict[str, Any]]:
    """Pair positives with negatives inside each group of ``binary_ds``.

    Rows group by the value of column ``group_key`` (rows whose value is None form one pool; ``group_key``
    None puts all rows in one pool). In each group positives and negatives are shuffled with a generator
    seeded by ``(seed, group)`` and zipped: chosen = positive text, rejected = negative text, prompt "",
    group kept. Groups are visited in sorted order, so the output is the same on every run.

    Report: ``rows``, ``groups``, ``pairs``, ``unpaired_pos``, ``unpaired_neg``, ``groups_without_both``;
    ``rows == 2 * pairs + unpaired_pos + unpaired_neg`` always holds.
    """
    if group_key is not None and group_key not in binary_ds.column_names:
        raise DataError(f"build_pairs: no column {group_key!r} to group by; columns present: {binary_ds.column_names}")
    texts, labels = list(binary_ds["text"]), list(binary_ds["label"])
    groups = list(binary_ds[group_key]) if group_key is not None else [None] * len(texts)
    pools: dict[Any, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for text, label, group in zip(texts, labels, groups):
        pools[group][0 if label == 1 else 1].append(text)

    pairs, unpaired_pos, unpaired_neg, without_both = [], 0, 0, 0
    for group in sorted(pools, key=lambda g: (g is not None, "" if g is None else str(g))):
        pos, neg = pools[group]
        rng = random.Random(f"{seed}\0{group}")
        rng.shuffle(pos)
        rng.shuffle(neg)
        n = min(len(pos), len(neg))
        without_both += n == 0
        unpaired_pos += len(pos) - n
        unpaired_neg += len(neg) - n
        group_value = None if group is None else str(group)
        pairs.extend(
            {"prompt": "", "chosen": c, "rejected": r, "margin": None, "group": group_value}
            for c, r in zip(pos[:n], neg[:n])
        )
    report = {
        "rows": len(texts),
        "groups": len(pools),
        "pairs": len(pairs),
        "unpaired_pos": unpaired_pos,
        "unpaired_neg": unpaired_neg,
        "groups_without_both": without_both,
    }
    return rows_dataset(pairs, PAIRWISE_FEATURES), report


def pairs_to_binary(pairwise_ds: Dataset) -> Dataset:
    """Each pair becomes two binary rows: ``prompt + chosen`` labelled 1 and ``prompt + rejected`` labelled 0."""
    rows = []
    for row in pairwise_ds:
        prompt = row.get("prompt") or ""
        group = row.get("group")
        rows.append({"text": prompt + row["chosen"], "label": 1, "group": group})
        rows.append({"text": prompt + row["rejected"], "label": 0, "group": group})
    return rows_dataset(rows, BINARY_FEATURES)
