"""LoRA members (`train.lora.enabled=true`): peft low-rank adapters on the frozen base, the score head trained.

What goes wrong elsewhere, and what this module does about it:
- a reward model's head must train and be saved with the adapter, or the member scores with the base's random
  head (peft #1070: `target_modules="all-linear"` skips it; trl #368/#297: a merge script dropped
  `score.weight`). The head is in `modules_to_save`, so peft trains a copy of it and saves it in the adapter;
- every later stage (merge, sweep, evaluate, best-of-N) takes a member folder of full weights, so the member
  is saved twice: the adapter under `adapter/` (peft's own format, loadable on the base with
  `PeftModel.from_pretrained`) and, as the member's own weights, the base with the adapter applied
  (`merge_and_unload`): merge-compatible like a full fine-tune;
- bad settings stop before any work: rank 0 is the schema's rule (training/config.py), targets that match no
  module are found here on an empty (meta-device) copy of the model, before the data is tokenized or the base
  is built (`check_targets`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from rewardsoup.core.errors import ConfigError
from rewardsoup.core.plain import plain
from rewardsoup.models.adapters import ADAPTER_DIR
from rewardsoup.models.assets import resolve_model
from rewardsoup.models.base import BASE_META, HEAD

ALL_LINEAR = "all-linear"  # peft's shorthand: every linear layer but the head


def enabled(train_cfg: Mapping[str, Any]) -> bool:
    lora = train_cfg.get("lora")
    return bool(lora is not None and lora.get("enabled", False))


def peft_config(lora: Mapping[str, Any], task_type: str = "SEQ_CLS"):
    """peft's LoraConfig of `train.lora` (or `tune.lora`): a sequence-classification adapter whose score head
    trains in full, or (task_type="CAUSAL_LM", tune.py's generators) plain LoRA on a causal LM."""
    from peft import LoraConfig

    targets = list(lora["targets"])
    return LoraConfig(task_type=task_type, r=int(lora["r"]), lora_alpha=float(lora["alpha"]),
                      lora_dropout=float(lora["dropout"]), modules_to_save=[HEAD] if task_type == "SEQ_CLS" else None,
                      target_modules=ALL_LINEAR if targets == [ALL_LINEAR] else targets)


def _skeleton(model_cfg: Mapping[str, Any]):
    """The member's architecture with no weights (meta device): the base's config when the base exists, else
    the source's, cut to `model.layers`."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    base = Path(str(model_cfg["base_dir"]))
    if (base / BASE_META).exists():
        config = AutoConfig.from_pretrained(str(base))
    else:
        config = AutoConfig.from_pretrained(resolve_model(str(model_cfg["source"]), model_cfg.get("tiny")))
        for key in ("num_hidden_layers", "n_layer", "num_layers"):
            if getattr(config, key, None) is not None:
                setattr(config, key, int(model_cfg["layers"]))
    config.num_labels = 1
    with torch.device("meta"):
        return AutoModelForSequenceClassification.from_config(config)


def check_targets(model_cfg: Mapping[str, Any], lora: Mapping[str, Any]) -> None:
    """A ConfigError naming `train.lora.targets` when they adapt no module of the member's model."""
    from peft import get_peft_model

    model = _skeleton(model_cfg)
    try:
        get_peft_model(model, peft_config(lora))
    except ValueError as exc:  # peft's NoMatchingPeftModuleError (a ValueError) and target-type refusals
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                         if type(m).__name__ in ("Linear", "Conv1D") and not n.startswith(HEAD)})
        raise ConfigError(f"train.lora.targets={plain(lora['targets'])} adapt no module of {type(model).__name__} "
                          f"({str(exc).splitlines()[0]}); its linear layers are {linear}, or use [{ALL_LINEAR}]") from exc


def wrap(model, lora: Mapping[str, Any]):
    """`model` (its head already initialised) as a peft model: LoRA on the targets, the head trained in full."""
    from peft import get_peft_model

    return get_peft_model(model, peft_config(lora))


def unwrapped(model):
    """The transformers model inside a peft model (its LoRA layers active), so scoring reads `.score` and the
    backbone as it does for a full member; any other model as it is."""
    return model.get_base_model() if hasattr(model, "peft_config") else model


def settings(model, lora: Mapping[str, Any]) -> dict:
    """The member metadata's record of how it was trained: the LoRA settings and what they made trainable."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n and "modules_to_save" not in n)
    return {**plain(lora), "adapter": ADAPTER_DIR, "trainable_params": int(trainable), "base_params": int(total),
            "modules_to_save": [HEAD]}


def save(model, folder: Path):
    """Write the adapter to `folder/adapter` and return the full model with the adapter applied (the member's
    own weights); `model` is consumed (peft merges in place)."""
    model.save_pretrained(str(folder / ADAPTER_DIR))
    return model.merge_and_unload()
