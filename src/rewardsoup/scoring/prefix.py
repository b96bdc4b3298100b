"""Shared-prefix scoring: the common start of texts that share a prompt is run through the decoder once.

A pair's chosen and rejected transcripts are the same conversation up to the final reply, and best-of-N
candidates share their prompt. For a group of token-id sequences (tokenized exactly as the full-text path
does, `rewards.tokenize`), the longest common token prefix is run once with `use_cache=True`; its keys and
values are copied to each member, and each continuation runs from them with an attention mask over
prefix + continuation and position ids continuing from the prefix length. The reward is the score head on
the hidden state at the token the classifier reads (its last token that is not the pad id), so every
score equals the full-text one (float32: within float rounding).

Batching pads little: groups are taken in windows by prefix length; prefixes run in batches of similar
length, then the window's continuations in batches of similar length, each from its own prefix's keys and
values, right-padded to the batch's longest prefix (pad slots are masked out of the attention; where a
cached slot sits does not matter, only its position id and the mask). Continuations are right-padded.
Groups whose common prefix is shorter than `min_prefix` tokens (no prompt, or independent left truncation
cut the texts differently; joint truncation, conf/scoring `truncation`, keeps a long group's common prefix
unless a reply alone fills `max_length`) are scored by the full-text path (`rewards.score_ids`) and counted in `fallback`.
Only decoder-only classifiers whose backbone takes a cache (`SUPPORTED`) share; for any other model the
whole call is the full-text path and `PrefixStats.note` says why.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, ContextManager, Sequence

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from rewardsoup.scoring.rewards import PerText, distinct, pad_batch, score_ids, tokenize
from rewardsoup.scoring.truncation import common_prefix

SUPPORTED = ("LlamaForSequenceClassification", "GPT2ForSequenceClassification")
MIN_PREFIX = 16  # tokens: below this, one shared pass saves less than the extra cache copies cost
WINDOW_BATCHES = 32  # batches of texts whose prefix caches are held at once: more sorts better, bounds memory
_NOTED: set[str] = set()  # architectures already told that sharing does not apply (said once a process)


@dataclass
class PrefixStats:
    """What one shared-prefix call did, counted over distinct texts."""

    shared: int = 0  # texts scored from a shared prefix's cache
    fallback: int = 0  # texts of a group of >= 2 distinct texts scored by the full-text path (short prefix)
    ungrouped: int = 0  # texts with no other distinct text to share with (binary sets, equal pairs): full path
    tokens: int = 0  # tokens forwarded (real tokens, padding not counted)
    tokens_full: int = 0  # tokens the full-text path forwards for the same texts
    note: str = ""  # set when sharing does not apply to the model

    @property
    def token_ratio(self) -> float:
        return self.tokens / self.tokens_full if self.tokens_full else 1.0


def not_applicable(model) -> str | None:
    """Why prefix sharing does not apply to `model` (None when it does)."""
    name = type(model).__name__
    if name not in SUPPORTED:
        return f"prefix sharing does not apply to {name} (supported: {', '.join(SUPPORTED)}); full-text path"
    return None


def read_index(seq: Sequence[int], pad_id: int | None) -> int:
    """The position the sequence classifier reads: its last token that is not `pad_id` (0 if none)."""
    if pad_id is None:
        return len(seq) - 1
    for i in range(len(seq) - 1, -1, -1):
        if seq[i] != pad_id:
            return i
    return 0


def plan_groups(unique: Sequence[tuple], groups: Sequence[Sequence[int]], pad_id: int | None,
                min_prefix: int) -> tuple[list[tuple[list[int], int]], list[int], int]:
    """(shared groups as (members, prefix length), texts for the full-text path, fallback count).

    `groups` index `unique`; a text already placed by an earlier group is not placed again. The prefix
    stops before every member's read position, so each member's continuation holds the token it is read at.
    """
    placed, shared, full, fallback = set(), [], [], 0
    for group in groups:
        members = [i for i in dict.fromkeys(group) if i not in placed]
        placed.update(members)
        if len(members) >= 2:
            seqs = [unique[i] for i in members]
            p = min([common_prefix(seqs)] + [read_index(s, pad_id) for s in seqs])
            if p >= max(1, min_prefix):
                shared.append((members, p))
                continue
            fallback += len(members)
        full.extend(members)
    full.extend(i for i in range(len(unique)) if i not in placed)
    return shared, full, fallback


Enter = Callable[[list[int]], ContextManager]  # texts (indices into `unique`) -> the context their forward runs in


def _plain(idx: list[int]) -> ContextManager:
    return contextlib.nullcontext()


def _prefix_pass(backbone, groups: list[tuple[list[int], int]], unique: Sequence[tuple], pad_id: int,
                 device, enter: Enter = _plain) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """Per group, per layer: the (keys, values) of its prefix, [heads, prefix length, head_dim]."""
    pre = {k: v.to(device) for k, v in pad_batch([unique[m[0]][:p] for m, p in groups], pad_id).items()}
    positions = torch.arange(pre["input_ids"].shape[1], device=device).expand(len(groups), -1)
    with enter([m[0] for m, _ in groups]):  # a group's texts share their context (plan_groups keeps them so)
        cache = backbone(**pre, position_ids=positions, use_cache=True).cache
    return [[(layer.keys[g, :, :p], layer.values[g, :, :p]) for layer in cache.layers]
            for g, (_, p) in enumerate(groups)]


def _stack_prefixes(kvs: list[list[tuple[torch.Tensor, torch.Tensor]]]):
    """One cache for a batch: each row's prefix keys/values right-padded to the longest prefix."""
    from transformers import DynamicCache

    def stacked(layer: int, which: int) -> torch.Tensor:  # [batch, heads, width, head_dim]
        return pad_sequence([kv[layer][which].transpose(0, 1) for kv in kvs], batch_first=True).transpose(1, 2)

    return DynamicCache(ddp_cache_data=[(stacked(i, 0), stacked(i, 1)) for i in range(len(kvs[0]))])


def _continuation_pass(model, items: list[tuple[int, int]], kvs: list, unique: Sequence[tuple], pad_id: int,
                       device, enter: Enter = _plain) -> np.ndarray:
    """Scores of `items` (text, prefix length) run from their prefixes' keys/values (`kvs`, one per item)."""
    backbone = getattr(model, model.base_model_prefix)
    cont = {k: v.to(device) for k, v in pad_batch([unique[i][p:] for i, p in items], pad_id).items()}
    starts = torch.tensor([p for _, p in items], device=device)
    width = int(starts.max())
    prefix_mask = (torch.arange(width, device=device)[None, :] < starts[:, None]).to(cont["attention_mask"].dtype)
    positions = starts[:, None] + torch.arange(cont["input_ids"].shape[1], device=device)[None, :]
    read = torch.tensor([read_index(unique[i], pad_id) - p for i, p in items], device=device)
    with enter([i for i, _ in items]):
        hidden = backbone(input_ids=cont["input_ids"], attention_mask=torch.cat([prefix_mask, cont["attention_mask"]], 1),
                          position_ids=positions, cache=_stack_prefixes(kvs), use_cache=True).last_hidden_state
        return model.score(hidden[torch.arange(len(items), device=device), read]).float()[:, 0].cpu().numpy()


def _windows(shared: list[tuple[list[int], int]], texts: int):
    """Groups by prefix length, in windows of about `texts` texts (their prefix caches are held at once)."""
    window, count = [], 0
    for group in sorted(shared, key=lambda g: g[1]):
        if window and count + len(group[0]) > texts:
            yield window
            window, count = [], 0
        window.append(group)
        count += len(group[0])
    if window:
        yield window


def _score_window(model, window: list[tuple[list[int], int]], unique: Sequence[tuple], pad_id: int,
                  batch_size: int, out: np.ndarray, enter: Enter = _plain) -> None:
    """Prefix passes in batches of similar prefix length, then continuation passes in batches of similar
    continuation length (each pass pads only to its own longest row)."""
    device = next(model.parameters()).device
    backbone = getattr(model, model.base_model_prefix)
    kvs = []
    for start in range(0, len(window), batch_size):
        kvs.extend(_prefix_pass(backbone, window[start:start + batch_size], unique, pad_id, device, enter))
    items = sorted(((i, p, g) for g, (members, p) in enumerate(window) for i in members),
                   key=lambda t: len(unique[t[0]]) - t[1])
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        out[[i for i, _, _ in batch]] = _continuation_pass(model, [(i, p) for i, p, _ in batch],
                                                           [kvs[g] for _, _, g in batch], unique, pad_id, device,
                                                           enter)


def score_groups(model, ids: Sequence[Sequence[int]], groups: Sequence[Sequence[int]], pad_id: int,
                 batch_size: int = 32, min_prefix: int = MIN_PREFIX,
                 per_text: PerText | None = None) -> tuple[np.ndarray, PrefixStats]:
    """One fp32 logit per sequence of `ids` (equal to `rewards.score_ids`), each group of indices into `ids`
    sharing its common prefix's forward pass; texts in no group, or in a group without a common prefix of
    `min_prefix` tokens, go through the full-text path. `per_text` (a routed soup's gates): every pass runs
    in its rows' context, and only texts of one key share a prefix. Returns the scores and what was shared."""
    where, unique, origin = distinct(ids, per_text)
    local = per_text.remap(origin) if per_text else None
    mapped = [[int(where[i]) for i in g] for g in groups]
    if local:  # a prefix computed under one context serves only texts of that context
        mapped = [[u for u in g if local.keys[u] == key] for g in mapped for key in dict.fromkeys(local.keys[u] for u in g)]
    stats = PrefixStats(tokens_full=sum(len(s) for s in unique), note=not_applicable(model) or "")
    if stats.note:
        mapped = []
        if type(model).__name__ not in _NOTED:
            _NOTED.add(type(model).__name__)
            print(f"[rewardsoup] {stats.note}", flush=True)
    shared, full, stats.fallback = plan_groups(unique, mapped, pad_id, min_prefix)
    stats.ungrouped = len(unique) - sum(len(m) for m, _ in shared) - stats.fallback
    stats.shared = len(unique) - len(full)
    stats.tokens = sum(len(unique[i]) for i in full) + sum(p + sum(len(unique[i]) - p for i in m) for m, p in shared)
    out = np.empty(len(unique), dtype=np.float64)
    if full:
        out[full] = score_ids(model, [unique[i] for i in full], pad_id, batch_size,
                              per_text=local.remap(full) if local else None)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for window in _windows(shared, WINDOW_BATCHES * batch_size):
            _score_window(model, window, unique, pad_id, batch_size, out, local.enter if local else _plain)
    model.train(was_training)
    return out[where], stats


def group_sizes(sizes: Sequence[int]) -> list[range]:
    """Index groups for consecutive runs of `sizes` texts (best-of-N candidates of one prompt)."""
    ends = np.cumsum(np.asarray(sizes, dtype=np.int64))
    return [range(int(end) - int(k), int(end)) for k, end in zip(sizes, ends)]


def score_text_groups(model, tokenizer, texts: Sequence[str], groups: Sequence[Sequence[int]], max_length: int,
                      batch_size: int = 32, share_prefix: bool = True, truncation: str = "independent") -> np.ndarray:
    """Rewards for rendered texts (`rewards.score_texts`), left-truncated to `max_length` (`truncation`:
    each text on its own, or each group by one common cut), texts of one group sharing their common prefix's
    pass when `share_prefix`."""
    if not len(texts):
        return np.empty(0)
    ids = tokenize(tokenizer, texts, max_length, groups, truncation).ids
    if not share_prefix:
        return score_ids(model, ids, tokenizer.pad_token_id, batch_size)
    return score_groups(model, ids, groups, tokenizer.pad_token_id, batch_size)[0]
