"""Fitting the router on val with the members' own losses (issue #30 item 2); test rows never enter.

Each set's val rows are cut once, by a seeded permutation, into fitting rows and stopping rows (`stop_share`). Each
epoch cuts a set's fitting rows into chunks of `batch_rows` rows of similar length (little padding, as HF's
length-grouped sampling), in a seeded random order; a step takes one chunk of EVERY set (a smaller set cycles), so
each set weighs the same, and minimises the mean over sets of its own loss through the routed forward:
Bradley-Terry on pairs (-log sigmoid(r_chosen - r_rejected), both texts under the row's one gate), binary
cross-entropy on binary rows. Only the router learns; the shared model and the differences stay fixed. After each
epoch the stopping rows' mean accuracy over sets decides: the best epoch's router is kept, and `patience` epochs
without a gain stop the fit. Deterministic for a seed (the split, the order, the router's init).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from rewardsoup.scoring.rewards import pad_batch


@dataclass
class RouteSet:
    """One set's rows as the router sees them: texts (pairs: chosen 0..n-1, rejected n..2n-1), features."""

    name: str
    schema: str  # pairwise | binary
    ids: list[list[int]]
    labels: np.ndarray | None
    feats: torch.Tensor  # (rows, d): the prompt features (router.prompt_features)

    @property
    def n(self) -> int:
        return len(self.ids) // 2 if self.schema == "pairwise" else len(self.ids)


class OutputMix:
    """What `fit=outputs` learns through instead of the routed forward: each text's reward as
    `(1 - sum_k g_k) r_shared + sum_k g_k r_k`, from the shared model's and the members' rewards scored once
    (`table[set]`: (texts, 1 + K)), so a step costs no forward pass."""

    def __init__(self, table: dict[str, np.ndarray]):
        self.table = {name: torch.as_tensor(r, dtype=torch.float32) for name, r in table.items()}

    def __call__(self, rs: RouteSet, texts: list[int], gate: torch.Tensor) -> torch.Tensor:
        r = self.table[rs.name][texts]
        gate = gate.float()
        return (1.0 - gate.sum(1)) * r[:, 0] + (gate * r[:, 1:]).sum(1)


def rewards(routed, router, rs: RouteSet, rows: np.ndarray, pad_id: int) -> torch.Tensor:
    """(len(rows), 2) for pairs (chosen, rejected), (len(rows),) for binary: the routed model's rewards (or
    their output-mixing surrogate when `routed` is an OutputMix)."""
    gate = router(rs.feats[rows])
    if isinstance(routed, OutputMix):
        texts = [int(i) for i in rows] + ([rs.n + int(i) for i in rows] if rs.schema == "pairwise" else [])
        out = routed(rs, texts, torch.cat([gate, gate]) if rs.schema == "pairwise" else gate)
        return out.view(2, -1).T if rs.schema == "pairwise" else out
    if rs.schema == "pairwise":
        texts = [rs.ids[i] for i in rows] + [rs.ids[rs.n + i] for i in rows]
        gate = torch.cat([gate, gate])  # a pair's two texts share their prompt's weights
    else:
        texts = [rs.ids[i] for i in rows]
    batch = pad_batch(texts, pad_id)
    out = routed(batch["input_ids"], batch["attention_mask"], gate=gate).logits[:, 0].float()
    return out.view(2, -1).T if rs.schema == "pairwise" else out


def loss_of(rs: RouteSet, r: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
    if rs.schema == "pairwise":
        return -F.logsigmoid(r[:, 0] - r[:, 1]).mean()
    return F.binary_cross_entropy_with_logits(r, torch.as_tensor(rs.labels[rows], dtype=torch.float32))


def row_lengths(rs: RouteSet, rows: np.ndarray) -> np.ndarray:
    """Tokens of each row's longest text: what a batch of these rows pads to."""
    if rs.schema == "pairwise":
        return np.array([max(len(rs.ids[i]), len(rs.ids[rs.n + i])) for i in rows], dtype=np.int64)
    return np.array([len(rs.ids[i]) for i in rows], dtype=np.int64)


SET_BATCH = 64  # prompts per set per step for the which-set loss when it reads other rows (set_feats): a few
#               thousand train prompts are seen a few times over a fit, at no forward pass (features are pooled once)
MEGA = 16  # the fit's chunks are cut from groups of 16 chunks' rows, sorted by length within each (as HF's
#           LengthGroupedSampler does): little padding, and chunks that differ from epoch to epoch


def length_chunks(rs: RouteSet, rows: np.ndarray, size: int, rng: np.random.Generator | None = None) -> list:
    """`rows` cut into chunks of `size` rows of similar length (little padding). With `rng` (the fit's batches):
    the rows shuffled, sorted by length within groups of MEGA chunks, and the chunks in a random order; without
    it (scoring), all rows sorted, shortest first."""
    rows = np.asarray(rows)
    groups = [rows] if rng is None else np.array_split(rng.permutation(rows), max(1, -(-len(rows) // (size * MEGA))))
    chunks = []
    for group in groups:
        ordered = group[np.argsort(row_lengths(rs, group), kind="stable")]
        chunks += [ordered[i:i + size] for i in range(0, len(ordered), size)]
    return [chunks[i] for i in rng.permutation(len(chunks))] if rng is not None else chunks


def accuracy(routed, router, rs: RouteSet, rows: np.ndarray, pad_id: int, batch_rows: int) -> float:
    """Share of rows ranked right (pairs: chosen above rejected; binary: the reward's sign), ties half."""
    credit = []
    with torch.no_grad():
        for part in length_chunks(rs, rows, batch_rows):
            r = rewards(routed, router, rs, part, pad_id)
            if rs.schema == "pairwise":
                d = r[:, 0] - r[:, 1]
            else:
                d = torch.where(torch.as_tensor(rs.labels[part]) == 1, r, -r)
            credit.append(((d > 0).float() + 0.5 * (d == 0).float()).numpy())
    return float(np.concatenate(credit).mean()) if credit else float("nan")


def split_rows(sets: list[RouteSet], stop_share: float, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{set: (fitting rows, stopping rows)}, a seeded permutation per set."""
    out = {}
    for i, rs in enumerate(sets):
        perm = np.random.default_rng([seed, i]).permutation(rs.n)
        cut = int(round(rs.n * stop_share))
        out[rs.name] = (np.sort(perm[cut:]), np.sort(perm[:cut]))
    return out


def fit_router(routed, router, sets: list[RouteSet], pad_id: int, *, epochs: int = 8, lr: float = 0.05,
               batch_rows: int = 8, stop_share: float = 0.25, patience: int = 2, seed: int = 0,
               precision: Callable = None, say: Callable = print, owners: dict[str, int] | None = None,
               set_weight: float = 0.0, set_feats: dict[str, torch.Tensor] | None = None) -> dict:
    """Fit `router` in place (the best epoch's weights end in it); returns the history and the split sizes.
    `owners` (set -> the index of the member trained on it) with `set_weight` > 0 adds the auxiliary "which set
    is this" loss, -log(gate of the set's own member): on the step's rows of that set, or, with `set_feats`
    (set -> prompt features of other rows, e.g. the train split's; no label is read), on SET_BATCH of those
    rows drawn per step."""
    owners = owners or {}
    torch.manual_seed(seed)
    start = time.perf_counter()
    parts = split_rows(sets, stop_share, seed)
    extra = {n: f for n, f in (set_feats or {}).items() if n in owners and len(f)} if set_weight > 0 else {}
    router.standardise_on(torch.cat([rs.feats[parts[rs.name][0]] for rs in sets] + list(extra.values())))
    opt = torch.optim.Adam(router.parameters(), lr=lr)
    ctx = precision or (lambda: torch.autocast("cpu", enabled=False))
    rng = np.random.default_rng(seed)

    def stop_score() -> dict:
        with ctx():
            return {rs.name: accuracy(routed, router, rs, parts[rs.name][1], pad_id, batch_rows * 4) for rs in sets}

    best = stop_score()
    history, best_state, best_epoch, waited = [{"epoch": 0, "stop": best}], copy.deepcopy(router.state_dict()), 0, 0
    say(f"[routed] epoch 0 (the init): stop accuracy {_fmt(best)}")
    for epoch in range(1, epochs + 1):
        chunks = {rs.name: length_chunks(rs, parts[rs.name][0], batch_rows, rng) for rs in sets}
        steps = max(len(c) for c in chunks.values())
        total = 0.0
        for step in range(steps):
            opt.zero_grad()
            with ctx():
                losses = []
                for rs in sets:
                    rows = chunks[rs.name][step % len(chunks[rs.name])]  # a smaller set cycles
                    own = loss_of(rs, rewards(routed, router, rs, rows, pad_id), rows)
                    if set_weight > 0 and rs.name in owners:
                        feats = (extra[rs.name][rng.choice(len(extra[rs.name]), min(SET_BATCH, len(extra[rs.name])),
                                                           replace=False)] if rs.name in extra else rs.feats[rows])
                        gate = router(feats)[:, owners[rs.name]]
                        own = own + set_weight * -torch.log(gate.float() + 1e-9).mean()
                    losses.append(own)
                loss = torch.stack(losses).mean()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        score = stop_score()
        history.append({"epoch": epoch, "fit_loss": total / steps, "stop": score})
        say(f"[routed] epoch {epoch}: fit loss {total / steps:.4f}, stop accuracy {_fmt(score)}")
        if _mean(score) > _mean(best):
            best, best_state, best_epoch, waited = score, copy.deepcopy(router.state_dict()), epoch, 0
        else:
            waited += 1
            if waited >= patience:
                break
    router.load_state_dict(best_state)
    return {"history": history, "best_epoch": best_epoch, "best_stop": best,
            "fit_s": round(time.perf_counter() - start, 1),
            "rows": {name: {"fit": len(f), "stop": len(s)} for name, (f, s) in parts.items()}}


def _mean(score: dict) -> float:
    return float(np.mean(list(score.values())))


def _fmt(score: dict) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in score.items()) + f" (mean {_mean(score):.3f})"
