"""The merge-ready base: layer cut, single-logit head, byte-identical rebuilds, 2-label conversion."""

import hashlib
import json

import pytest
import torch
from safetensors import safe_open

from rewardsoup.models.base import BASE_META, build_base, check_reward_model, convert_to_single_logit
from rewardsoup.core.errors import ConfigError, ModelError


def _cfg(folder, source="tiny:llama", layers=1, dtype="float32"):
    return {"source": source, "layers": layers, "dtype": dtype, "tiny": None, "base_dir": str(folder)}


def _sha(folder):
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def test_base_is_a_cut_single_logit_classifier(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = build_base(_cfg(tmp_path / "b"))
    model = AutoModelForSequenceClassification.from_pretrained(str(base))
    tok = AutoTokenizer.from_pretrained(str(base))
    assert type(model).__name__ == "LlamaForSequenceClassification"
    assert model.config.num_hidden_layers == 1 and model.config.num_labels == 1
    assert model.config.pad_token_id == tok.pad_token_id is not None
    head = model.score.weight
    assert head.shape == (1, model.config.hidden_size) and 0.005 < head.std() < 0.05  # seeded N(0, 0.02)
    meta = json.loads((base / BASE_META).read_text())
    assert meta["layer_range"] == [0, 1] and meta["source"] == "tiny:llama" and meta["dtype"] == "float32"
    with safe_open(str(base / "model.safetensors"), "pt") as f:
        names = set(f.keys())
    assert "score.weight" in names and not any(".layers.1." in n for n in names)
    check_reward_model(base)


def test_building_twice_is_byte_identical(tmp_path):
    a = build_base(_cfg(tmp_path / "a", source="tiny:gpt2", layers=2))
    b = build_base(_cfg(tmp_path / "b", source="tiny:gpt2", layers=2))
    assert _sha(a) == _sha(b)
    assert build_base(_cfg(tmp_path / "a", source="tiny:gpt2", layers=2)) == a  # reused, not rebuilt


def test_base_built_from_something_else_is_refused(tmp_path):
    build_base(_cfg(tmp_path / "b"))
    with pytest.raises(ConfigError, match="was built from"):
        build_base(_cfg(tmp_path / "b", layers=2))


def test_layer_count_out_of_range(tmp_path):
    with pytest.raises(ConfigError, match="model.layers=9"):
        build_base(_cfg(tmp_path / "b", layers=9))
    assert not (tmp_path / "b").exists()


def test_check_reward_model_rejects_causal_lm_and_two_labels(tmp_path):
    from rewardsoup.models.assets import tiny_model_dir

    with pytest.raises(ModelError, match="one logit"):
        check_reward_model(tiny_model_dir("gpt2"))
    with pytest.raises(ModelError, match="no config.json"):
        check_reward_model(tmp_path)


def test_two_label_conversion_preserves_logit_difference(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, GPT2Config, \
        GPT2ForSequenceClassification

    from rewardsoup.models.assets import load_gpt2_tokenizer

    tok = load_gpt2_tokenizer()
    torch.manual_seed(0)
    two = GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=len(tok),
                                                   num_labels=2, pad_token_id=tok.eos_token_id))
    two.config.problem_type = "single_label_classification"
    two.save_pretrained(tmp_path / "two")
    tok.save_pretrained(tmp_path / "two")
    out = convert_to_single_logit(tmp_path / "two", tmp_path / "one")
    one = AutoModelForSequenceClassification.from_pretrained(str(out))
    assert one.config.num_labels == 1 and one.config.problem_type is None
    check_reward_model(out)
    batch = AutoTokenizer.from_pretrained(str(out))(["a good reply", "meh"], return_tensors="pt", padding=True)
    two.eval()
    with torch.no_grad():
        old = two(**batch).logits
        new = one(**batch).logits
    torch.testing.assert_close(new[:, 0], old[:, 1] - old[:, 0], atol=1e-5, rtol=1e-5)
    with pytest.raises(ModelError, match="2-label"):
        convert_to_single_logit(out, tmp_path / "again")
