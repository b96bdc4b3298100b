"""peft's Arrow over a routed soup's member differences: the training-free reference router (issue #30 item 1).

Arrow (Ostapenko et al. 2024, `peft.tuners.lora.arrow`) routes every token of every Linear layer to the LoRA
adapters whose prototype (the top right singular vector of `B @ A`) lies closest to the token's input, with no
training. A routed soup's low-rank differences ARE LoRA adapters on its shared model, so `arrow_model` writes
each member's Linear differences as a peft adapter folder (scaling 1: `lora_alpha = r`) and hands them to
`peft.create_arrow_model`. What Arrow cannot route stays at the shared model: the embedding, the norms and the
score head's differences (the learned router moves them too), and a rank-`full` soup has no adapters to give.
The row it scores in evaluate.py's table (`<name>_arrow`) therefore shows what learning a prompt gate buys
over routing by the members' weights alone.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from rewardsoup.models.loading import load_reward_model
from rewardsoup.routing.model import RoutedModel, module_kind
from rewardsoup.scoring.prefix import score_groups
from rewardsoup.scoring.rewards import score_ids

ADAPTER_WEIGHTS = "adapter_model.safetensors"  # peft's file name for an adapter's weights


def linear_factors(routed: RoutedModel) -> dict[str, list[tuple[torch.Tensor, torch.Tensor]]]:
    """{Linear module name: [(A_k, B_k) per member]}: the low-rank differences of Linear weights."""
    out = {}
    for name, module in routed.model.named_modules():
        if module_kind(module) != "linear":
            continue
        stack = routed.stacks[f"{name}.weight".replace(".", "__")]
        if hasattr(stack, "a"):
            out[name] = [(stack.a[k], stack.b[k]) for k in range(len(routed.members))]
    return out


def write_adapters(routed: RoutedModel, folder: Path) -> list[Path]:
    """One peft LoRA adapter folder per member (gate order) under `folder`."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    factors = linear_factors(routed)
    if not factors:
        return []
    rank = next(iter(factors.values()))[0][0].shape[0]
    paths = []
    for k, member in enumerate(routed.members):
        path = folder / member
        path.mkdir(parents=True)
        LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0, bias="none",
                   target_modules=sorted(factors)).save_pretrained(str(path))
        save_file({**{f"base_model.model.{m}.lora_A.weight": ab[k][0].contiguous() for m, ab in factors.items()},
                   **{f"base_model.model.{m}.lora_B.weight": ab[k][1].contiguous() for m, ab in factors.items()}},
                  str(path / ADAPTER_WEIGHTS))
        paths.append(path)
    return paths


def arrow_scores(model, ids, pad_id: int, batch_size: int = 32, groups=()):
    """One logit per token sequence through the Arrow model, in the precision of the active autocast (the
    test table's): under bf16 autocast the adapters and Arrow's prototypes are cast to bf16 first, since
    peft 0.21's Arrow forward scatters autocast's bf16 similarities into a tensor of the adapters' dtype and
    fails on fp32 ones (`scatter(): Expected self.dtype to be equal to src.dtype`); autocast runs those
    matmuls in bf16 anyway. `groups` (texts sharing a prompt) run their common prefix once (`scoring.prefix`):
    Arrow routes each token by its own input, so a cached prefix gives the same rewards."""
    dtype = _autocast_dtype()
    if dtype is not None:
        _adapters_to(model, dtype)
    if groups:  # peft injects the routed layers into the transformers model it wraps: share prefixes there
        return score_groups(model.get_base_model(), ids, groups, pad_id, batch_size)[0]
    return score_ids(model, ids, pad_id, batch_size)


def _autocast_dtype() -> torch.dtype | None:
    for device in ("cuda", "cpu"):
        if torch.is_autocast_enabled(device):
            return torch.get_autocast_dtype(device)
    return None


def _adapters_to(model, dtype: torch.dtype) -> None:
    """Every LoRA weight and every Arrow prototype of `model` in `dtype`, for good (the shared model's weights
    untouched): the model scores one table."""
    for name, param in model.named_parameters():
        if ".lora_" in name:
            param.data = param.data.to(dtype)
    for module in model.modules():
        if isinstance(getattr(module, "prototypes", None), torch.Tensor):
            module.prototypes = module.prototypes.to(dtype)


def arrow_model(routed: RoutedModel, shared_dir: str | Path, top_k: int | None = None, seed: int = 0):
    """The shared model (a fresh copy from `shared_dir`) with Arrow over the members' Linear differences, in eval
    mode; None when the soup keeps no low-rank Linear differences (rank `full`)."""
    from peft import ArrowConfig, create_arrow_model

    with tempfile.TemporaryDirectory() as tmp:
        paths = write_adapters(routed, Path(tmp))
        if not paths:
            return None
        config = ArrowConfig(top_k=top_k or len(paths), router_temperature=1.0, rng_seed=seed)
        model = create_arrow_model(load_reward_model(shared_dir), [str(p) for p in paths], config)
    return model.eval()
