"""One forward with per-text merge weights: the shared model plus `sum_k g_k * delta_k`, applied module by module.

`RoutedModel` wraps the shared (merged) sequence classifier; forward hooks add each member's difference
(`routing.deltas`), scaled per text by the gate `g` (batch x members), to the module's output:
- Linear: `x @ W.T` gains `sum_k g_k * x @ A_k.T @ B_k.T` (low rank: a LoRA adapter per member) or
  `sum_k g_k * x @ D_k.T` (exact), and `sum_k g_k * db_k` for a bias; GPT-2's Conv1D likewise (`x @ W`);
- Embedding: the looked-up rows gain `sum_k g_k * D_k[ids]` (or `B_k[ids] @ A_k`);
- a module with 1-D parameters only (RMSNorm, LayerNorm): its output with weight 1 and bias 0 (the
  normalised input, the module's own code run once more) times `sum_k g_k * dw_k`, plus `sum_k g_k * db_k`.
Every one of these is linear in the module's parameters, so with exact differences a gate `g` gives exactly
the model with parameters `shared + sum_k g_k * delta_k`: g = 0 is the shared model, a one-hot g a member,
and a constant g = w (summing to 1) the linear soup with weights w. The model's own weights never change.
"""

from __future__ import annotations

import contextlib
from typing import Mapping

import torch

from rewardsoup.core.errors import ModelError
from rewardsoup.routing.deltas import Delta, member_deltas


def _conv1d_type():
    from transformers.pytorch_utils import Conv1D

    return Conv1D


def module_kind(module: torch.nn.Module) -> str | None:
    """linear / conv1d / embedding / norm (1-D parameters only), None without own parameters."""
    own = dict(module.named_parameters(recurse=False))
    if not own:
        return None
    if isinstance(module, torch.nn.Linear):
        return "linear"
    if isinstance(module, _conv1d_type()):
        return "conv1d"
    if isinstance(module, torch.nn.Embedding):
        return "embedding"
    if all(p.dim() == 1 for p in own.values()):
        return "norm"
    raise ModelError(f"a routed soup cannot route module {type(module).__name__} (parameters "
                     f"{ {k: list(p.shape) for k, p in own.items()} }): only Linear, Conv1D, Embedding and "
                     f"norm layers are supported")


def routable_matrices(model: torch.nn.Module) -> set[str]:
    """The 2-D weights a rank applies to: those of Linear, Conv1D and Embedding modules."""
    out = set()
    for name, module in model.named_modules():
        if module_kind(module) in ("linear", "conv1d", "embedding"):
            out.add(f"{name}.weight" if name else "weight")
    return out


def _rows(per_text: torch.Tensor, ndim: int) -> torch.Tensor:
    """(batch, n) -> broadcastable against an activation of `ndim` dims with the batch first and n last."""
    return per_text.reshape(per_text.shape[0], *([1] * (ndim - 2)), per_text.shape[-1])


class _Stack(torch.nn.Module):
    """One parameter's differences for every member, stacked on dim 0 (buffers, so `.to()` moves them)."""

    def __init__(self, deltas: list[Delta]):
        super().__init__()
        self.exact = deltas[0].full is not None
        if self.exact:
            self.register_buffer("d", torch.stack([d.full for d in deltas]))
        else:
            self.register_buffer("a", torch.stack([d.a for d in deltas]))
            self.register_buffer("b", torch.stack([d.b for d in deltas]))

    def stacked(self, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The K low-rank factors side by side, so K adapters are two matmuls:
        linear: (A_cat (K*r, in), B_cat (out, K*r)); conv1d: (B_cat (in, K*r), A_cat (K*r, out))."""
        k, r = self.a.shape[0], self.a.shape[1]
        if kind == "linear":  # a (K, r, in), b (K, out, r)
            return self.a.reshape(k * r, -1), self.b.permute(1, 0, 2).reshape(self.b.shape[1], k * r)
        return self.b.permute(1, 0, 2).reshape(self.b.shape[1], k * r), self.a.reshape(k * r, -1)  # conv1d

    def scaled(self, g: torch.Tensor) -> torch.Tensor:
        """sum_k g_k * delta_k per text: (batch, *shape) -- for 1-D parameters only."""
        return torch.einsum("bk,k...->b...", g, self.d.to(g.dtype))


class RoutedModel(torch.nn.Module):
    """The shared model with member differences added per text; `forward(..., gate=g)` with g (batch, K)."""

    def __init__(self, shared: torch.nn.Module, deltas: Mapping[str, list[Delta]], members: list[str]):
        super().__init__()
        self.model, self.members = shared, list(members)
        self.stacks = torch.nn.ModuleDict()
        self._gate: torch.Tensor | None = None
        self._busy: set[int] = set()
        for name, module in shared.named_modules():
            kind = module_kind(module)
            if kind is None:
                continue
            for pname, _ in module.named_parameters(recurse=False):
                key = f"{name}.{pname}" if name else pname
                self.stacks[key.replace(".", "__")] = _Stack(deltas[key])
            module.register_forward_hook(self._hook(name, kind))
        for p in shared.parameters():
            p.requires_grad_(False)

    @property
    def config(self):
        return self.model.config

    def _stack(self, name: str, pname: str) -> _Stack | None:
        key = (f"{name}.{pname}" if name else pname).replace(".", "__")
        return self.stacks[key] if key in self.stacks else None

    def _hook(self, name: str, kind: str):
        def hook(module, inputs, output):
            if self._gate is None or id(module) in self._busy:
                return None
            g = self._gate.to(device=output.device, dtype=output.dtype)  # the batch's rows, where the activations are
            if kind == "norm":
                return output + self._norm_delta(module, name, inputs, g)
            x = inputs[0]
            add = self._matrix_delta(kind, self._stack(name, "weight"), x, g)
            bias = self._stack(name, "bias")
            if bias is not None:
                add = add + _rows(bias.scaled(g), output.dim())
            return output + add
        return hook

    @staticmethod
    def _matrix_delta(kind: str, s: _Stack, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        if kind == "embedding":
            if s.exact:
                rows = s.d[:, x]  # (K, b', t, d)
                return torch.einsum("bk,kbtd->btd", g, rows.to(g.dtype).expand(-1, g.shape[0], -1, -1))
            # low rank: each member's looked-up rows of B_k (r wide) scaled by its gate, then one matmul with
            # [A_1..A_K]: no (K, batch, tokens, d) intermediate
            h = s.b[:, x].to(g.dtype).expand(-1, g.shape[0], -1, -1)  # (K, b, t, r)
            h = torch.einsum("kbtr,bk->btkr", h, g).flatten(2)  # (b, t, K*r)
            return h @ s.a.flatten(0, 1).to(g.dtype)  # A_cat (K*r, d)
        x = x.to(g.dtype)  # (batch, tokens, in), or (batch, in) where the score head reads one token per text
        if s.exact:  # linear: x @ D_k.T; conv1d: x @ D_k
            eq = "b...i,koi->b...ko" if kind == "linear" else "b...i,kio->b...ko"
            return torch.einsum("b...ko,bk->b...o", torch.einsum(eq, x, s.d.to(g.dtype)), g)
        # low rank, every member at once (LoRA's two matmuls): h = x @ [A_1..A_K].T, each member's r columns
        # scaled by its gate, then h @ [B_1..B_K].T; conv1d keeps D_k as (in, out): x @ [B..] then @ [A..]
        first, second = s.stacked(kind)
        h = x @ (first.T if kind == "linear" else first).to(g.dtype)
        h = h * _rows(g.repeat_interleave(s.a.shape[1], dim=1), h.dim())
        return h @ (second.T if kind == "linear" else second).to(g.dtype)

    def _norm_delta(self, module, name: str, inputs, g: torch.Tensor) -> torch.Tensor:
        """The module run once more with weight 1 and bias 0 gives the normalised input it scales."""
        own = dict(module.named_parameters(recurse=False))
        neutral = {k: (torch.ones_like(p) if k == "weight" else torch.zeros_like(p)) for k, p in own.items()}
        self._busy.add(id(module))
        try:
            normed = torch.func.functional_call(module, neutral, inputs)
        finally:
            self._busy.discard(id(module))
        add = 0
        for pname in own:
            scaled = _rows(self._stack(name, pname).scaled(g), normed.dim())
            add = add + (scaled * normed if pname == "weight" else scaled)
        return add

    @contextlib.contextmanager
    def gate(self, g: torch.Tensor):
        """Inside: every forward adds the differences scaled by g (batch, K)."""
        if g.dim() != 2 or g.shape[1] != len(self.members):
            raise ValueError(f"gate of shape {list(g.shape)}: expected (batch, {len(self.members)})")
        self._gate = g
        try:
            yield self
        finally:
            self._gate = None

    def forward(self, input_ids, attention_mask=None, gate: torch.Tensor | None = None, **kwargs):
        if gate is None:
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        with self.gate(gate):
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)


def build_routed(shared: torch.nn.Module, member_sds: Mapping[str, Mapping[str, torch.Tensor]],
                 rank="full") -> RoutedModel:
    """A RoutedModel of `shared` (a loaded sequence classifier) and the members' state dicts."""
    shared_sd = {k: v.detach() for k, v in shared.state_dict().items()}
    params = {k for k, _ in shared.named_parameters()}
    shared_sd = {k: v for k, v in shared_sd.items() if k in params}
    members = {n: {k: v for k, v in sd.items() if k in params} for n, sd in member_sds.items()}
    deltas = member_deltas(shared_sd, members, rank, routable_matrices(shared))
    return RoutedModel(shared, deltas, list(member_sds))
