"""State dicts in and out of a merge: read a checkpoint's tensors, copy merged tensors into a resident model."""

from __future__ import annotations

import os
from typing import Mapping

import torch

from rewardsoup.core.errors import ModelError
from rewardsoup.merging.checks import weight_files


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint folder (or one .safetensors file), floating ones as float32."""
    from safetensors.torch import load_file

    sd: dict[str, torch.Tensor] = {}
    for f in weight_files(path, who=str(path)):
        sd.update(load_file(str(f)))
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}


def apply_state_dict(model: torch.nn.Module, sd: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    """Copy `sd` into a resident model in place (cast to each parameter's dtype/device); no disk."""
    own = model.state_dict()
    for k, v in sd.items():  # check everything before touching the model
        if k not in own:
            raise ModelError(f"merged tensor {k!r} does not exist in {type(model).__name__}")
        if tuple(v.shape) != tuple(own[k].shape):
            raise ModelError(f"tensor {k!r}: merged shape {list(v.shape)} != model shape {list(own[k].shape)}")
    present = {own[k].data_ptr() for k in sd}
    missing = [k for k in own if k not in sd and own[k].data_ptr() not in present]  # tied copies are fine
    if missing:
        raise ModelError(f"merged state dict lacks tensor {missing[0]!r} of {type(model).__name__}")
    with torch.no_grad():
        for k, v in sd.items():
            own[k].copy_(v.to(dtype=own[k].dtype, device=own[k].device))
    return model
