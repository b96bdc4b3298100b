"""The tensor math of in-memory merges, one tensor at a time, as mergekit 0.1.5 computes it.

`linear` is mergekit's `linear_merge` kernel; `task_arithmetic` is `GeneralizedTaskArithmeticMerge
.merge_group` for ties / dare_ties / task_arithmetic. `rewardsoup.merging.in_memory.merge_in_memory` drives them
over a state dict; `rewardsoup.sweep.resident.Prepared` over compressed views.
"""

from __future__ import annotations

import torch

from rewardsoup.merging import trim


def linear(tensors: list[torch.Tensor], weights: list[float], normalize: bool) -> torch.Tensor:
    """mergekit's `linear_merge` kernel, for one tensor (a batch of one, as run_merge executes it)."""
    first = tensors[0].unsqueeze(0)
    dtype = torch.float64 if first.dtype == torch.float64 else torch.float32
    w = torch.tensor([weights], dtype=dtype)
    shape = (1,) + (1,) * (first.ndim - 1)
    result = torch.zeros_like(first, dtype=dtype)
    for t, c in zip(tensors, w.unbind(1)):
        result.addcmul_(t.unsqueeze(0), c.reshape(shape))
    if normalize:
        result.div_(w.sum(dim=1).reshape(shape))
    return result.to(first.dtype)[0]


def task_arithmetic(method: str, base: torch.Tensor, tensors: list[torch.Tensor], names: list[str], r: dict,
                     gen: torch.Generator | None, fast_trim: bool | str,
                     keep: list[torch.Tensor | None] | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """mergekit's GeneralizedTaskArithmeticMerge.merge_group for ties / dare_ties / task_arithmetic.

    `keep`: TIES masks already known per member (flat bool, None = no trim), e.g. from
    `trim.magnitude_rank` computed once per sweep; otherwise each delta is trimmed here. `out`: where to
    write the result when it has the result's dtype and shape (else a new tensor is returned).
    """
    p = r["params"]
    dtype = base.dtype
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    base = base.to(dtype)
    deltas = base.new_empty((len(tensors), *base.shape))  # written in place: same bits, fewer copies
    for i, (n, t) in enumerate(zip(names, tensors)):
        delta = torch.sub(t.to(dtype), base, out=deltas[i])
        if method == "ties":
            if keep is not None:
                if keep[i] is not None:
                    delta.mul_(keep[i].reshape(delta.shape))
                continue
            kept = trim.magnitude(delta, r["density"][n], fast=fast_trim)
            deltas[i] = trim.rescale_l1(delta, kept) if p["rescale"] and r["density"][n] < 1 else kept
        elif method == "dare_ties":
            deltas[i] = trim.bernoulli(delta, r["density"][n], rescale=p["rescale"], generator=gen)
    w = torch.tensor([r["weights"][n] for n in names], dtype=deltas.dtype, device=deltas.device)
    while deltas.dim() > w.dim():
        w.unsqueeze_(-1)
    deltas.mul_(w)
    if method == "task_arithmetic":
        mixed = deltas.sum(dim=0)
        divisor = w.sum(dim=0)
        divisor[divisor.abs() < 1e-8] = 1
    else:  # TIES sign consensus ("sum"); int8_mask only changes the dtype of an intermediate sign tensor
        sign = deltas.sign()
        majority = (deltas.sum(dim=0) >= 0).to(sign.dtype) * 2 - 1
        mask = (sign == majority).to(deltas.dtype)  # converted once; bool * float converts the same way
        mixed = deltas.mul_(mask).sum(dim=0)
        divisor = (w * mask).sum(dim=0)
        divisor[divisor == 0] = 1
    if p["normalize"]:
        mixed /= divisor
    if p["lambda"] != 1:
        mixed *= p["lambda"]
    if out is not None and out.dtype == base.dtype and out.shape == base.shape:
        return torch.add(base, mixed, out=out)  # straight into a resident model's parameter
    return (base + mixed).to(base.dtype)
