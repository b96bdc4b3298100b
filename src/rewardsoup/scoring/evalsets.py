"""Tokenized evaluation splits, cached on disk and in the process.

A split is tokenized once (left-truncated, `rewardsoup.scoring.rewards.tokenize`) and stored under
`paths.cache/evalsets/<key>.json`, where the key hashes the tokenizer's files, the resolved data config,
the split, max_length and the truncation mode (conf/scoring `truncation`) — change any of them and a new
entry is made, so independent and joint entries never mix. Sweeps in one process also keep the sets in memory.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Mapping

import numpy as np
from rewardsoup.core.atomic import atomic_write_text
from rewardsoup.core.plain import plain
from rewardsoup.data import load_splits
from rewardsoup.scoring.metrics import EvalSet, evalset_from_split
from rewardsoup.core.errors import ConfigError

_MEMORY: dict[str, EvalSet] = {}
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json")


def tokenizer_fingerprint(tokenizer_dir: str | Path) -> str:
    h = hashlib.sha256()
    for name in _TOKENIZER_FILES:
        f = Path(tokenizer_dir) / name
        if f.exists():
            h.update(name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


def cache_key(tokenizer_dir: str | Path, data_cfg: Mapping, split: str, max_length: int,
              truncation: str = "independent") -> str:
    parts = [tokenizer_fingerprint(tokenizer_dir), plain(data_cfg), split, int(max_length)]
    if truncation != "independent":  # independent keys stay as they were, so existing cache entries still count
        parts.append(truncation)
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def build_evalset(name: str, data_cfg: Mapping, split: str, tokenizer, max_length: int,
                  truncation: str = "independent") -> EvalSet:
    splits = load_splits(data_cfg, tokenizer)
    return evalset_from_split(name, splits.schema, getattr(splits, split), tokenizer, max_length, truncation)


def load_evalset(name: str, data_cfg: Mapping, split: str, tokenizer_dir: str | Path, max_length: int,
                 cache_dir: str | Path | None, truncation: str = "independent") -> EvalSet:
    """The tokenized `split` of `data_cfg`, from memory, the disk cache, or built (and cached)."""
    if split not in ("train", "val", "test"):

        raise ConfigError(f"split='{split}' is not one of train, val, test")
    key = cache_key(tokenizer_dir, data_cfg, split, max_length, truncation)
    if key in _MEMORY:
        return _MEMORY[key]
    path = Path(cache_dir) / "evalsets" / f"{key}.json" if cache_dir else None
    if path is not None and path.exists():
        raw = json.loads(path.read_text())
        labels = None if raw["labels"] is None else np.asarray(raw["labels"], dtype=np.int64)
        sizes = None if raw.get("sizes") is None else np.asarray(raw["sizes"], dtype=np.int64)
        es = EvalSet(name, raw["schema"], raw["ids"], labels, raw["truncated"], sizes, raw.get("subsets"),
                     raw.get("joint", 0), raw.get("fallback", 0))
    else:
        from transformers import AutoTokenizer

        es = build_evalset(name, data_cfg, split, AutoTokenizer.from_pretrained(str(tokenizer_dir)), max_length,
                           truncation)
        if path is not None:
            atomic_write_text(path, json.dumps({"schema": es.schema, "ids": es.ids, "truncated": es.truncated,
                                                "joint": es.joint, "fallback": es.fallback,
                                                "labels": None if es.labels is None else es.labels.tolist(),
                                                "sizes": None if es.sizes is None else es.sizes.tolist(),
                                                "subsets": es.subsets}))
    _MEMORY[key] = es
    return es
