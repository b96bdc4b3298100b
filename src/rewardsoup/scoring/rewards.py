"""The one path from text to reward: tokenize (left-truncated) -> forward -> one logit.

Training's validation, evaluate.py, sweeps, best-of-N and `scalar_score` all call these functions, so a
reward means the same thing everywhere. Texts are already rendered (`rewardsoup.data.render`).

Left truncation: when a text is longer than `max_length` tokens its BEGINNING is cut, because the final
reply is what is judged. Nothing is ever dropped; `Tokenized.truncated` counts what was cut. Each text is cut
on its own (`independent`, the default) or, for texts that share a prompt, by one common cut (`joint`,
conf/scoring `truncation`; see `rewardsoup.scoring.truncation`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Sequence

import numpy as np
import torch

from rewardsoup.core.config import ROUTED_MANIFEST
from rewardsoup.core.registry import lookup
from rewardsoup.models.loading import load_scorer
from rewardsoup.scoring.truncation import Tokenized, truncate

ROUTED_SCALAR_SCORE = "rewardsoup.routing.scorer:scalar_score"  # scalar_score of a routed soup folder


def tokenize(tokenizer, texts: Sequence[str], max_length: int, groups: Sequence[Sequence[int]] = (),
             truncation: str = "independent") -> Tokenized:
    """Token ids per text (no special tokens added), left-truncated to `max_length`: each text keeping its
    LAST `max_length` tokens, or under `truncation="joint"` each group of indices into `texts` (texts that
    share a prompt) cut by one common amount (`scoring.truncation.truncate`)."""
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    if not len(texts):  # an empty split (e.g. val of an evaluation-only set): fast tokenizers fail on []
        return truncate([], max_length, (), truncation)
    full = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return truncate(full, max_length, groups, truncation)


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest sequence; the classifier reads the last non-pad token."""
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        input_ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        attention[i, : len(s)] = 1
    return {"input_ids": input_ids, "attention_mask": attention}


def _device(model) -> torch.device:
    return next(model.parameters()).device


@dataclass(frozen=True)
class PerText:
    """What a forward depends on besides a text's tokens (a routed soup's gate row, `routing.scorer`): `keys[i]`
    tells equal token sequences apart that need forwards of their own, and a forward over texts `idx` (indices
    into the call's `ids`, the batch's rows in order) runs inside `enter(idx)`."""

    keys: Sequence[bytes]
    enter: Callable[[list[int]], ContextManager]

    def remap(self, origin: Sequence[int]) -> "PerText":
        """The same for a list whose item j is item `origin[j]` of this one's."""
        return PerText([self.keys[i] for i in origin], lambda idx: self.enter([origin[j] for j in idx]))


def distinct(ids: Sequence[Sequence[int]], per_text: PerText | None = None) -> tuple[np.ndarray, list[tuple], list[int]]:
    """(where, unique, origin): `ids[i]` is `unique[where[i]]`, first seen at `ids[origin[u]]`; with `per_text`,
    equal sequences under different keys stay apart."""
    first: dict[tuple, int] = {}
    where = np.array([first.setdefault((tuple(s), per_text.keys[i]) if per_text else tuple(s), len(first))
                      for i, s in enumerate(ids)], dtype=np.int64)
    origin = np.unique(where, return_index=True)[1]  # keys are numbered in order of first sight
    return where, [tuple(ids[i]) for i in origin], [int(i) for i in origin]


def score_ids(model, ids: Sequence[Sequence[int]], pad_id: int, batch_size: int = 32,
              per_text: PerText | None = None) -> np.ndarray:
    """One fp32 logit per sequence, under inference_mode: each distinct sequence is run once (pairs built
    from a binary set repeat its texts), sorted by length so batches pad little; `per_text`: each batch runs
    in its rows' context (a routed soup's gates)."""
    where, unique, origin = distinct(ids, per_text)
    local = per_text.remap(origin) if per_text else None
    order = sorted(range(len(unique)), key=lambda i: len(unique[i]))
    out = np.empty(len(unique), dtype=np.float64)
    was_training = model.training
    model.eval()
    device = _device(model)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = {k: v.to(device) for k, v in pad_batch([unique[i] for i in idx], pad_id).items()}
            with local.enter(idx) if local else contextlib.nullcontext():
                logits = model(**batch).logits.float().reshape(len(idx), -1)[:, 0]
            out[idx] = logits.cpu().numpy()
    model.train(was_training)
    return out[where]


def score_texts(model, tokenizer, texts: Sequence[str], max_length: int, batch_size: int = 32) -> np.ndarray:
    """Rewards (raw logits) for rendered texts."""
    if not len(texts):
        return np.empty(0)
    tok = tokenize(tokenizer, texts, max_length)
    return score_ids(model, tok.ids, tokenizer.pad_token_id, batch_size)


def score_pairs(model, tokenizer, chosen: Sequence[str], rejected: Sequence[str], max_length: int,
                batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Rewards of chosen and rejected texts, scored together so both sides share batches."""
    scores = score_texts(model, tokenizer, list(chosen) + list(rejected), max_length, batch_size)
    return scores[: len(chosen)], scores[len(chosen):]


def scalar_score(model_path, texts: Sequence[str] | str, max_length: int = 1024, batch_size: int = 32) -> list[float]:
    """P(liked) = sigmoid(reward) for each rendered text, from a saved member or soup.

    Equal to `transformers.pipeline("text-classification", model=model_path)` scores for texts within
    `max_length` tokens (the pipeline applies the same sigmoid to a one-logit head). A routed soup folder
    (`routed_soup.json`) is scored by `routing.scorer.scalar_score`, named by import path because routing/ is
    built on this package.
    """
    if (Path(str(model_path)) / ROUTED_MANIFEST).is_file():  # a routed soup: its own path, each prompt its weights
        return lookup({}, ROUTED_SCALAR_SCORE, "scalar_score")(model_path, texts, max_length, batch_size)
    texts = [texts] if isinstance(texts, str) else list(texts)
    model, tokenizer = load_scorer(model_path)
    logits = score_texts(model, tokenizer, texts, max_length, batch_size)
    return (1.0 / (1.0 + np.exp(-logits))).tolist()
