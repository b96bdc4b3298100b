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
    if es.schema not in ("pairwise", "binary"):
        raise ConfigError(f"a routed soup routes pairwise and binary sets; {name} is {es.schema}")
    feats = split_features(name, data_cfg, split, tokenizer, prompt_end, prompt_length, embedding)
    if len(feats) != es.n:
        raise ConfigError(f"{name}: {len(feats)} {split} rows but {es.n} tokenized ones (a stale evalset cache?)")
    return RouteSet(name, es.schema, es.ids, es.labels, feats), es


def split_features(name: str, data_cfg: Mapping, split: str, tokenizer, prompt_end: str, prompt_length: int,
                   embedding: torch.Tensor) -> torch.Tensor:
    """(rows, d): the prompt features of every row of a split, and nothing else (the which-set loss reads the
    train split's prompts without tokenizing its texts)."""
    rows = getattr(load_splits(data_cfg, tokenizer), split)
    if not len(rows):
        return torch.zeros(0, embedding.shape[1])
    if "chosen" in rows.column_names:
        prompts = [shared_prompt(list(pair_texts(r)), prompt_end) for r in rows]
    elif "text" in rows.column_names:
        prompts = [shared_prompt([r["text"]], prompt_end) for r in rows]
    else:
        raise ConfigError(f"a routed soup routes pairwise and binary sets; {name} has columns {rows.column_names}")
    return prompt_features(embedding, tokenize(tokenizer, prompts, int(prompt_length)).ids)


def text_gates(router, rs: RouteSet) -> torch.Tensor:
    """(texts, members): each text under its row's gate, in the EvalSet's text order (a pair's two texts share
    their row's gate)."""
    with torch.no_grad():
        gate = router(rs.feats)
    return torch.cat([gate, gate]) if rs.schema == "pairwise" else gate


def gate_shares(router, rs: RouteSet, members: list[str]) -> dict[str, float]:
    """The router's mean weight per member (and for the shared model) over a set's rows."""
    with torch.no_grad():
        g = router(rs.feats).float()
    return {"shared": max(0.0, float(1.0 - g.sum(1).mean())), **{m: float(g[:, k].mean()) for k, m in enumerate(members)}}
