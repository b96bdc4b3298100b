"""Each member's difference from the shared model, tensor by tensor, kept exact or as a truncated SVD.

A routed soup (issue #30) runs the shared merged model plus `sum_k g_k(prompt) * delta_k` inside one forward.
`member_deltas` computes every `delta_k = member_k - shared` and stores, per tensor and member:
- a 2-D matrix of a Linear / Conv1D / Embedding, at `rank` r: `B @ A`, the best rank-r approximation
  (Eckart-Young: the truncated SVD's product, `_low_rank`), so a forward adds `x @ A.T @ B.T`: a LoRA adapter
  on the shared model; at rank "full" the exact difference;
- everything else (norm weights, biases, the one-logit score head): exact, it is a few thousand numbers.
The shapes are checked first (every member has the shared model's tensors and shapes); a rank that exceeds
what a matrix allows is a ConfigError naming the matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import torch

from rewardsoup.core.errors import ConfigError, ModelError

FULL = "full"  # rank: keep every difference exactly
HEAD = "score.weight"  # the one-logit head (models.base): always exact


@dataclass
class Delta:
    """One member's difference for one tensor: exact (`full`) or low rank (`a`: r x in, `b`: out x r)."""

    full: torch.Tensor | None = None
    a: torch.Tensor | None = None
    b: torch.Tensor | None = None
    norm2: float = 0.0  # the exact difference's squared Frobenius norm
    kept2: float = 0.0  # the part of it this store keeps (= norm2 when exact)

    @property
    def numel(self) -> int:
        return sum(t.numel() for t in (self.full, self.a, self.b) if t is not None)


def check_shapes(shared: Mapping[str, torch.Tensor], members: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
    """Every member holds exactly the shared model's tensors with its shapes; the error names both."""
    for name, sd in members.items():
        missing = sorted(set(shared) - set(sd))
        extra = sorted(set(sd) - set(shared))
        if missing or extra:
            raise ModelError(f"member {name!r}: tensors differ from the shared model's "
                             f"({'lacks ' + missing[0] if missing else 'has extra ' + extra[0]})")
        for key, t in shared.items():
            if sd[key].shape != t.shape:
                raise ModelError(f"member {name!r}: tensor {key!r} has shape {list(sd[key].shape)}, the shared "
                                 f"model's has {list(t.shape)}; a routed soup needs members of one base")


def parse_rank(rank) -> int | None:
    """`full` -> None (exact); a positive integer -> that rank; anything else a ConfigError."""
    if str(rank).lower() == FULL:
        return None
    try:
        r = int(rank)
    except (TypeError, ValueError):
        r = 0
    if r < 1 or str(r) != str(rank).strip():
        raise ConfigError(f"routed.rank={rank!r}: expected a positive integer or 'full'")
    return r


def check_rank(rank, shapes: Mapping[str, Sequence[int]], matrices: Iterable[str] | None = None) -> int | None:
    """`parse_rank`, and a rank every matrix allows (`matrices`: the names a rank applies to; None: every 2-D
    tensor but the head, as the safetensors headers show them, so it runs before any weight is read)."""
    r = parse_rank(rank)
    if r is None:
        return None
    names = set(matrices) if matrices is not None else {k for k, shape in shapes.items() if len(shape) == 2}
    for key in sorted(names - {HEAD}):
        if r > min(shapes[key]):
            raise ConfigError(f"routed.rank={r} exceeds what tensor {key!r} allows (shape {list(shapes[key])}: "
                              f"at most {min(shapes[key])})")
    return r


def _exact(delta: torch.Tensor) -> Delta:
    n2 = float(delta.double().pow(2).sum())
    return Delta(full=delta, norm2=n2, kept2=n2)


def _low_rank(delta: torch.Tensor, rank: int) -> Delta:
    """The best rank-r approximation (Eckart-Young) from the eigenvectors of the smaller Gram matrix, in
    float64: the same factors' product as a truncated SVD (tested), without the full SVD's U of the embedding's
    tall 49152 x 576 difference. Tall (out >= in): A = V_r^T, B = M V_r = U_r S_r; wide: B = U_r, A = U_r^T M = S_r V_r^T."""
    m = delta.double()
    tall = m.shape[0] >= m.shape[1]
    w, v = torch.linalg.eigh(m.T @ m if tall else m @ m.T)  # ascending eigenvalues: the squared singular values
    top = v[:, -rank:].flip(1)
    a, b = (top.T, m @ top) if tall else (top.T @ m, top)
    return Delta(a=a.float().contiguous(), b=b.float().contiguous(), norm2=float(m.pow(2).sum()),
                 kept2=float(w[-rank:].clamp_min(0).sum()))


def member_deltas(shared: Mapping[str, torch.Tensor], members: Mapping[str, Mapping[str, torch.Tensor]],
                  rank, matrices: set[str]) -> dict[str, list[Delta]]:
    """{tensor name: [member k's Delta, in `members` order]}; `matrices` names the tensors a rank applies to
    (the 2-D weights of Linear / Conv1D / Embedding modules, as `(out, in)`-oriented by the caller)."""
    check_shapes(shared, members)
    r = check_rank(rank, {k: tuple(t.shape) for k, t in shared.items()}, matrices)
    out: dict[str, list[Delta]] = {}
    for key, base in shared.items():
        diffs = [sd[key].float() - base.float() for sd in members.values()]
        if r is None or key not in matrices or key == HEAD:
            out[key] = [_exact(d) for d in diffs]
        else:
            out[key] = [_low_rank(d, r) for d in diffs]
    return out


def kept_fraction(deltas: Mapping[str, list[Delta]]) -> float:
    """The share of the differences' squared norm the store keeps (1.0 when exact): what a rank costs."""
    total = sum(d.norm2 for ds in deltas.values() for d in ds)
    return sum(d.kept2 for ds in deltas.values() for d in ds) / total if total else 1.0
