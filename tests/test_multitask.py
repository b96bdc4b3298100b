"""One model on a mix of sets (objective=multitask): its loss, its budget, its data, and bad mixes."""

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT
from rewardsoup.core.config import validate
from rewardsoup.core.errors import ConfigError
from rewardsoup.training.member import MEMBER_META, train_member
from rewardsoup.training.multitask import CHOSEN, REJECTED, TEXT, MixedCollator, multitask_loss


class _Out:
    def __init__(self, logits):
        self.logits = logits


def test_the_mixed_loss_is_bce_on_binary_rows_and_bradley_terry_on_pairs():
    collate = MixedCollator(pad_id=0)
    batch = collate([{"chosen_ids": [5, 6, 7], "rejected_ids": [], "target": 1.0, "pair": 0},
                     {"chosen_ids": [1, 2], "rejected_ids": [1, 3, 4, 9], "target": 0.5, "pair": 1},
                     {"chosen_ids": [8], "rejected_ids": [], "target": 0.0, "pair": 0}])
    assert batch["input_ids"].shape == (4, 4) and batch["attention_mask"].sum(1).tolist() == [3, 2, 1, 4]
    roles = batch["labels"][:, 0].long().tolist()
    assert roles == [TEXT, CHOSEN, TEXT, REJECTED] and batch["labels"][1, 2].item() == 3  # chosen -> its rejected
    logits = torch.tensor([[0.3], [1.2], [-0.7], [0.1]], requires_grad=True)
    loss = multitask_loss(_Out(logits), batch["labels"])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor([0.3, -0.7]), torch.tensor([1.0, 0.0]),
                                                               reduction="sum")
    bt = -torch.nn.functional.logsigmoid(torch.tensor(1.2 - 0.1 - 0.5))
    assert loss.item() == pytest.approx(((bce + bt) / 3).item(), abs=1e-6)  # a mean over the 3 rows
    loss.backward()
    assert logits.grad[1, 0] < 0 < logits.grad[3, 0]  # the pair's gradient raises chosen and lowers rejected
    assert logits.grad[0, 0] < 0 < logits.grad[2, 0]  # the liked text goes up, the disliked one down


def test_a_mixed_binary_and_pairwise_member_trains_both_losses_at_the_members_budget(
        compose_cfg, tiny_base_dir, tiny_members, out_root):
    """demo_mix = thumbs (binary) + pairs + harmless (pairwise): the multi-task member takes as many steps as
    the three tiny members did together, both kinds of rows move the right way, and no held-out row trained it."""
    metas = {n: json.loads((p / MEMBER_META).read_text()) for n, p in tiny_members.items()}
    budget = sum(m["steps"] for m in metas.values())
    cfg = validate(compose_cfg("train", [
        "experiment=smoke", f"model.base_dir={tiny_base_dir}", "data=demo_mix", "objective=multitask",
        f"train.max_steps={budget}", "train.lr=1e-3", "train.save_steps=100",
        # fp32: 18 steps leave the 32-wide tiny model's harmless accuracy a few points above chance, where bf16's
        # rounding (auto on a bf16-native CPU) can tip it under; bench/precision.py measures bf16 on real members
        "train.precision=fp32"]))
    train_member(cfg)
    meta = json.loads((out_root / "members" / "demo_mix-multitask" / MEMBER_META).read_text())
    assert meta["steps"] == budget == 18
    parts = meta["data_report"]["parts"]
    assert sorted(parts) == ["demo_harmless", "demo_pairs", "demo_thumbs"]
    assert meta["split_sizes"]["train"] == sum(p["sizes"]["train"] for p in parts.values())
    for name, member in metas.items():  # each part split as for its member: the same held-out rows
        part = parts[member["data"]["name"]]
        assert part["sizes"] == member["data_report"]["sizes"]
    assert meta["tokenization"]["pairs"] > 0 and meta["tokenization"]["binary_rows"] > 0
    assert {f"{d}/accuracy" for d in parts} <= set(meta["val"])  # validated on each part's own val split
    base = load_file(str(tiny_base_dir / "model.safetensors"))
    tuned = load_file(str(out_root / "members" / "demo_mix-multitask" / "model.safetensors"))
    assert any(not torch.equal(base[k], tuned[k]) for k in base)
    # the loss moved both ways: binary rows above chance on thumbs (BCE) and pairs above chance (Bradley-Terry)
    assert meta["val"]["demo_thumbs/accuracy"] > 0.5 and meta["val"]["demo_harmless/accuracy"] > 0.5


@pytest.mark.parametrize("overrides, needle", [
    (["data=demo_mix", "objective=multitask", "+data@data.parts.nope=nope"], "no config 'data/nope'"),
    (["data=demo_mix", "objective=multitask", "+data@data.parts.rb=reward_bench"], "data.parts.rb: adapter=reward_bench is evaluation-only"),
    (["data=demo_thumbs", "objective=multitask"], "objective=multitask"),
    (["data=demo_mix", "objective=pairwise"], "objective=multitask"),
])
def test_a_bad_mix_stops_with_one_error_line_before_anything_is_written(out_root, tiny_base_dir, overrides, needle):
    out = subprocess.run([sys.executable, "train.py", *overrides, "logger=none", "model=tiny_gpt2",
                          f"model.base_dir={out_root / 'no-base-yet'}"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode != 0 and len(errors) == 1 and needle in errors[0], out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert not (out_root / "no-base-yet").exists() and not (out_root / "members").exists()


def test_a_mix_rule_names_the_part(compose_cfg):
    cfg = compose_cfg("train", ["data=demo_mix", "objective=multitask", "data.parts.demo_pairs.split=null"])
    with pytest.raises(ConfigError, match=r"^data.parts.demo_pairs: adapter=demo is evaluation-only"):
        validate(cfg)
