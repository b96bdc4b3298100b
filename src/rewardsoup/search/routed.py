"""search=routed: the sweep's pick as a shared model, each member's difference from it, and a prompt router.

`run_routed` (merge.py `search=routed`, a single run after a sweep): the shared model is the sweep's pick
(`routed.shared=best`) or the merge request (`equal`), merged in memory as a trial is; each member's
difference is kept at `routed.rank` (`rewardsoup.routing.deltas`); the router (`routing.router`) is fitted on
every dataset's val split with the members' own losses (and, with `routed.set_loss`, the which-set loss on the
train split's prompts) and stopped on a held-back part (`routing.fit`), in the scoring precision (`scoring.dtype`); the folder (`routing.folder`) lands under `paths.soups/<routed.name>`.
Its manifest keeps the shared request, the rank and what it keeps of the differences, the fit's history and
the stopping rows' accuracy at the start (the shared model alone) and at the kept epoch.
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from omegaconf import DictConfig

from rewardsoup.core.plain import plain
from rewardsoup.merging.checks import check_checkpoints, tensor_shapes
from rewardsoup.merging.soup import merge_request
from rewardsoup.models.base import MEMBER_META
from rewardsoup.models.loading import load_reward_model
from rewardsoup.routing.card import routed_card
from rewardsoup.routing.deltas import check_rank, kept_fraction, member_deltas
from rewardsoup.routing.fit import OutputMix, RouteSet, fit_router
from rewardsoup.routing.folder import save_routed
from rewardsoup.routing.model import RoutedModel, routable_matrices
from rewardsoup.routing.router import PromptRouter
from rewardsoup.routing.sets import gate_shares, route_set, split_features
from rewardsoup.scoring import config as scoring
from rewardsoup.scoring.rewards import score_ids
from rewardsoup.search.layerwise import sweep_pick
from rewardsoup.sweep.references import member_rewards, trial_rewards
from rewardsoup.sweep.resident import resident


def route_sets(cfg: DictConfig, tokenizer, embedding: torch.Tensor, base: str,
               split: str = "val") -> list[RouteSet]:
    """Every dataset's `split` rows as the router reads them (`routing.sets`)."""
    rc = cfg.routed
    return [route_set(name, cfg.datasets[name], split, tokenizer, base, int(cfg.trial.max_length), cfg.paths.cache,
                      scoring.truncation(cfg), str(rc.prompt_end), int(rc.prompt_length), embedding)[0]
            for name in cfg.datasets]


def _set_feats(cfg: DictConfig, tokenizer, embedding: torch.Tensor) -> dict[str, torch.Tensor]:
    """routed.set_prompts=train: every dataset's train-split prompts as features, for the which-set loss only."""
    if float(cfg.routed.set_loss) <= 0:
        return {}
    return {name: split_features(name, cfg.datasets[name], "train", tokenizer, str(cfg.routed.prompt_end),
                                 int(cfg.routed.prompt_length), embedding) for name in cfg.datasets}


def preflight(cfg: DictConfig) -> dict:
    """The shared request, checked before any merge or fit from config.json and safetensors headers alone: the
    base and every member hold the same tensors and shapes, and `routed.rank` fits every matrix."""
    request = sweep_pick(cfg, "routed.shared") if str(cfg.routed.shared) == "best" else merge_request(cfg)
    check_checkpoints(request.get("base"), request["members"])
    base = request.get("base")
    path, who = (base, "base") if base else next((p, f"member {n!r}") for n, p in request["members"].items())
    check_rank(cfg.routed.rank, tensor_shapes(path, who))
    return request


def _shared(request: dict, cfg: DictConfig) -> tuple[Any, dict]:
    """(a private copy of the model merged as `request` asks, the members' state dicts)."""
    prepared, model = resident(request["base"], request["members"])
    prepared.apply(model, request, bool(cfg.trial.trim_ranks))
    names = sorted(request["members"])
    return copy.deepcopy(model).eval(), {n: prepared.member_sds[n] for n in names}


def _output_mix(cfg: DictConfig, shared, request: dict, sets: list[RouteSet]) -> OutputMix:
    """routed.fit=outputs: the shared model's and each member's val rewards, in gate order. A member's come from
    the sweep (`sweep.references.member_rewards`, kept when it scored the members alone for the floors at these
    scoring settings), and so do the shared model's when it is the sweep's pick (`trial_rewards`: the same
    in-memory merge, scored by its trial), else one pass here."""
    pad, bs = shared.config.pad_token_id, int(cfg.trial.batch_size)
    best = str(cfg.routed.shared) == "best"
    kept = member_rewards(cfg, cfg.sweep.dir) if best else {}
    picked = trial_rewards(cfg, cfg.sweep.dir, request) if best else {}  # the pick's trial: the shared model's
    table, loaded = {}, {}
    with scoring.autocast(cfg):
        for rs in sets:
            r = picked.get(rs.name)
            cols = [r if r is not None and len(r) == len(rs.ids) else score_ids(shared, rs.ids, pad, bs)]
            for n in sorted(request["members"]):
                r = kept.get(f"{n}/{rs.name}")
                if r is None or len(r) != len(rs.ids):
                    if n not in loaded:
                        loaded[n] = load_reward_model(request["members"][n])
                    r = score_ids(loaded[n], rs.ids, pad, bs)
                cols.append(r)
            table[rs.name] = np.stack(cols, axis=1)
    return OutputMix(table)


def owners(request: dict, sets: list[str]) -> dict[str, int]:
    """set -> the gate index of the member trained on it (its metadata's data name), where one is."""
    out = {}
    for k, name in enumerate(sorted(request["members"])):
        meta = Path(request["members"][name]) / MEMBER_META
        data = (json.loads(meta.read_text()).get("data") or {}).get("name") if meta.exists() else None
        if data in sets:
            out[data] = k
    return out


def _lap(walls: dict) -> Callable[[str], None]:
    """walls[what] = seconds since the previous lap (the manifest's breakdown of the routed stage's wall)."""
    last = [time.perf_counter()]

    def lap(what: str) -> None:
        now = time.perf_counter()
        walls[what], last[0] = round(now - last[0], 1), now
    return lap


def run_routed(cfg: DictConfig) -> dict[str, Any]:
    """Build, fit and save the routed soup; returns its manifest."""
    from transformers import AutoTokenizer

    rc, start, walls = cfg.routed, time.perf_counter(), {}
    lap = _lap(walls)
    request = preflight(cfg)
    model, member_sds = _shared(request, cfg)
    params = {k: v.detach() for k, v in model.named_parameters()}
    deltas = member_deltas(params, {n: {k: sd[k] for k in params} for n, sd in member_sds.items()}, rc.rank,
                           routable_matrices(model))
    routed = RoutedModel(model, deltas, list(member_sds))
    lap("shared model and differences")
    tokenizer = AutoTokenizer.from_pretrained(request["base"])
    embedding = model.get_input_embeddings().weight.detach()
    sets = route_sets(cfg, tokenizer, embedding, request["base"])
    extra = _set_feats(cfg, tokenizer, embedding) if str(rc.set_prompts) == "train" else None
    lap("prompt features")
    torch.manual_seed(int(rc.seed))
    router = PromptRouter(model.config.hidden_size, len(member_sds), int(rc.hidden), str(rc.init))
    through = routed if str(rc.fit) == "network" else _output_mix(cfg, model, request, sets)
    lap("val rewards of the shared model and members" if str(rc.fit) == "outputs" else "nothing (fit=network)")
    fit = fit_router(through, router, sets, model.config.pad_token_id, epochs=int(rc.epochs), lr=float(rc.lr),
                     batch_rows=int(rc.batch_rows), stop_share=float(rc.holdout), patience=int(rc.patience),
                     seed=int(rc.seed), precision=lambda: scoring.autocast(cfg),
                     owners=owners(request, [rs.name for rs in sets]), set_weight=float(rc.set_loss), set_feats=extra)
    lap("router fit")
    held = sum(d.numel for ds in deltas.values() for d in ds)
    manifest = {"kind": "routed", "members": routed.members, "shared": request, "rank": str(rc.rank),
                "kept_fraction": kept_fraction(deltas),
                "delta_params": held, "router": {"dim": model.config.hidden_size, "hidden": int(rc.hidden),
                                                 "init": str(rc.init)},
                "prompt_end": str(rc.prompt_end), "prompt_length": int(rc.prompt_length), "fit": fit,
                "settings": plain(rc), "walls": walls, "wall_s": None}
    folder = Path(str(cfg.paths.soups)) / str(rc.name)
    shares = {rs.name: gate_shares(router, rs, routed.members) for rs in sets}
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        manifest["wall_s"] = round(time.perf_counter() - start, 1)
        save_routed(folder, routed, router, tmp, manifest, overwrite=True,
                    card=routed_card(folder.name, {**manifest, "members": routed.members, "folder": str(folder)},
                                     shares, "val"))
    print(f"[rewardsoup] routed soup -> {folder}: rank {rc.rank} keeps {manifest['kept_fraction']:.3f} of the "
          f"differences ({held / 1e6:.1f}M numbers), kept epoch {fit['best_epoch']}, stopping accuracy "
          + ", ".join(f"{ds} {fit['history'][0]['stop'][ds]:.3f} -> {acc:.3f}" for ds, acc in fit["best_stop"].items())
          + f" in {manifest['wall_s']}s ({walls})", flush=True)
    return manifest
