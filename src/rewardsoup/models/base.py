"""The merge-ready base: a model cut to its first K layers with a single-logit classification head.

mergekit only merges models whose tensors line up, so every member is fine-tuned from this one checkpoint
and every merge uses it as `base_model`:
1. mergekit `passthrough` with `layer_range: [0, K]` cuts the source (in-process, no subprocess);
2. the cut is loaded as `AutoModelForSequenceClassification` with `num_labels=1`, the `score` head is
   drawn from N(0, initializer_range) with a fixed generator (deterministic), `pad_token_id` is set. Not
   zeros: a zero head passes no gradient to the body on the first steps; measured on demo_thumbs (64
   examples, 8 steps) a zero head reached 0.59 val accuracy, this one 0.81;
3. weights, tokenizer and `rewardsoup_base.json` (source, layer range, dtype) are written atomically.
Building the same base twice gives byte-identical weights.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Mapping

from rewardsoup.core.atomic import atomic_dir
from rewardsoup.core.errors import ConfigError, ModelError
from rewardsoup.models.assets import resolve_model

BASE_META = "rewardsoup_base.json"  # beside the base's weights (build_base)
MEMBER_META = "rewardsoup_member.json"  # beside a trained member's weights (training.member); marks a member folder
HEAD = "score"  # the one-logit head of every base and member: GPT-2 / Llama sequence classifiers name it so
HEAD_SEED = 0  # the score head's generator seed: the same base bytes on every machine


def base_metadata(model_cfg: Mapping[str, Any]) -> dict:
    return {"source": str(model_cfg["source"]), "layer_range": [0, int(model_cfg["layers"])],
            "dtype": str(model_cfg["dtype"]), "tiny": dict(model_cfg.get("tiny") or {}),
            "num_labels": 1, "head_init": f"normal(0, initializer_range), seed {HEAD_SEED}"}


def _cut_layers(source_dir: str, layers: int, dtype: str, out_dir: Path) -> None:
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    config = MergeConfiguration.model_validate({
        "slices": [{"sources": [{"model": source_dir, "layer_range": [0, layers]}]}],
        "merge_method": "passthrough", "dtype": dtype,
    })
    run_merge(config, str(out_dir), options=MergeOptions(copy_tokenizer=True, write_model_card=False,
                                                          quiet=True, random_seed=0))


def _num_layers(config) -> int:
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if getattr(config, key, None) is not None:
            return int(getattr(config, key))
    raise ModelError(f"cannot tell how many layers {config.model_type} has")


def build_base(model_cfg: Mapping[str, Any], overwrite: bool = False) -> Path:
    """Build (or reuse) the base at `model_cfg.base_dir`; returns its folder."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    final = Path(model_cfg["base_dir"])
    meta = base_metadata(model_cfg)
    if (final / BASE_META).exists() and not overwrite:
        found = json.loads((final / BASE_META).read_text())
        if found != meta:
            raise ConfigError(f"the base at {final} was built from {found}, not {meta}; delete the folder "
                              f"or set model.base_dir to another folder")
        return final
    layers = int(model_cfg["layers"])
    source = resolve_model(str(model_cfg["source"]), model_cfg.get("tiny"))
    total = _num_layers(AutoConfig.from_pretrained(source))
    if not 1 <= layers <= total:
        raise ConfigError(f"model.layers={layers} is out of range: '{model_cfg['source']}' has {total} layers")
    dtype = getattr(torch, str(model_cfg["dtype"]))
    with tempfile.TemporaryDirectory(prefix="rewardsoup-cut-") as cut, atomic_dir(final, overwrite) as tmp:
        _cut_layers(source, layers, str(model_cfg["dtype"]), Path(cut))
        tokenizer = AutoTokenizer.from_pretrained(cut)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForSequenceClassification.from_pretrained(
            cut, num_labels=1, dtype=dtype, pad_token_id=tokenizer.pad_token_id)
        generator = torch.Generator().manual_seed(HEAD_SEED)
        std = float(getattr(model.config, "initializer_range", 0.02))
        with torch.no_grad():
            weight = torch.normal(0.0, std, tuple(model.score.weight.shape), generator=generator)
            model.score.weight.copy_(weight.to(model.score.weight.dtype))
            if getattr(model.score, "bias", None) is not None:
                model.score.bias.zero_()
        model.config.pad_token_id = tokenizer.pad_token_id
        model.config.problem_type = None
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        (tmp / BASE_META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return final


def check_reward_model(path: str | Path) -> None:
    """Raise ModelError unless `path` holds a sequence classifier with exactly one logit."""
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.exists():
        raise ModelError(f"'{path}' is not a model folder (no config.json)")
    config = json.loads(cfg_file.read_text())
    archs = config.get("architectures") or []
    labels = config.get("num_labels", len(config.get("id2label") or {}) or 2)
    if not any(a.endswith("ForSequenceClassification") for a in archs) or labels != 1:
        raise ModelError(f"'{path}' is {archs or 'an unknown architecture'} with {labels} labels; a reward "
                         f"model must be a sequence classifier with one logit (num_labels=1)")


def convert_to_single_logit(src: str | Path, out: str | Path) -> Path:
    """Turn a 2-label classifier (e.g. from transformers' run_classification) into a 1-logit reward model.

    The new score row is W[1] - W[0] (and b[1] - b[0] where a bias exists), so the new logit equals the old
    logit difference and sigmoid(new logit) equals the old softmax P(label 1).
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(src), dtype=torch.float32)
    head_name = next((n for n in ("score", "classifier", "classification_head") if hasattr(model, n)), None)
    head = getattr(model, head_name) if head_name else None
    if not isinstance(head, torch.nn.Linear) or head.out_features != 2:
        raise ModelError(f"'{src}' has no 2-label linear head to convert (found {type(head).__name__})")
    new = torch.nn.Linear(head.in_features, 1, bias=head.bias is not None)
    with torch.no_grad():
        new.weight.copy_(head.weight[1:2] - head.weight[0:1])
        if head.bias is not None:
            new.bias.copy_(head.bias[1:2] - head.bias[0:1])
    setattr(model, head_name, new)
    model.config.num_labels = 1
    model.config.id2label, model.config.label2id = {0: "LABEL_0"}, {"LABEL_0": 0}
    model.config.problem_type = None
    with atomic_dir(out) as tmp:
        model.save_pretrained(str(tmp))
        AutoTokenizer.from_pretrained(str(src)).save_pretrained(str(tmp))
    return Path(out)


if __name__ == "__main__":  # python -m rewardsoup.models.base convert SRC OUT
    import sys

    if len(sys.argv) != 4 or sys.argv[1] != "convert":
        sys.exit("usage: python -m rewardsoup.models.base convert SRC_2LABEL_MODEL OUT_DIR")
    try:
        print(convert_to_single_logit(sys.argv[2], sys.argv[3]))
    except (ModelError, FileExistsError) as exc:
        sys.exit(f"error: {exc}")
