"""Cutting texts longer than `max_length` tokens: independently, or jointly within a group that shares a prompt.

Both cut from the LEFT, since the final reply is what is judged, and both work on the token ids of the FULL
texts (never on re-tokenized pieces: BPE may merge differently across a prompt/reply boundary).

- `independent` (the default): each text keeps its last `max_length` tokens. A long pair's two sides are then
  cut by different amounts, so one reply may be judged with less of the conversation than the other.
- `joint`: the texts of a group (a pair's two sides, the candidates of one prompt) share their longest common
  token prefix P; with continuations c_i, when some text is too long every text of the group becomes
  P[len(P) - keep:] + c_i with keep = max_length - max len(c_i): the same left cut for all, so every reply is
  judged against the same context and the longest text is exactly `max_length` tokens. When one continuation
  alone is longer than `max_length` (keep < 0) no common cut exists: that group is cut independently and
  counted in `fallback`. Texts in no group are cut independently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

MODES = ("independent", "joint")


@dataclass
class Tokenized:
    ids: list[list[int]]
    truncated: int  # how many texts lost their beginning
    joint: int = 0  # groups cut jointly (truncation=joint): all their texts lost the same left stretch
    fallback: int = 0  # groups with a continuation longer than max_length: cut independently instead

    def __len__(self) -> int:
        return len(self.ids)


def common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of `seqs`."""
    first, n = seqs[0], min(len(s) for s in seqs)
    for k in range(n):
        if any(s[k] != first[k] for s in seqs[1:]):
            return k
    return n


def joint_cut(seqs: Sequence[Sequence[int]], max_length: int) -> int | None:
    """Tokens to cut from the left of every text of one group: 0 when all fit, None when no common cut keeps
    every text within `max_length` without reaching into a text's continuation (the group falls back)."""
    cut = max(len(s) for s in seqs) - max_length  # = len(P) - keep
    if cut <= 0:
        return 0
    return cut if cut <= common_prefix(seqs) else None


def truncate(full: Sequence[Sequence[int]], max_length: int, groups: Sequence[Sequence[int]] = (),
             mode: str = "independent") -> Tokenized:
    """Left-truncate the full token ids `full` to `max_length`; under `joint`, each group of indices into
    `full` (groups are disjoint) takes one common cut (`joint_cut`)."""
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    if mode not in MODES:
        raise ValueError(f"truncation must be one of {', '.join(MODES)}, got '{mode}'")
    ids = [list(seq[-max_length:]) for seq in full]
    out = Tokenized(ids=ids, truncated=0)
    if mode == "joint":
        seen: set[int] = set()
        for group in groups:
            members = list(dict.fromkeys(int(i) for i in group))
            if seen.intersection(members):
                raise ValueError(f"text groups must be disjoint: {sorted(seen.intersection(members))} in two groups")
            seen.update(members)
            cut = joint_cut([full[i] for i in members], max_length)
            if cut is None:
                out.fallback += 1
            elif cut > 0:
                out.joint += 1
                for i in members:
                    ids[i] = list(full[i][cut:])
    out.truncated = sum(len(s) < len(f) for s, f in zip(ids, full))
    return out
