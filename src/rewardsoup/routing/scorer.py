"""Texts -> rewards through a routed soup: the scoring path's tokenization, one gate per prompt, one forward.

Each text is tokenized as `scoring.rewards.tokenize` does it (left truncation at `max_length`); its prompt
(`routing.prompts`: up to the last speaker marker; for a group of texts that share a prompt, their common one)
is tokenized on its own, left-truncated to `prompt_length`, and pooled into the router's features. So a
reply's tokens never reach the gate, and a pair's or best-of-N's texts share one gate by construction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from rewardsoup.routing.folder import SHARED, load_routed
from rewardsoup.routing.prompts import PROMPT_END, shared_prompt
from rewardsoup.routing.router import prompt_features
from rewardsoup.scoring.prefix import score_groups
from rewardsoup.scoring.rewards import PerText, score_ids, tokenize


class RoutedScorer:
    """(routed model, router, tokenizer) -> `gates(texts)` and `score_texts(texts)`."""

    def __init__(self, routed, router, tokenizer, pattern: str = PROMPT_END, prompt_length: int = 256):
        self.routed, self.router, self.tokenizer = routed, router, tokenizer
        self.pattern, self.prompt_length = pattern, int(prompt_length)

    @classmethod
    def from_folder(cls, folder: str | Path) -> "RoutedScorer":
        """A saved routed soup (`routing.folder`), with the prompt rule and length it was fitted with."""
        from transformers import AutoTokenizer

        routed, router, manifest = load_routed(folder)
        return cls(routed, router, AutoTokenizer.from_pretrained(str(Path(folder) / SHARED)),
                   str(manifest["prompt_end"]), int(manifest["prompt_length"]))

    def to(self, device) -> "RoutedScorer":
        self.routed.to(device)
        return self

    def prompts(self, texts: Sequence[str], groups: Sequence[Sequence[int]] = ()) -> list[str]:
        """Each text's prompt; the texts of a group (indices) get their group's common prompt."""
        out = [shared_prompt([t], self.pattern) for t in texts]
        for group in groups:
            common = shared_prompt([texts[i] for i in group], self.pattern)
            for i in group:
                out[i] = common
        return out

    def gates(self, texts: Sequence[str], groups: Sequence[Sequence[int]] = ()) -> torch.Tensor:
        """(len(texts), members): the router's weights, from the prompts alone."""
        prompts = self.prompts(texts, groups)
        ids = tokenize(self.tokenizer, prompts, self.prompt_length).ids
        emb = self.routed.model.get_input_embeddings().weight.detach()
        with torch.no_grad():
            return self.router(prompt_features(emb, ids))

    def score_texts(self, texts: Sequence[str], max_length: int, batch_size: int = 32,
                    groups: Sequence[Sequence[int]] = (), truncation: str = "independent",
                    share_prefix: bool = True) -> np.ndarray:
        """One fp32 logit per text (sorted by length into batches, as the scoring path batches); texts cut as
        `scoring.rewards.tokenize` cuts them (`truncation` joint: a group by one common cut); a group's common
        prefix run once unless `share_prefix` is False (conf/scoring `share_prefix`)."""
        if not len(texts):
            return np.empty(0)
        ids = tokenize(self.tokenizer, texts, max_length, groups, truncation).ids
        gate = self.gates(texts, groups).to(next(self.routed.parameters()).device)
        return score_routed_ids(self.routed, ids, gate, self.tokenizer.pad_token_id, batch_size,
                                groups if share_prefix else ())


def scalar_score(folder: str | Path, texts: Sequence[str] | str, max_length: int = 1024,
                 batch_size: int = 32) -> list[float]:
    """`scoring.scalar_score` for a routed soup folder: P(liked) = sigmoid(reward), each text under its own
    prompt's weights."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    logits = RoutedScorer.from_folder(folder).score_texts(texts, max_length, batch_size)
    return (1.0 / (1.0 + np.exp(-logits))).tolist()


def score_routed_ids(routed, ids: Sequence[Sequence[int]], gate: torch.Tensor, pad_id: int,
                     batch_size: int = 32, groups: Sequence[Sequence[int]] = ()) -> np.ndarray:
    """One fp32 logit per token sequence under its own gate row (`gate`: (len(ids), members)), through the
    scoring path's batching (sorted by length; a sequence repeated under the same gate, e.g. a text shared by
    two sets, run once). `groups` (indices of texts that share a prompt, hence a gate): their common prefix
    runs once (`scoring.prefix`), as the static rows share it; the same rewards."""
    rows = gate.detach().float().cpu().numpy()
    per_text = PerText([r.tobytes() for r in rows], lambda idx: routed.gate(gate[idx]))
    if groups:
        return score_groups(routed.model, ids, groups, pad_id, batch_size, per_text=per_text)[0]
    return score_ids(routed.model, ids, pad_id, batch_size, per_text=per_text)
