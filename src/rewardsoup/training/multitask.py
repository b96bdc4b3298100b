"""The `multitask` objective's pieces: one loss over a batch that mixes binary and pairwise rows.

A mix (data/mix.py) holds binary rows (one text, label 0/1) and pairwise rows (chosen, rejected, margin).
Every text of a batch goes through the model in one forward pass; binary texts get BCE on their logit, pairs
get Bradley-Terry on their logit gap, and the loss is the mean over ROWS (a pair is one row, as in trl's
RewardTrainer). A batch of only pairs gives trl's loss, a batch of only binary rows the `binary` objective's.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from datasets import Dataset

from rewardsoup.data.schema import pair_texts
from rewardsoup.scoring.rewards import tokenize

TEXT, CHOSEN, REJECTED = 0, 1, 2  # a text's role in the labels tensor: binary text, chosen side, rejected side


def tokenize_mixed(ds: Dataset, tokenizer, max_length: int, objective_cfg: Mapping) -> tuple[Dataset, dict]:
    """Mix rows -> `chosen_ids` (a binary row's text), `rejected_ids` (empty for binary rows), `target`
    (the label, or the pair's margin), `pair`, `length`; left-truncated like every other objective."""
    pair = [bool(p) for p in ds["pair"]]
    firsts = [pair_texts(r)[0] if p else r["chosen"] for r, p in zip(ds, pair)]
    seconds = [pair_texts(r)[1] for r, p in zip(ds, pair) if p]
    first, second = tokenize(tokenizer, firsts, max_length), tokenize(tokenizer, seconds, max_length)
    rest = iter(second.ids)
    rejected = [next(rest) if p else [] for p in pair]
    use_margin = bool(objective_cfg.get("use_margin", True))
    targets = [float(t) if (not p or use_margin) else 0.0 for t, p in zip(ds["target"], pair)]
    out = Dataset.from_dict({"chosen_ids": first.ids, "rejected_ids": rejected, "target": targets,
                             "pair": [int(p) for p in pair],
                             "length": [max(len(a), len(b)) for a, b in zip(first.ids, rejected)]})
    return out, {"texts": len(first) + len(second), "left_truncated": first.truncated + second.truncated,
                 "pairs": sum(pair), "binary_rows": len(pair) - sum(pair)}


class MixedCollator:
    """A batch of mix rows -> every text right-padded in one tensor, and `labels` [texts, 3]:
    (role, target, index of the rejected side for a chosen text, else -1)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: list[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        texts, labels = [], []
        pairs = [f for f in features if f["pair"]]
        first_rejected = len(features)
        k = 0
        for f in features:
            texts.append(list(f["chosen_ids"]))
            if f["pair"]:
                labels.append((CHOSEN, float(f["target"]), first_rejected + k))
                k += 1
            else:
                labels.append((TEXT, float(f["target"]), -1))
        for f in pairs:
            texts.append(list(f["rejected_ids"]))
            labels.append((REJECTED, 0.0, -1))
        width = max(len(t) for t in texts)
        ids = torch.full((len(texts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(texts), width), dtype=torch.long)
        for i, t in enumerate(texts):
            ids[i, : len(t)] = torch.tensor(t, dtype=torch.long)
            mask[i, : len(t)] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor(labels, dtype=torch.float32)}


def multitask_loss(outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """Mean over rows of BCE (binary rows) and -log sigmoid(r_chosen - r_rejected - margin) (pairs)."""
    logits = outputs.logits.reshape(-1).float()
    role, target, partner = labels[:, 0].long(), labels[:, 1].float(), labels[:, 2].long()
    binary, chosen = role == TEXT, role == CHOSEN
    total = logits.new_zeros(())
    if binary.any():
        total = total + F.binary_cross_entropy_with_logits(logits[binary], target[binary], reduction="sum")
    if chosen.any():
        total = total - F.logsigmoid(logits[chosen] - logits[partner[chosen]] - target[chosen]).sum()
    return total / (binary.sum() + chosen.sum()).clamp(min=1)
