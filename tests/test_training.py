"""train.py's work on the tiny base: parameters move, nothing is dropped, members stay merge-compatible."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from conftest import ROOT
from rewardsoup import objectives
from rewardsoup.errors import ConfigError, DataError, ModelError
from rewardsoup.scoring import tokenize
from rewardsoup.training import MEMBER_META, train_member


def _shapes(folder):
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


@pytest.fixture
def train(compose_cfg, smoke_overrides):
    def _train(*overrides):
        cfg = compose_cfg("train", smoke_overrides + list(overrides))
        return cfg, train_member(cfg)

    return _train


@pytest.mark.parametrize("data,objective", [("demo_thumbs", "binary"), ("demo_harmless", "pairwise"),
                                            ("demo_pairs", "pairwise")])
def test_training_moves_parameters_keeps_shapes_and_writes_metadata(train, tiny_base_dir, data, objective):
    cfg, acc = train(f"data={data}", f"objective={objective}")
    out = Path(cfg.train.output_dir)
    assert 0.0 <= acc <= 1.0
    base, member = load_file(tiny_base_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert _shapes(out) == _shapes(tiny_base_dir)  # same names and shapes, score head included
    changed = [k for k in base if not torch.equal(base[k], member[k])]
    assert "score.weight" in changed and len(changed) > 5
    meta = json.loads((out / MEMBER_META).read_text())
    assert meta["objective"]["name"] == objective and meta["data"]["name"] == data
    assert meta["steps"] == 4 and meta["val"]["n"] == meta["split_sizes"]["val"] > 0
    assert torch.isfinite(torch.tensor(meta["train_loss"]))
    assert not list(out.parent.glob(".*work")) and not list(out.parent.glob(".*tmp-*"))


def test_left_truncation_keeps_the_final_reply():
    from rewardsoup.models import load_gpt2_tokenizer

    tok = load_gpt2_tokenizer()
    text = "Human: " + "blah " * 200 + "\n\nAssistant: THE FINAL REPLY"
    out = tokenize(tok, [text, "short"], max_length=16)
    assert out.truncated == 1 and len(out.ids[0]) == 16
    assert tok.decode(out.ids[0]).endswith("THE FINAL REPLY")
    assert tok.decode(out.ids[1]) == "short"


def test_no_pair_is_dropped_even_when_everything_is_too_long(compose_cfg, tiny_base_dir):
    from transformers import AutoTokenizer

    from rewardsoup.data import load_splits

    cfg = compose_cfg("train", ["data=demo_harmless", "objective=pairwise"])
    splits = load_splits(cfg.data)
    tok = AutoTokenizer.from_pretrained(str(tiny_base_dir))
    ds, counts = objectives.OBJECTIVES["pairwise"].tokenize(splits.train, tok, 4, cfg.objective)
    assert len(ds) == len(splits.train)
    assert counts["left_truncated"] == 2 * len(splits.train)
    assert max(ds["length"]) == 4


def test_mismatched_data_is_converted_explicitly(train):
    cfg, _ = train("data=demo_harmless", "objective=binary")
    meta = json.loads((Path(cfg.train.output_dir) / MEMBER_META).read_text())
    assert meta["data_report"]["converted"] == "pairwise -> binary"
    cfg, _ = train("data=demo_thumbs", "objective=pairwise")
    meta = json.loads((Path(cfg.train.output_dir) / MEMBER_META).read_text())
    assert meta["data_report"]["converted"] == "binary -> pairwise"
    assert meta["data_report"]["pairs_train"]["pairs"] == meta["split_sizes"]["train"]


def test_saved_member_loads_in_a_pipeline_and_returns_a_probability(train):
    from transformers import pipeline

    cfg, _ = train("data=demo_thumbs", "objective=binary")
    clf = pipeline("text-classification", model=cfg.train.output_dir)
    out = clf(["Best Friend Steve: Hey it's me, your best friend."])
    assert 0.0 < out[0]["score"] < 1.0


def test_resume_continues_from_the_last_checkpoint(train, compose_cfg, smoke_overrides, monkeypatch):
    from transformers import Trainer

    real_train = Trainer.train
    calls = []

    def crash_after_checkpoint(self, *a, **kw):  # simulate an interruption after checkpoint-2
        self.args.max_steps = 2
        real_train(self, *a, **kw)
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train", crash_after_checkpoint)
    cfg = compose_cfg("train", smoke_overrides + ["data=demo_thumbs"])
    with pytest.raises(KeyboardInterrupt):
        train_member(cfg)
    out = Path(cfg.train.output_dir)
    work = out.with_name(f".{out.name}.work")
    assert not out.exists() and (work / "checkpoints" / "checkpoint-2").exists()
    monkeypatch.setattr(Trainer, "train", real_train)
    cfg, _ = train("data=demo_thumbs", "train.resume=true")
    meta = json.loads((out / MEMBER_META).read_text())
    assert meta["resumed_from"].endswith("checkpoint-2") and meta["steps"] == 4


def test_empty_split_and_unknown_objective_are_clear_errors(train, out_root):
    with pytest.raises(DataError, match="no val rows"):
        train("data=demo_thumbs", "data.split.val=0.0")
    with pytest.raises(ConfigError, match="unknown objective 'nope'"):
        objectives.get_objective("nope")
    assert not (out_root / "members" / "demo_thumbs-binary").exists()


def test_non_finite_loss_stops_with_no_model_folder(train, out_root, monkeypatch):
    monkeypatch.setattr(objectives, "bce_loss", lambda out, labels, **k: out.logits.sum() * float("nan"))
    with pytest.raises(Exception, match="non-finite|nan"):
        train("data=demo_thumbs")
    assert not (out_root / "members" / "demo_thumbs-binary").exists()


def test_base_that_is_not_a_one_logit_classifier_is_refused(compose_cfg, smoke_overrides, tmp_path, out_root):
    import json
    import shutil

    from rewardsoup.base import BASE_META, base_metadata
    from rewardsoup.models import tiny_model_dir

    fake = tmp_path / "causal-lm-base"
    shutil.copytree(tiny_model_dir("gpt2"), fake)  # a causal LM where the base should be
    cfg = compose_cfg("train", smoke_overrides + [f"model.base_dir={fake}"])
    (fake / BASE_META).write_text(json.dumps(base_metadata(cfg.model), indent=2, sort_keys=True) + "\n")
    with pytest.raises(ModelError, match="one logit"):
        train_member(cfg)
    assert not (out_root / "members").exists()


def test_cli_smoke_run_and_bad_input_exit_codes(out_root, tiny_base_dir):
    common = [sys.executable, "train.py", "experiment=smoke", f"model.base_dir={tiny_base_dir}"]
    ok = subprocess.run(common + ["data=demo_pairs", "objective=pairwise"], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert (out_root / "members" / "demo_pairs-pairwise" / "model.safetensors").exists()
    bad = subprocess.run(common + ["data=local_pairs", f"data.source={out_root}/missing.jsonl"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1
    assert "missing.jsonl" in bad.stderr and "Traceback" not in bad.stderr
