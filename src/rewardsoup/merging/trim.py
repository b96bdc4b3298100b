"""Exact, faster TIES magnitude trimming and DARE drops, bit-compatible with mergekit 0.1.5.

mergekit's `sparsify.magnitude` keeps `k = max(1, int(density * numel))` entries: the first k of
`torch.argsort(|t|.float(), descending=True)` (NaN counts as the largest). That argsort is NOT stable: on
CPU, torch 2.13 uses x86-simd-sort (AVX2/AVX512) or std::sort, so among entries of EQUAL magnitude the
ones kept depend on the sort's internals (and on the CPU's instruction set), not on their index.

`magnitude_mask` finds the k-th largest magnitude with a 3-pass radix select on the float's bit pattern
(|x| viewed as int32 orders like the float), keeps everything above it, and resolves the threshold:
- all entries equal to the threshold fit (the usual case): the kept set is unique -> no sort needed;
- the threshold is 0: which zeros are "kept" does not change `tensor * mask` -> no sort needed;
- otherwise (a non-zero magnitude tied across the cut, common with bf16 deltas): mergekit's choice
  is whatever its argsort does, so we run that same argsort -> exact, at mergekit's cost.
`STATS` counts how often each path ran.

Sweeps trim the same member deltas again and again at different densities. `magnitude_rank` runs
mergekit's own argsort once per member and tensor and keeps each entry's rank; every later trim at any
density is the mask `rank < k`, one pass and bit-equal to mergekit's (same sort of the same values).
"""

from __future__ import annotations

import torch

STATS = {"select": 0, "argsort": 0}
_PASSES = ((20, 11), (9, 11), (0, 9))  # (shift, bits) for a 31-bit non-negative key (sign bit is 0)


def _kth_largest_key(keys: torch.Tensor, k: int) -> tuple[int, int, int, bool]:
    """Radix-select the k-th largest (1-based) of a flat non-negative int32 tensor in 3 passes.

    Returns (threshold, need, n_eq, maybe_nan): `need` of the `n_eq` keys equal to the threshold are
    inside the top k (all keys above it are); maybe_nan: some key is inf or NaN (top digit >= 0x7f8).
    """
    prefix, remaining, cand, maybe_nan = 0, k, keys, False
    for shift, bits in _PASSES:
        digits = cand >> shift if shift == 20 else (cand >> shift) & ((1 << bits) - 1)
        hist = torch.bincount(digits, minlength=1 << bits)
        if shift == 20:
            maybe_nan = bool(hist[0x7F8:].any())
        counts = hist.flip(0).cumsum(0)  # counts[j] = how many candidates have digit >= top - j
        j = int(torch.searchsorted(counts, torch.tensor([remaining], dtype=counts.dtype)).item())
        digit = (1 << bits) - 1 - j
        remaining -= int(counts[j - 1]) if j > 0 else 0
        prefix |= digit << shift
        if shift:
            cand = cand[digits == digit]
        else:
            n_eq = int(hist[digit])
    return prefix, remaining, n_eq, maybe_nan


def magnitude_mask(tensor: torch.Tensor, density: float, ties: str = "exact") -> torch.Tensor:
    """Flat bool mask such that `tensor * mask` equals mergekit's magnitude trim bit for bit.

    ties="index" never sorts: an ambiguous tie at the cut keeps the lowest flat indices (deterministic
    on every machine; differs from mergekit only in WHICH equal-magnitude entries are kept).
    """
    n = tensor.numel()
    k = max(1, int(density * n))
    w = tensor.detach().abs().reshape(-1)
    if w.device.type == "cpu":
        w = w.float()
    if w.dtype == torch.float32 and w.device.type == "cpu":
        keys = w.view(torch.int32)  # sign bit is 0, so int order == float order (inf included)
        thr, need, n_eq, maybe_nan = _kth_largest_key(keys, k)
        if not (maybe_nan and bool(torch.isnan(w).any())):
            if need == n_eq:  # the whole tie fits: the kept set is unique
                STATS["select"] += 1
                return keys >= thr
            if thr == 0 or ties == "index":  # zeros: any choice gives the same tensor * mask
                STATS["select"] += 1
                return (keys > thr) | _first(keys == thr, need)
    # Ambiguous non-zero tie at the cut, NaN, or another dtype/device: mergekit's own selection.
    STATS["argsort"] += 1
    mask = torch.zeros(n, dtype=torch.bool, device=tensor.device)
    mask[torch.argsort(w, descending=True)[:k]] = True
    return mask


NOT_KEPT = torch.iinfo(torch.int32).max  # rank of a zero entry: never needed in a kept set


def magnitude_rank(tensor: torch.Tensor) -> torch.Tensor:
    """Each entry's place in mergekit's order for magnitude trimming (`argsort(|t|.float(),
    descending=True)`, its own sort), flat int32; zero entries get NOT_KEPT (which zeros are kept never
    changes `tensor * mask`). `rank < k` is exactly the mask mergekit keeps at k = int(density * numel)."""
    w = tensor.detach().abs().reshape(-1)
    if w.device.type == "cpu":
        w = w.float()
    if w.numel() >= NOT_KEPT:
        raise ValueError(f"magnitude_rank supports tensors below {NOT_KEPT} entries, got {w.numel()}")
    nonzero = int((w != 0).sum())  # NaN != 0: NaN sorts first and counts as kept
    rank = torch.full_like(w, NOT_KEPT, dtype=torch.int32)
    rank[torch.argsort(w, descending=True)[:nonzero]] = torch.arange(nonzero, dtype=torch.int32, device=w.device)
    return rank


def _first(eq: torch.Tensor, count: int) -> torch.Tensor:
    out = torch.zeros_like(eq)
    if count > 0:
        out[eq.nonzero().reshape(-1)[:count]] = True
    return out


def magnitude(tensor: torch.Tensor, density: float, fast: bool | str = True) -> torch.Tensor:
    """`mergekit.sparsify.magnitude(tensor, density)` (no rescale).

    fast: True / "exact" = fast exact mask, "index" = fast, ties at the cut by index, False = mergekit's own.
    """
    if fast is False:
        from mergekit.sparsify import magnitude as mk_magnitude

        return mk_magnitude(tensor, density=density)
    if fast not in (True, "exact", "index"):
        raise ValueError(f"fast_trim must be True, False, 'exact' or 'index', not {fast!r}")
    if density >= 1:
        return tensor
    if density <= 0 or tensor.numel() == 0:
        return torch.zeros_like(tensor)
    mask = magnitude_mask(tensor, density, ties="index" if fast == "index" else "exact")
    return tensor * mask.reshape(tensor.shape)  # bool promotes to tensor.dtype: same bits as mergekit


def rescale_l1(tensor: torch.Tensor, masked: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """mergekit's `rescaled_masked_tensor(..., norm=l1)` given the already-masked tensor."""
    before, after = tensor.abs().sum(), masked.abs().sum()
    if before < eps or after < eps:
        return masked
    return masked * (before / after)


def bernoulli(
    tensor: torch.Tensor, density: float, rescale: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """`mergekit.sparsify.bernoulli` (DARE drop) drawing from `generator` (None: torch's global RNG).

    A generator seeded with s yields the same draws as torch's default generator after manual_seed(s).
    """
    if density >= 1:
        return tensor
    if tensor.device.type != "cpu" or tensor.dtype == torch.bfloat16:
        work = tensor.dtype
    else:
        work = torch.float32
    mask = torch.bernoulli(torch.full_like(tensor, density, dtype=work), generator=generator)
    src = tensor.to(work)
    masked = src * mask
    return (rescale_l1(src, masked) if rescale else masked).to(tensor.dtype)
