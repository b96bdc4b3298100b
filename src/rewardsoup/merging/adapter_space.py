"""LoRA members merged in adapter space (peft's `add_weighted_adapter`), beside mergekit's full-weight merge.

mergekit merges the members' full weights (each adapter applied to the base first): the reference. peft can
instead combine the adapters themselves (`combination`: `ties`, `dare_linear`, `svd`, `cat`, `linear`), which
never materialises K full members. What peft cannot do is the score head: it refuses to combine adapters that
each save the same module in `modules_to_save` (peft's `_check_add_weighted_adapter`), and a reward adapter
must save its head (models/adapters.py). So the adapters are loaded without their heads, combined by peft, and
the heads, full tensors, are merged by the full-space method that matches the combination (`HEAD_METHOD`:
TIES for ties, DARE for dare_linear, task arithmetic otherwise), with the same weights and density, through
the project's in-memory mergekit math (`merge_in_memory`). The result is a full model, saved like any soup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from rewardsoup.core.errors import ConfigError, ModelError
from rewardsoup.merging.in_memory import merge_in_memory
from rewardsoup.models.adapters import ADAPTER_DIR, ADAPTER_WEIGHTS, is_adapter, saved_head
from rewardsoup.models.base import HEAD

COMBINATIONS = ("ties", "dare_linear", "svd", "cat", "linear")  # peft's add_weighted_adapter types offered
HEAD_METHOD = {"ties": "ties", "dare_linear": "dare_linear"}  # the head's full-space method; else task_arithmetic


def adapter_folder(member: str | Path, who: str) -> Path:
    """The peft adapter of a member: the folder itself (an adapter trained elsewhere) or its `adapter/`."""
    p = Path(str(member))
    for folder in (p, p / ADAPTER_DIR):
        if is_adapter(folder) and (folder / ADAPTER_WEIGHTS).is_file():
            return folder
    raise ModelError(f"{who}: {p} is not a LoRA member (no peft adapter there or in {ADAPTER_DIR}/): "
                     f"adapter-space merges take members trained with train.lora.enabled=true")


def merge_adapters(base: str | Path, members: Mapping[str, str | Path], weights: Mapping[str, float],
                   combination: str = "ties", density: float | None = None, seed: int | None = 0):
    """The adapter-space soup of `members` (LoRA members or adapter folders) on `base`: a transformers model
    (fp32, eval mode) with the combined adapter applied and the merged head."""
    import torch
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    if combination not in COMBINATIONS:
        raise ConfigError(f"combination={combination!r}: one of {', '.join(COMBINATIONS)}")
    names = list(members)
    folders = {n: adapter_folder(members[n], f"member {n!r}") for n in names}
    model = AutoModelForSequenceClassification.from_pretrained(str(base), dtype=torch.float32)
    base_head = {k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(f"{HEAD}.")}
    peft_model, heads = None, {}
    for n in names:  # each adapter added under its name with its own LoRA settings, its weights set from its file
        config = LoraConfig.from_pretrained(str(folders[n]))
        # heads are merged apart: peft refuses several adapters saving one module, and its sequence-classification
        # wrapper would add the head back (task_type SEQ_CLS): the adapters go in as plain LoRA on the model
        config.modules_to_save, config.task_type = None, None
        if peft_model is None:
            peft_model = get_peft_model(model, config, adapter_name=n)
        else:
            peft_model.add_adapter(n, config)
        saved = load_file(str(folders[n] / ADAPTER_WEIGHTS))  # read once: its LoRA factors and its head
        heads[n] = saved_head(saved)
        if not heads[n]:
            raise ModelError(f"member {n!r}: {folders[n]} saved no '{HEAD}' head (modules_to_save)")
        lora = {k: v for k, v in saved.items() if "lora_" in k}
        if set_peft_model_state_dict(peft_model, lora, adapter_name=n).unexpected_keys:
            raise ModelError(f"member {n!r}: {folders[n]} has LoRA weights for modules the base lacks")
    kwargs = {"density": 1.0 if density is None else float(density)} if combination in HEAD_METHOD else {}
    with torch.random.fork_rng():  # dare_linear draws its masks from torch's global generator: seeded, restored
        torch.manual_seed(0 if seed is None else int(seed))
        peft_model.add_weighted_adapter(names, [float(weights[n]) for n in names], "soup",
                                        combination_type=combination, **kwargs)
    peft_model.set_adapter("soup")
    merged = peft_model.merge_and_unload(adapter_names=["soup"])
    heads = merge_in_memory(HEAD_METHOD.get(combination, "task_arithmetic"), base_head,
                            heads, weights=dict(weights),
                            density=density if combination in HEAD_METHOD else None, seed=seed)
    with torch.no_grad():
        for k, v in merged.state_dict().items():
            if k in heads:
                v.copy_(heads[k])
    return merged.eval()
