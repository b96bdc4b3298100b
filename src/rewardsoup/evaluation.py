"""Held-out metrics of a reward model on canonical splits, through `rewardsoup.scoring`.

Pairwise: accuracy = P(chosen > rejected) with ties counted wrong (the tie rate is reported).
Binary: accuracy of (logit > 0) against the label.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from datasets import Dataset

from rewardsoup.data.schema import pair_texts
from rewardsoup.scoring import binary_accuracy, pairwise_accuracy, score_pairs, score_texts


def evaluate_split(model, tokenizer, schema: str, ds: Dataset, max_length: int,
                   batch_size: int = 32) -> dict[str, Any]:
    """Accuracy (and tie rate for pairs) of `model` on one split; `n` is the number of rows scored."""
    if schema == "pairwise":
        texts = [pair_texts(row) for row in ds]
        chosen, rejected = score_pairs(model, tokenizer, [c for c, _ in texts], [r for _, r in texts],
                                       max_length, batch_size)
        return {"accuracy": pairwise_accuracy(chosen, rejected), "tie_rate": float(np.mean(chosen == rejected)),
                "margin": float(np.mean(chosen - rejected)), "n": len(ds)}
    logits = score_texts(model, tokenizer, ds["text"], max_length, batch_size)
    labels = np.asarray(ds["label"])
    return {"accuracy": binary_accuracy(logits, labels), "positive_rate": float(np.mean(logits > 0)),
            "n": len(ds)}
