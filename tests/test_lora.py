"""LoRA members (train.lora, training/lora.py) on the tiny base: the head trains and is saved, the saved member is
the base with the adapter applied, and bad settings stop before any work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT
from rewardsoup.core.errors import ConfigError
from rewardsoup.training.lora import ADAPTER_DIR
from rewardsoup.training.member import MEMBER_META, train_member

LORA = ["train.lora.enabled=true", "train.lora.r=4", "train.lora.alpha=8", "train.lr=1e-3"]


@pytest.fixture
def lora_member(compose_cfg, smoke_overrides):
    def _train(*overrides):
        cfg = compose_cfg("train", smoke_overrides + LORA + list(overrides))
        train_member(cfg)
        return Path(cfg.train.output_dir)

    return _train


@pytest.mark.parametrize("data,objective", [("demo_thumbs", "binary"), ("demo_pairs", "pairwise")])
def test_lora_member_trains_its_head_and_saves_adapter_and_merged_weights(lora_member, tiny_base_dir, data,
                                                                          objective):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    out = lora_member(f"data={data}", f"objective={objective}")
    base, member = load_file(tiny_base_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert member.keys() == base.keys()  # a plain member: every later stage takes it by path
    assert not torch.equal(member["score.weight"], base["score.weight"])  # the head trained (modules_to_save)
    changed = {k for k in base if not torch.equal(base[k], member[k])}
    assert any("attn" in k for k in changed) and not any("ln_" in k for k in changed)  # adapters only + head
    meta = json.loads((out / MEMBER_META).read_text())
    assert meta["lora"]["r"] == 4 and meta["lora"]["targets"] == ["all-linear"]
    assert 0 < meta["lora"]["trainable_params"] < meta["lora"]["base_params"]
    assert "LoRA (peft): rank 4" in (out / "README.md").read_text()

    # the saved member equals the base with the saved adapter applied (peft's own loading), to 1e-5
    fresh = AutoModelForSequenceClassification.from_pretrained(str(tiny_base_dir), dtype=torch.float32)
    applied = PeftModel.from_pretrained(fresh, str(out / ADAPTER_DIR)).merge_and_unload().state_dict()
    for name, tensor in member.items():
        torch.testing.assert_close(applied[name], tensor, atol=1e-5, rtol=0)


def test_lora_head_lr_and_zero_head_reach_peft_s_head_copy(lora_member, tiny_base_dir):
    out = lora_member("data=demo_thumbs", "objective=binary", "train.head_init=zero", "train.head_lr=1e-2")
    head = load_file(out / "model.safetensors")["score.weight"]
    assert head.abs().sum() > 0  # trained away from its zero start: the head's param group reached the copy
    meta = json.loads((out / MEMBER_META).read_text())
    assert meta["optimizer"]["head_lr"] == pytest.approx(1e-2)


def test_lora_rank_zero_and_empty_targets_are_config_errors(compose_cfg, smoke_overrides):
    from rewardsoup.core.config import validate

    for bad, key in (("train.lora.r=0", "train.lora.r=0"), ("train.lora.targets=[]", "train.lora.targets")):
        with pytest.raises(ConfigError, match=key.replace("[", r"\[")):
            validate(compose_cfg("train", smoke_overrides + LORA + [bad]))


@pytest.mark.parametrize("bad,why", [("train.lora.r=0", "train.lora.r=0: must be >= 1"),
                                     ("train.lora.targets=[no_such_proj]", "train.lora.targets=['no_such_proj'] adapt no module")])
def test_bad_lora_settings_are_one_error_line_before_any_work(tmp_path, tiny_base_dir, bad, why):
    root = tmp_path / "out"
    args = ["experiment=smoke", "model=tiny_gpt2", f"model.base_dir={tmp_path / 'no-base-yet'}", f"paths.root={root}",
            "logger=none", *LORA, bad]
    proc = subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and why in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not root.exists() and not (tmp_path / "no-base-yet").exists()  # no base built, nothing written


def _plain_peft_adapter(folder: Path, base: Path, *, head: bool = True, train_head: bool = True) -> Path:
    """An adapter as plain peft saves it (no project metadata): LoRA moved off zero, the head trained or not."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(base), dtype=torch.float32)
    config = LoraConfig(r=2, lora_alpha=4, target_modules="all-linear", **({"task_type": "SEQ_CLS"} if head else {}))
    peft_model = get_peft_model(model, config)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name or (train_head and "modules_to_save" in name):
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
    peft_model.save_pretrained(str(folder))
    return folder


def test_a_plain_peft_adapter_is_a_member_when_valid_and_refused_without_its_head(tmp_path, tiny_base_dir):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from rewardsoup.core.errors import ModelError
    from rewardsoup.models.adapters import member_folders

    good = _plain_peft_adapter(tmp_path / "good", tiny_base_dir)
    assert not (good / "config.json").exists() and not (good / MEMBER_META).exists()
    folders = member_folders({"good": str(good)}, tiny_base_dir, tmp_path / "cache")
    applied = PeftModel.from_pretrained(
        AutoModelForSequenceClassification.from_pretrained(str(tiny_base_dir), dtype=torch.float32), str(good))
    expected = applied.merge_and_unload().state_dict()
    got = load_file(Path(folders["good"]) / "model.safetensors")
    assert not torch.equal(got["score.weight"], load_file(tiny_base_dir / "model.safetensors")["score.weight"])
    for name, tensor in got.items():
        torch.testing.assert_close(expected[name], tensor, atol=1e-5, rtol=0)
    assert member_folders({"good": str(good)}, tiny_base_dir, tmp_path / "cache") == folders  # applied once

    for folder, why in ((_plain_peft_adapter(tmp_path / "headless", tiny_base_dir, head=False), "saved no 'score' head"),
                        (_plain_peft_adapter(tmp_path / "untrained", tiny_base_dir, train_head=False),
                         "still equals the base's initial head")):
        with pytest.raises(ModelError, match=why) as err:
            member_folders({"bad": str(folder)}, tiny_base_dir, tmp_path / "cache")
        assert str(folder) in str(err.value)
    other = tmp_path / "other-base"
    other.mkdir()
    config = json.loads((good / "adapter_config.json").read_text())
    (tmp_path / "moved").mkdir()
    for f in good.iterdir():
        (tmp_path / "moved" / f.name).write_bytes(f.read_bytes())
    (tmp_path / "moved" / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": str(other)}))
    with pytest.raises(ModelError, match="is an adapter for base .*other-base, not the recipe's base"):
        member_folders({"moved": str(tmp_path / "moved")}, tiny_base_dir, tmp_path / "cache")


@pytest.mark.parametrize("bad", ["headless", "other-base"])
def test_merge_py_refuses_a_bad_adapter_member_with_one_error_line(tmp_path, tiny_base_dir, tiny_members, bad):
    adapter = _plain_peft_adapter(tmp_path / bad, tiny_base_dir, head=bad != "headless")
    if bad == "other-base":  # trained on a base of the same shapes elsewhere: its differences mean nothing here
        config = json.loads((adapter / "adapter_config.json").read_text())
        (tmp_path / "elsewhere").mkdir()
        (adapter / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": str(tmp_path / "elsewhere")}))
    args = ["logger=none", "model=tiny_gpt2", f"model.base_dir={tiny_base_dir}", f"paths.root={tmp_path / 'out'}",
            f"members.thumbs={tiny_members['thumbs']}", f"members.pairs={tiny_members['pairs']}",
            f"members.harmless={adapter}"]
    proc = subprocess.run([sys.executable, "merge.py", *args], cwd=ROOT, capture_output=True, text=True)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode != 0 and len(errors) == 1, proc.stderr[-2000:]
    assert str(adapter) in errors[0]
    assert ("saved no 'score' head" if bad == "headless" else "not the recipe's base") in errors[0]
    assert not list((tmp_path / "out").glob("soups/*")) and not list((tmp_path / "out").glob("cache/adapters/*"))


@pytest.mark.parametrize("combination", ["ties", "cat"])
def test_adapter_space_merge_of_one_member_at_weight_one_is_that_member(lora_member, tiny_base_dir, combination):
    from rewardsoup.merging.adapter_space import merge_adapters

    out = lora_member("data=demo_pairs", "objective=pairwise")
    soup = merge_adapters(tiny_base_dir, {"pairs": out}, {"pairs": 1.0}, combination, density=1.0).state_dict()
    member = load_file(out / "model.safetensors")
    assert soup.keys() >= member.keys()
    for name, tensor in member.items():
        torch.testing.assert_close(soup[name], tensor, atol=1e-5, rtol=0)


def test_an_interrupted_lora_member_resumes_to_the_uninterrupted_weights(compose_cfg, smoke_overrides, tmp_path,
                                                                         monkeypatch):
    from transformers import Trainer, TrainerCallback

    def cfg_at(root, *more):
        return compose_cfg("train", smoke_overrides + LORA + ["data=demo_thumbs", f"paths.root={root}", *more])

    straight = cfg_at(tmp_path / "straight")
    train_member(straight)
    real_train = Trainer.train

    class KillAfterCheckpoint2(TrainerCallback):  # the run's own schedule, cut right after checkpoint-2 is saved
        def on_save(self, args, state, control, **kw):
            if state.global_step == 2:
                raise KeyboardInterrupt

    def train_then_die(self, *a, **kw):
        self.add_callback(KillAfterCheckpoint2())
        return real_train(self, *a, **kw)

    monkeypatch.setattr(Trainer, "train", train_then_die)
    cut = cfg_at(tmp_path / "cut")
    with pytest.raises(KeyboardInterrupt):
        train_member(cut)
    monkeypatch.setattr(Trainer, "train", real_train)
    train_member(cfg_at(tmp_path / "cut", "train.resume=true"))
    out = Path(cut.train.output_dir)
    assert json.loads((out / MEMBER_META).read_text())["resumed_from"].endswith("checkpoint-2")
    resumed = load_file(out / "model.safetensors")
    for name, tensor in load_file(Path(straight.train.output_dir) / "model.safetensors").items():
        torch.testing.assert_close(resumed[name], tensor, atol=1e-6, rtol=0)


def test_adapter_space_cat_of_three_members_is_task_arithmetic_of_their_full_weights(lora_member, tiny_base_dir):
    """`cat` keeps every adapter whole, so the soup is base + sum_k w_k (member_k - base): mergekit's
    task_arithmetic over the materialised members (the project's in-memory copy of its math)."""
    from rewardsoup.merging.adapter_space import merge_adapters
    from rewardsoup.merging.in_memory import merge_in_memory

    members = {"pairs": lora_member("data=demo_pairs", "objective=pairwise"),
               "thumbs": lora_member("data=demo_thumbs", "objective=binary"),
               "harmless": lora_member("data=demo_harmless", "objective=pairwise")}
    weights = {"pairs": 0.7, "thumbs": 0.4, "harmless": 0.2}
    soup = merge_adapters(tiny_base_dir, members, weights, "cat").state_dict()
    expected = merge_in_memory("task_arithmetic", load_file(tiny_base_dir / "model.safetensors"),
                               {n: load_file(p / "model.safetensors") for n, p in members.items()}, weights=weights)
    assert not torch.equal(expected["score.weight"], load_file(tiny_base_dir / "model.safetensors")["score.weight"])
    for name, tensor in expected.items():
        torch.testing.assert_close(soup[name], tensor, atol=1e-5, rtol=0)
