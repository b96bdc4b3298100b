"""Precision: `auto` is bf16 exactly where the hardware has it natively (mocked both ways), `fp32` forces fp32,
a bf16-trained member is an fp32 checkpoint that merges through mergekit's YAML like any other, and bf16
scoring leaves the scored model's weights alone."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file

from rewardsoup.core import precision
from rewardsoup.merging.on_disk import merge_to_disk, mergekit_config
from rewardsoup.models.loading import load_reward_model
from rewardsoup.sampling.generation import generator_dtype
from rewardsoup.scoring import config as scoring
from rewardsoup.scoring.rewards import score_texts
from rewardsoup.training import member


@pytest.fixture
def cpu_native(monkeypatch):
    """A CPU-only machine whose bf16 support is set by the test (torch.cpu's own checks, mocked)."""
    def _set(native: bool):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)

    return _set


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_exactly_where_native(cpu_native, compose_cfg, native):
    cpu_native(native)
    assert precision.bf16_native() is native
    flags = member.trainer_precision("auto")
    assert flags == {"bf16": native, "fp16": False, "use_cpu": True}
    assert generator_dtype("auto", "cpu") == ("bfloat16" if native else "float32")
    cfg = compose_cfg("merge", ["scoring.dtype=auto"])
    ctx = scoring.autocast(cfg)
    assert isinstance(ctx, torch.autocast) if native else isinstance(ctx, contextlib.nullcontext)


def test_amx_alone_counts_as_native(cpu_native, monkeypatch):
    cpu_native(False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert precision.resolve("auto") == "bf16"


def test_cuda_with_bf16_is_native(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert precision.resolve("auto", "cuda") == "bf16" and member.trainer_precision("auto")["bf16"]
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert precision.resolve("auto", "cuda:0") == "fp32" and not member.trainer_precision("auto")["bf16"]


def test_fp32_forces_fp32_where_bf16_is_native(cpu_native, compose_cfg, tmp_path):
    cpu_native(True)
    assert member.trainer_precision("fp32") == {"bf16": False, "fp16": False, "use_cpu": True}
    cfg = compose_cfg("train", ["train.precision=fp32"])
    args = member._trainer_args(cfg.train, tmp_path, False, "x")
    assert args["bf16"] is False and args["fp16"] is False
    assert isinstance(scoring.autocast(compose_cfg("merge", ["scoring.dtype=fp32"])), contextlib.nullcontext)
    assert generator_dtype("float32", "cpu") == "float32"


def test_a_bad_scoring_dtype_names_the_key(compose_cfg):
    from rewardsoup.core.config import validate
    from rewardsoup.core.errors import ConfigError

    with pytest.raises(ConfigError, match="scoring.dtype"):
        validate(compose_cfg("merge", ["scoring.dtype=int8"]))


def _train(compose_cfg, smoke_overrides, root: Path, dtype: str, data: str, objective: str) -> Path:
    cfg = compose_cfg("train", smoke_overrides + [f"paths.root={root}", f"train.precision={dtype}", f"data={data}",
                                                  f"objective={objective}", "train.lr=1e-3", "train.max_steps=4"])
    member.train_member(cfg)
    return Path(cfg.train.output_dir)


def test_bf16_member_is_fp32_on_disk_and_merges_through_mergekit_yaml(compose_cfg, smoke_overrides, tiny_members,
                                                                      tiny_base_dir, tmp_path):
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    bf16 = _train(compose_cfg, smoke_overrides, tmp_path / "bf16", "bf16", "demo_pairs", "pairwise")
    fp32 = _train(compose_cfg, smoke_overrides, tmp_path / "fp32", "fp32", "demo_pairs", "pairwise")
    with safe_open(str(bf16 / "model.safetensors"), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F32"}
    a, b, base = (load_file(str(p / "model.safetensors")) for p in (bf16, fp32, tiny_base_dir))
    assert not torch.equal(a["score.weight"], base["score.weight"])  # it trained
    assert any(not torch.equal(a[k], b[k]) for k in a)  # and in bf16: the same seed in fp32 lands elsewhere
    cfg = mergekit_config("ties", str(tiny_base_dir), {"pairs": str(bf16), "thumbs": str(tiny_members["thumbs"])},
                          {"pairs": 0.7, "thumbs": 0.4}, 0.6, None)
    soup = merge_to_disk(cfg, tmp_path / "soup")
    again = tmp_path / "again"
    run_merge(MergeConfiguration.model_validate(yaml.safe_load((soup / "mergekit_config.yml").read_text())),
              str(again), options=MergeOptions(quiet=True, write_model_card=False, copy_tokenizer=False))
    x, y = load_file(str(soup / "model.safetensors")), load_file(str(again / "model.safetensors"))
    assert set(x) == set(y) and all(torch.equal(x[k], y[k]) for k in x)


def test_bf16_scoring_is_close_and_leaves_weights_fp32(tiny_members):
    from transformers import AutoTokenizer

    path = tiny_members["pairs"]
    model, tok = load_reward_model(path), AutoTokenizer.from_pretrained(str(path))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    texts = ["Human: hi\n\nAssistant: hello, how can I help?", "Human: hi\n\nAssistant: go away"] * 4
    full = score_texts(model, tok, texts, 64)
    with precision.autocast("bf16", "cpu"):
        half = score_texts(model, tok, texts, 64)
    assert half.dtype == full.dtype and abs(half - full).max() < 0.05 * max(1.0, abs(full).max())
    assert all(v.dtype == torch.float32 and torch.equal(v, before[k]) for k, v in model.state_dict().items())
