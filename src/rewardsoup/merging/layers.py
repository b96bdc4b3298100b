"""Layer groups of a checkpoint's tensors, and per-group merge weights turned into per-tensor ones.

A layer-wise soup gives each member one weight per group: by default the embedding (`embed`), each
transformer block (`block<i>`, or `blocks<i>-<j>` when blocks are pooled), the final norm (`norm`) and the
score head (`head`). `merge.layers.<member>.<group>` sets them by hand or from a sweep (search=cmaes_layers);
`search.layerwise` learns them. Either way they reach mergekit as per-tensor weights (`on_disk.mergekit_config`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

from rewardsoup.core.errors import ConfigError
from rewardsoup.merging.checks import weight_files

_BLOCK = re.compile(r"\.(?:layers|h|blocks)\.(\d+)\.")


def _default_group(key: str, blocks_per_group: int) -> str:
    m = _BLOCK.search(key)
    if m:
        first = int(m[1]) // blocks_per_group * blocks_per_group
        return f"block{first}" if blocks_per_group == 1 else f"blocks{first}-{first + blocks_per_group - 1}"
    if re.search(r"embed|wte|wpe", key):
        return "embed"
    if key.split(".")[0] in ("score", "classifier"):
        return "head"
    return "norm"


def layer_groups(keys: list[str], blocks_per_group: int = 1, patterns: Mapping[str, str] | None = None) -> dict:
    """Tensor name -> group: a `patterns` group (name -> regex, first match) or the default (embed, block<i>
    or blocks<i>-<j>, norm, head). A pattern that matches no tensor is a ConfigError naming it."""
    compiled = {}
    for name, regex in (patterns or {}).items():
        try:
            compiled[name] = re.compile(regex)
        except re.error as e:
            raise ConfigError(f"layerwise.groups.{name}={regex!r}: not a regex ({e})") from None
    out = {}
    for key in keys:
        out[key] = next((n for n, rx in compiled.items() if rx.search(key)), None) or _default_group(key, blocks_per_group)
    unused = [n for n in compiled if n not in out.values()]
    if unused:
        raise ConfigError(f"layerwise.groups.{unused[0]}={patterns[unused[0]]!r} matches no tensor of the model "
                          f"(e.g. {', '.join(keys[:3])})")
    return out


def float_tensor_names(checkpoint: str | Path) -> list[str]:
    """The floating-point tensor names of a checkpoint folder, read from the safetensors headers only."""
    from safetensors import safe_open

    names = []
    for f in weight_files(checkpoint, who=str(checkpoint)):
        with safe_open(str(f), framework="pt") as h:
            names += [k for k in h.keys() if h.get_slice(k).get_dtype() in ("F32", "F16", "BF16", "F64")]
    return sorted(names)


def per_tensor_weights(layers: Mapping[str, Mapping[str, float]], members: list[str], tensor_names: list[str],
                       blocks_per_group: int = 1) -> dict[str, dict[str, float]]:
    """{member: {group: weight}} -> {member: {tensor: weight}} over the default groups of `tensor_names`;
    a member or a group that does not exist is a ConfigError naming `merge.layers.<member>.<group>`."""
    groups = layer_groups(tensor_names, blocks_per_group)
    known = sorted(set(groups.values()), key=lambda g: tensor_names.index(next(k for k in tensor_names if groups[k] == g)))
    out = {}
    for member, per_group in layers.items():
        if member not in members:
            raise ConfigError(f"merge.layers.{member}: unknown member; members: {', '.join(members)}")
        for group in per_group:
            if group not in known:
                raise ConfigError(f"merge.layers.{member}.{group}: no such layer group; groups: {', '.join(known)}")
        out[member] = {k: float(per_group[groups[k]]) for k in tensor_names if groups[k] in per_group}
    return out
