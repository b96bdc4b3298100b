"""Generation for best-of-N: load a causal LM (kept per process) and sample n replies per prompt.

The generator sees the conversation through its chat template (`add_generation_prompt=True`); one without
a template gets the plain hh format and a single warning. Prompts are batched with LEFT padding,
`do_sample=True`, the n samples of a prompt sharing one prefill of its tokens.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from rewardsoup.core.errors import ConfigError, ModelError
from rewardsoup.core.precision import bf16_native
from rewardsoup.data.render import render_prompt_and_reply
from rewardsoup.models.assets import from_pretrained, resolve_model
from rewardsoup.sampling.prompts import PromptItem

log = logging.getLogger("rewardsoup.sampling.generation")
_STOPS = ("\n\nHuman:", "\n\nAssistant:", "\n\nSystem:")  # plain-format turn markers end a reply


@dataclass
class Generator:
    """A loaded causal LM; `chat` is False when its tokenizer has no chat template (plain hh format)."""

    model: Any
    tokenizer: Any
    chat: bool
    family: str = ""  # `family()`: architecture and vocabulary; a tuned copy keeps its source's


_FAMILY_FIELDS = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers")  # what fine-tuning never changes


def family(config, tokenizer) -> str:
    """What a generator shares with every fine-tuned copy of it and with no other model: its architecture
    (`_FAMILY_FIELDS` of its config) and a hash of its tokenizer's vocabulary. A picks file records it, so the
    tuning stage can refuse replies that another generator or tokenizer wrote (`tuning.picks`)."""
    arch = "-".join(str(getattr(config, k, "")) for k in _FAMILY_FIELDS)
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False).encode()
    return f"{arch}-vocab-{hashlib.sha256(vocab).hexdigest()[:12]}"


_GENERATORS: dict[tuple, Generator] = {}


def generator_dtype(name: str, device: str) -> str:
    """"auto": bfloat16 where it is native (`core.precision.bf16_native`: CUDA with bf16, CPUs with AVX512-BF16
    or AMX), else float32. The generator's weights are cast (it is never merged or saved).

    Measured on a 2-core AVX512-BF16 CPU: a bf16 linear over 4 rows costs 1.2x one row, fp32 2.5x, so bf16
    makes 4 samples nearly as cheap as 1 (bench/best_of_n.py).
    """
    if str(name) != "auto":
        return str(name)
    return "bfloat16" if bf16_native(str(device)) else "float32"


def load_generator(spec: str, dtype: str = "auto", device: str = "cpu") -> Generator:
    """A causal LM and its left-padding tokenizer, kept per process; ModelError for a reward model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(str(spec))
    dtype = generator_dtype(dtype, device)
    key = (path, dtype, device)
    if key in _GENERATORS:
        return _GENERATORS[key]
    config = Path(path) / "config.json"
    archs = (json.loads(config.read_text()).get("architectures") or []) if config.exists() else []
    if archs and all(a.endswith("ForSequenceClassification") for a in archs):
        raise ModelError(f"generator '{spec}' is {archs}, a classifier; expected a causal LM (e.g. "
                         f"generator=embedded:smollm2-135m-instruct)")
    if not isinstance(getattr(torch, str(dtype), None), torch.dtype):
        raise ConfigError(f"generation.dtype={dtype!r}: expected a torch dtype name (float32, bfloat16, float16)")
    model = from_pretrained(AutoModelForCausalLM, path, dtype=getattr(torch, str(dtype))).to(device).eval()
    tokenizer = from_pretrained(AutoTokenizer, path)
    tokenizer.padding_side, tokenizer.truncation_side = "left", "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    chat = bool(getattr(tokenizer, "chat_template", None))
    if not chat:
        log.warning("generator '%s' has no chat template; prompting it in the plain format "
                    "('\\n\\nHuman: ...\\n\\nAssistant:')", spec)
    _GENERATORS[key] = Generator(model, tokenizer, chat, family(model.config, tokenizer))
    return _GENERATORS[key]


def device_of(choice: str) -> str:
    """`device=auto`: cuda when available, else cpu (sample.py and the loop place both models there)."""
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if str(choice or "auto") == "auto" else str(choice)


def release_generators() -> None:
    """Forget the generators kept per process (a loop loads a new one every round)."""
    _GENERATORS.clear()


def generator_prompt(gen: Generator, item: PromptItem) -> str:
    """The text the generator continues: its chat template, or the plain format ending in the reply marker."""
    if gen.chat:
        return gen.tokenizer.apply_chat_template(item.messages, tokenize=False, add_generation_prompt=True)
    return render_prompt_and_reply(item.messages, item.reply(""))[0]


def clean_reply(text: str, item: PromptItem) -> str:
    """Cut a sampled reply at the next turn marker (plain format) and strip surrounding whitespace."""
    names = {m["name"] for m in item.messages if m.get("name")}
    for stop in _STOPS + tuple(f"\n\n{name}:" for name in sorted(names)):
        text = text.split(stop, 1)[0]
    return text.strip()


def shared_prefill(model, enc: Mapping[str, Any], n: int) -> dict[str, Any]:
    """Run the prompts' tokens (all but the last) once and repeat their KV cache `n` times.

    Returns `generate` inputs for the prompts repeated n times (what num_return_sequences=n builds) plus the
    cache, so the n samples of a prompt share one prefill; the samples are the same as without it.
    """
    from transformers import DynamicCache

    ids, mask = enc["input_ids"], enc["attention_mask"]
    cache = DynamicCache(config=model.config)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: count real tokens only, as generate does
    model.base_model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1],
                     cache=cache, use_cache=True)
    cache.batch_repeat_interleave(n)
    return {"input_ids": ids.repeat_interleave(n, 0), "attention_mask": mask.repeat_interleave(n, 0), "cache": cache}


def generate_replies(gen: Generator, items: Sequence[PromptItem], n: int,
                     gen_cfg: Mapping[str, Any], greedy: bool = False) -> list[list[str]]:
    """`n` sampled replies per prompt, all prompts in one left-padded `generate` call; `greedy`: the one most
    likely reply per prompt (n must be 1), e.g. a fixed reply to judge a generator by."""
    import torch

    if greedy and n != 1:
        raise ValueError(f"greedy decoding gives one reply per prompt, not n={n}")
    tok = gen.tokenizer
    enc = tok([generator_prompt(gen, item) for item in items], return_tensors="pt", padding=True,
              truncation=True, max_length=int(gen_cfg["max_prompt_length"]), add_special_tokens=not gen.chat)
    enc = {k: v.to(gen.model.device) for k, v in enc.items()}
    width = enc["input_ids"].shape[1]
    with torch.no_grad():  # not inference_mode: measured 13x slower generate on CPU (torch 2.13, tf 5.24)
        share = n > 1 and width > 1 and gen_cfg.get("share_prompt", True)
        inputs = shared_prefill(gen.model, enc, n) if share else {**enc, "num_return_sequences": n}
        spread = ({"do_sample": False, "temperature": None, "top_p": None, "top_k": None} if greedy else
                  {"do_sample": True, "temperature": float(gen_cfg["temperature"]), "top_p": float(gen_cfg["top_p"])})
        out = gen.model.generate(**inputs, **spread, max_new_tokens=int(gen_cfg["max_new_tokens"]),
                                 pad_token_id=tok.pad_token_id)
    texts = tok.batch_decode(out[:, width:], skip_special_tokens=True)
    return [[clean_reply(t, item) for t in texts[i * n:(i + 1) * n]] for i, item in enumerate(items)]
