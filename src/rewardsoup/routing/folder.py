"""A routed soup on disk: one folder, written atomically, reloaded to identical scores (issue #30 item 3).

    <folder>/routed_soup.json     what it is: members (in gate order), rank, router settings, where the
                                  shared model and members came from, the fit's history
    <folder>/shared/              the shared merged model: a complete reward model folder (weights, config,
                                  tokenizer), so it still exports and loads on its own
    <folder>/deltas.safetensors   each member's difference: "<member>/<tensor>/d" exact, or ".../a" and ".../b"
    <folder>/router.safetensors   the router's weights and its feature standardisation
    <folder>/README.md            the model card (`routing.card`): members, router, how it splits each set

`is_routed` tells a routed folder from a plain reward model folder; `load_routed` gives (RoutedModel, router,
manifest). A routed soup is not one set of weights: `mergekit-yaml` cannot export it (its `shared/` can).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from rewardsoup.core.atomic import atomic_dir
from rewardsoup.core.config import ROUTED_MANIFEST
from rewardsoup.core.errors import ModelError
from rewardsoup.models.cards import CARD
from rewardsoup.models.loading import load_reward_model
from rewardsoup.routing.deltas import Delta
from rewardsoup.routing.model import RoutedModel
from rewardsoup.routing.router import PromptRouter

MANIFEST = ROUTED_MANIFEST  # "routed_soup.json": marks a routed soup folder
SHARED = "shared"
DELTAS = "deltas.safetensors"
ROUTER = "router.safetensors"


def is_routed(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def _delta_tensors(routed: RoutedModel) -> dict[str, torch.Tensor]:
    out = {}
    for key, stack in routed.stacks.items():
        param = key.replace("__", ".")
        for k, member in enumerate(routed.members):
            for part in ("d", "a", "b"):
                if hasattr(stack, part):
                    out[f"{member}/{param}/{part}"] = getattr(stack, part)[k].contiguous()
    return out


def save_routed(folder: str | Path, routed: RoutedModel, router: PromptRouter, shared_dir: str | Path,
                manifest: dict[str, Any], overwrite: bool = False, card: str | None = None) -> Path:
    """Write the folder atomically: nothing at `folder` until every file (and the card, when given) is in place."""
    from safetensors.torch import save_file

    with atomic_dir(folder, overwrite=overwrite) as tmp:
        shutil.copytree(shared_dir, tmp / SHARED)
        save_file(_delta_tensors(routed), str(tmp / DELTAS))
        save_file({k: v.contiguous() for k, v in router.state_dict().items()}, str(tmp / ROUTER))
        (tmp / MANIFEST).write_text(json.dumps({**manifest, "members": routed.members}, indent=1, default=str))
        if card is not None:
            (tmp / CARD).write_text(card)
    return Path(folder)


def _deltas_from(tensors: dict[str, torch.Tensor], members: list[str]) -> dict[str, list[Delta]]:
    params = sorted({k.split("/", 2)[1] for k in tensors})
    out = {}
    for p in params:
        out[p] = [Delta(full=tensors.get(f"{m}/{p}/d"), a=tensors.get(f"{m}/{p}/a"), b=tensors.get(f"{m}/{p}/b"))
                  for m in members]
    return out


def load_routed(folder: str | Path) -> tuple[RoutedModel, PromptRouter, dict]:
    """(the routed model, its router in eval mode, the manifest); a ModelError names a broken folder."""
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        tensors, router_sd = load_file(str(folder / DELTAS)), load_file(str(folder / ROUTER))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder}: not a readable routed soup ({type(exc).__name__}: {exc})") from exc
    members = list(manifest["members"])
    shared = load_reward_model(folder / SHARED)
    routed = RoutedModel(shared, _deltas_from(tensors, members), members)
    r = manifest["router"]
    router = PromptRouter(int(r["dim"]), len(members), int(r.get("hidden", 0)), str(r.get("init", "shared")))
    router.load_state_dict(router_sd)
    return routed, router.eval(), manifest
