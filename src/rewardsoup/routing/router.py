"""The router: the prompt alone -> one weight per member's difference (issue #30).

Features: the shared model's input embeddings of the prompt's tokens (the rendered text before the reply
being judged, tokenized on its own and left-truncated), mean-pooled: no reply token can reach them, and a
pair's two texts, or best-of-N's candidates, share them by construction. An empty prompt (a binary row that
is a reply alone) pools to zeros: one weight for every such row. The network: the features standardised with
the fitting rows' mean and spread, then a linear map (or one hidden layer) to K + 1 logits, softmax; weight 0
is "stay at the shared model", weights 1..K scale the members' differences (`routing.model`). `init=shared`
starts near the shared model (the sweep's pick), `uniform` at equal weights.
"""

from __future__ import annotations

from typing import Sequence

import torch

INITS = ("shared", "uniform")  # router.init
SHARED_LOGIT = 3.0  # init=shared: the stay-at-shared logit (others 0): ~0.87 of the weight with 2 members


def prompt_features(embedding: torch.Tensor, prompts: Sequence[Sequence[int]]) -> torch.Tensor:
    """(n, d): each prompt's token embeddings averaged (zeros for an empty prompt)."""
    out = torch.zeros(len(prompts), embedding.shape[1], dtype=torch.float32)
    for i, ids in enumerate(prompts):
        if len(ids):
            out[i] = embedding[torch.as_tensor(list(ids), dtype=torch.long)].float().mean(0)
    return out


class PromptRouter(torch.nn.Module):
    """features (n, d) -> gate (n, K): softmax over [shared, member_1..K], the shared column dropped."""

    def __init__(self, dim: int, members: int, hidden: int = 0, init: str = "shared"):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"router init {init!r}: expected one of {INITS}")
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        layers: list[torch.nn.Module] = [torch.nn.Linear(dim, hidden), torch.nn.Tanh()] if hidden else []
        last = torch.nn.Linear(hidden or dim, members + 1)
        torch.nn.init.zeros_(last.weight)  # every prompt starts at the same gate: the init's
        with torch.no_grad():
            last.bias.zero_()
            if init == "shared":
                last.bias[0] = SHARED_LOGIT
        self.net = torch.nn.Sequential(*layers, last)

    def standardise_on(self, feats: torch.Tensor) -> None:
        """The fitting rows' mean and spread (a feature that never varies keeps scale 1)."""
        self.mean.copy_(feats.mean(0))
        spread = feats.std(0) if len(feats) > 1 else torch.ones_like(self.scale)
        self.scale.copy_(torch.where(spread > 1e-8, spread, torch.ones_like(spread)))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        logits = self.net((feats - self.mean) / self.scale)
        return torch.softmax(logits, dim=-1)[:, 1:]
