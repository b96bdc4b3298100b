"""A routed soup's rows in evaluate.py's table (issue #30 item 4): its own scores, the reference that routes the
members' *outputs* with the same router, and how the router splits each set between the members.

- `<name>` (kind `routed`): one forward per text, the shared model plus the members' differences weighted by
  the gate of the text's prompt (`routing.scorer.score_routed_ids`), in the job's scoring precision;
- `<name>_outputs` (kind `baseline`): the same gates applied to rewards instead of weights,
  `(1 - sum_k g_k) r_shared + sum_k g_k r_k`, with r_shared the shared model's and r_k member k's own reward
  (K + 1 forwards a text; the members' scores are reused when the table has them, and so are the shared
  model's when the table holds a soup exported from the same merge request: in-memory merges equal mergekit's,
  tests/test_merging.py; by default the shared model is the sweep's pick, the table's soup). The difference between the
  two rows is what applying the gates inside the network (and compressing the differences) does; the
  difference between the outputs row and the static soup is what the router's choices are worth;
- `<name>_arrow` (kind `baseline`): peft's Arrow (`routing.arrow`), the training-free per-token router, over the
  same low-rank differences of the Linear layers: what learning the prompt gate buys over routing by the
  adapters' own geometry (in the table's precision: `routing.arrow.arrow_scores` casts its adapters to bf16 under
  bf16 autocast, where peft 0.21 fails on fp32 ones);
- shares: per set, the mean gate of each member and of the shared model over the set's rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, NamedTuple

import numpy as np
import torch
import yaml
from omegaconf import DictConfig

from rewardsoup.core.errors import ModelError
from rewardsoup.merging.on_disk import SOUP_CONFIG
from rewardsoup.merging.soup import request_config
from rewardsoup.models.loading import load_reward_model
from rewardsoup.routing.arrow import arrow_model, arrow_scores
from rewardsoup.routing.folder import SHARED, load_routed
from rewardsoup.routing.scorer import score_routed_ids
from rewardsoup.routing.sets import gate_shares, route_set, text_gates
from rewardsoup.scoring import config as scoring
from rewardsoup.scoring.metrics import EvalSet, Scored, evalsets_groups
from rewardsoup.scoring.prefix import score_groups
from rewardsoup.scoring.rewards import score_ids

OUTPUTS = "_outputs"  # the output-mixing reference row: <routed name>_outputs
ARROW = "_arrow"  # peft's training-free Arrow router over the same differences: <routed name>_arrow


class RoutedRows(NamedTuple):
    """A routed soup's rows of the table: {dataset: Scored} each, and how it splits each set."""

    own: dict  # the routed soup itself
    mixed: dict  # its output-mixing reference
    shares: dict  # {dataset: {who: mean gate}}
    arrow: dict | None  # peft's Arrow over its differences (None at rank `full`, or not asked for)
    shared_row: str | None  # the table's soup whose rewards are the shared model's (None: scored here)


def routed_rows(cfg: DictConfig, name: str, folder: Path, evalsets: list[EvalSet],
                scored: Mapping[str, Mapping[str, Scored]], soups: Mapping[str, Path], arrow: bool = True) -> RoutedRows:
    """The rows of routed soup `name` (`folder`); `scored` holds the table's rows so far and `soups` the folders
    of its soups (to find the shared model among them); `arrow` False skips Arrow's row (references.arrow)."""
    from transformers import AutoTokenizer

    routed, router, manifest = load_routed(folder)
    tokenizer = AutoTokenizer.from_pretrained(str(folder / SHARED))
    pad, bs = routed.config.pad_token_id, int(cfg.batch_size)
    embedding = routed.model.get_input_embeddings().weight.detach()
    members = list(manifest["members"])
    paths = manifest["shared"]["members"]
    shared_row = same_soup(manifest["shared"], {n: p for n, p in soups.items() if n in scored})
    own: dict[str, Scored] = {}
    mixed: dict[str, Scored] = {}
    shares: dict[str, dict[str, float]] = {}
    arrow = arrow_model(routed, folder / SHARED, seed=int(manifest["settings"].get("seed", 0))) if arrow else None
    arrowed: dict[str, Scored] | None = {} if arrow is not None else None
    sets = []
    for es in evalsets:
        rs, again = route_set(es.name, cfg.datasets[es.name], str(cfg.split), tokenizer, folder / SHARED,
                              int(cfg.max_length), cfg.paths.cache, scoring.truncation(cfg),
                              str(manifest["prompt_end"]), int(manifest["prompt_length"]), embedding)
        if again.ids != es.ids:
            raise ModelError(f"{name}: its tokenizer ({folder / SHARED}) cuts {es.name} differently from the "
                             f"other models'; a routed soup must share the members' tokenizer")
        sets.append(rs)
        shares[es.name] = gate_shares(router, rs, members)
    gates = [text_gates(router, rs) for rs in sets]
    ids = [s for rs in sets for s in rs.ids]  # every set in one pass, as score_evalsets scores the other rows
    groups = evalsets_groups(evalsets) if scoring.share_prefix(cfg) else []  # a pair's texts share a prompt and a gate
    with scoring.autocast(cfg):
        routed_all = _split(score_routed_ids(routed, ids, torch.cat(gates), pad, bs, groups), sets)
        alone_all = None if shared_row else _split(score_groups(routed.model, ids, groups, pad, bs)[0] if groups
                                                   else score_ids(routed.model, ids, pad, bs), sets)
        arrow_all = (_split(arrow_scores(arrow, ids, pad, bs, groups), sets)  # in the table's dtype
                     if arrow is not None else None)
    for k, (es, gate) in enumerate(zip(evalsets, gates)):
        own[es.name] = Scored(es, routed_all[k])
        g = gate.float().numpy()
        rewards = [_member_rewards(m, paths.get(m), es, scored, pad, bs) for m in members]
        alone = scored[shared_row][es.name].rewards if shared_row else alone_all[k]  # the shared model alone
        mixed[es.name] = Scored(es, (1.0 - g.sum(1)) * alone + sum(g[:, j] * r for j, r in enumerate(rewards)))
        if arrow_all is not None:
            arrowed[es.name] = Scored(es, arrow_all[k])
    return RoutedRows(own, mixed, shares, arrowed, shared_row)


def _split(rewards: np.ndarray, sets: list) -> list[np.ndarray]:
    return np.split(rewards, np.cumsum([len(rs.ids) for rs in sets])[:-1])


def same_soup(request: Mapping, soups: Mapping[str, Path]) -> str | None:
    """The first of `soups` exported from merge request `request` (its `SOUP_CONFIG` is the request's mergekit
    YAML to the digit), or None."""
    want = request_config(dict(request))
    for name, folder in soups.items():
        path = Path(folder) / SOUP_CONFIG
        if path.is_file() and yaml.safe_load(path.read_text(encoding="utf-8")) == want:
            return name
    return None


def _member_rewards(member: str, path: str | None, es: EvalSet, scored: Mapping[str, Mapping[str, Scored]],
                    pad: int, bs: int) -> np.ndarray:
    """Member k's own rewards on `es`: from the table when it scored the member, else one pass now."""
    if member in scored:
        return scored[member][es.name].rewards
    if path is None or not Path(path).exists():
        raise ModelError(f"routed soup member {member!r}: not among the evaluated models and its folder "
                         f"({path}) is gone; the output-mixing reference needs its rewards")
    return score_ids(load_reward_model(path), es.ids, pad, bs)


def share_notes(name: str, shares: Mapping[str, Mapping[str, float]]) -> list[str]:
    """One line per set: how the router splits it (mean gate per member and for the shared model)."""
    return [f"{name} routes {ds}: " + ", ".join(f"{who} {share:.2f}" for who, share in by.items())
            for ds, by in shares.items()]
