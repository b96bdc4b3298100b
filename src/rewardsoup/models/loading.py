"""Loading a saved reward model (member, soup or base): checked to be a one-logit sequence classifier,
loaded in fp32 and eval mode. The one loader every stage uses; `load_scorer` also keeps (model, tokenizer)
per process, keyed by path and modification time, for repeated scoring (best-of-N, `scalar_score`)."""

from __future__ import annotations

from pathlib import Path

from rewardsoup.core.errors import ModelError
from rewardsoup.models.base import check_reward_model

_LOADED: dict[tuple[str, float], tuple] = {}


def load_reward_model(path: str | Path):
    """The reward model saved at `path` (fp32, eval mode); a ModelError names a folder that is not one."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from safetensors import SafetensorError

    check_reward_model(Path(path))
    try:
        return AutoModelForSequenceClassification.from_pretrained(str(path), dtype=torch.float32).eval()
    except SafetensorError as exc:  # a truncated or overwritten weights file (a copy or save cut short)
        raise ModelError(f"{path}: its .safetensors weights cannot be read ({exc}); the file is truncated or "
                         f"not safetensors: copy or save the model again") from exc


def load_scorer(path: str | Path) -> tuple:
    """(model, tokenizer) of a saved reward model, loaded once per process and path version."""
    from transformers import AutoTokenizer

    p = Path(path).resolve()
    key = (str(p), (p / "config.json").stat().st_mtime if (p / "config.json").exists() else 0.0)
    if key not in _LOADED:
        _LOADED[key] = (load_reward_model(p), AutoTokenizer.from_pretrained(str(p)))
    return _LOADED[key]
