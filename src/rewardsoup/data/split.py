"""Deterministic train/val/test split by content hash, with no text in two splits.

Each row gets a key; ``sha256(salt + "\\0" + key)`` maps it to a number in [0, 1) that picks the split, so
the result is the same across runs, machines and Python hash seeds, and does not depend on row order.

- binary rows: key = ``text`` (identical texts always share a split).
- pairwise rows: rows are joined (union-find) when they share any scored text (``prompt + chosen`` or
  ``prompt + rejected``) or the same non-empty ``prompt``; every row of a joined component uses the
  component's smallest scored text as key, so no scored text and no prompt straddles two splits.
"""

from __future__ import annotations

import hashlib
from typing import Any

from datasets import Dataset

from rewardsoup.data.schema import BINARY, pair_texts

SPLITS = ("train", "val", "test")


def split_fractions(split_cfg: dict[str, Any] | None) -> tuple[float, float, str]:
    """(val, test, salt) from a ``split`` config; 0.1 / 0.1 / "rewardsoup" where a key is absent. A composed
    config's values already obey the rules of ``SplitConfig`` (data/config.py): both >= 0, sum < 1."""
    cfg = dict(split_cfg or {})
    return float(cfg.get("val", 0.1)), float(cfg.get("test", 0.1)), str(cfg.get("salt", "rewardsoup"))


def hash_unit(key: str, salt: str) -> float:
    """A number in [0, 1) from sha256 of ``salt`` and ``key``; stable everywhere."""
    digest = hashlib.sha256(f"{salt}\0{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def pairwise_keys(ds: Dataset) -> list[str]:
    """One key per pairwise row: the smallest scored text of the row's union-find component."""
    parent = list(range(len(ds)))
    owner: dict[str, int] = {}
    rows_texts = []
    columns = zip(ds["prompt"], ds["chosen"], ds["rejected"])
    for i, (prompt, chosen, rejected) in enumerate(columns):
        texts = list(pair_texts({"prompt": prompt, "chosen": chosen, "rejected": rejected}))
        rows_texts.append(texts)
        nodes = texts + ([f"\0prompt\0{prompt}"] if prompt else [])
        for node in nodes:
            j = owner.setdefault(node, i)
            a, b = _find(parent, i), _find(parent, j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    smallest: dict[int, str] = {}
    for i, texts in enumerate(rows_texts):
        root = _find(parent, i)
        candidate = min(texts)
        if root not in smallest or candidate < smallest[root]:
            smallest[root] = candidate
    return [smallest[_find(parent, i)] for i in range(len(ds))]


def split_keys(ds: Dataset, schema: str) -> list[str]:
    """The hash key of every row of ``ds`` (see the module docstring)."""
    return list(ds["text"]) if schema == BINARY else pairwise_keys(ds)


def split_dataset(
    ds: Dataset, schema: str, val: float = 0.1, test: float = 0.1, salt: str = "rewardsoup"
) -> dict[str, Dataset]:
    """Split ``ds`` into {"train", "val", "test"}; fractions are expectations, not exact counts (a config's
    fractions obey data/config.py's SplitConfig rules: both >= 0, sum < 1)."""
    indices: dict[str, list[int]] = {name: [] for name in SPLITS}
    for i, key in enumerate(split_keys(ds, schema)):
        u = hash_unit(key, salt)
        indices["test" if u < test else "val" if u < test + val else "train"].append(i)
    return {name: ds.select(idx) for name, idx in indices.items()}
