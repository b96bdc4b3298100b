"""A dataset split as a routed soup reads it: the texts as the scoring path tokenizes them, and each row's
prompt features (the router's input). Used by the fit (val) and by evaluate.py and the pick (any split).

A pair's prompt is the common prompt of its two texts, a binary row's the text before its last speaker marker
(`routing.prompts`); prompts are tokenized on their own, left-truncated to `prompt_length`, and pooled
(`routing.router.prompt_features`). Best-of-N (`multi`) sets are not routed yet: a ConfigError names the set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from rewardsoup.core.errors import ConfigError
from rewardsoup.data import load_splits
from rewardsoup.data.schema import pair_texts
from rewardsoup.routing.fit import RouteSet
from rewardsoup.routing.prompts import shared_prompt
from rewardsoup.routing.router import prompt_features
from rewardsoup.scoring.evalsets import load_evalset
from rewardsoup.scoring.metrics import EvalSet
from rewardsoup.scoring.rewards import tokenize


def route_set(name: str, data_cfg: Mapping, split: str, tokenizer, tokenizer_dir: str | Path, max_length: int,
              cache: str | Path, truncation: str, prompt_end: str, prompt_length: int,
              embedding: torch.Tensor) -> tuple[RouteSet, EvalSet]:
    """(the split as the router sees it, the same split as the scoring path's EvalSet: one text order)."""
    es = load_evalset(name, data_cfg, split, tokenizer_dir, max_length, cache, truncation)
    rows = getattr(load_splits(data_cfg, tokenizer), split)
    if es.schema == "pairwise":
        prompts = [shared_prompt(list(pair_texts(r)), prompt_end) for r in rows]
    elif es.schema == "binary":
        prompts = [shared_prompt([r["text"]], prompt_end) for r in rows]
    else:
        raise ConfigError(f"a routed soup routes pairwise and binary sets; {name} is {es.schema}")
    if len(prompts) != es.n:
        raise ConfigError(f"{name}: {len(prompts)} {split} rows but {es.n} tokenized ones (a stale evalset cache?)")
    ids = tokenize(tokenizer, prompts, int(prompt_length)).ids
    return RouteSet(name, es.schema, es.ids, es.labels, prompt_features(embedding, ids)), es


def text_gates(router, rs: RouteSet) -> torch.Tensor:
    """(texts, members): each text under its row's gate, in the EvalSet's text order (a pair's two texts share
    their row's gate)."""
    with torch.no_grad():
        gate = router(rs.feats)
    return torch.cat([gate, gate]) if rs.schema == "pairwise" else gate
