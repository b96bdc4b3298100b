"""train.py's work on the tiny base: parameters move, nothing is dropped, members stay merge-compatible."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from safetensors import safe_open
from safetensors.torch import load_file

from conftest import ROOT
from rewardsoup.training import objectives
from rewardsoup.core.config import validate
from rewardsoup.core.errors import ConfigError, DataError, ModelError
from rewardsoup.scoring.rewards import tokenize
from rewardsoup.training.member import MEMBER_META, train_member


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
    from rewardsoup.models.assets import load_gpt2_tokenizer

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


def test_checkpoints_come_every_save_steps_and_not_again_at_the_last_step(train, monkeypatch):
    """transformers' default also checkpoints the final step; the finished member is written right after, so
    that one is skipped: 5 steps at save_steps=2 checkpoint at 2 and 4 only (and a run ending on a multiple
    keeps its checkpoint, test_resume_continues_from_the_last_checkpoint)."""
    from transformers import Trainer

    real_save, saved = Trainer._save_checkpoint, []

    def recording(self, *a, **kw):
        saved.append(self.state.global_step)
        return real_save(self, *a, **kw)

    monkeypatch.setattr(Trainer, "_save_checkpoint", recording)
    cfg, _ = train("data=demo_thumbs", "train.max_steps=5")
    assert saved == [2, 4]
    assert json.loads((Path(cfg.train.output_dir) / MEMBER_META).read_text())["steps"] == 5


def test_empty_split_and_unknown_objective_are_clear_errors(train, out_root):
    with pytest.raises(DataError, match="no val rows"):
        train("data=demo_thumbs", "data.split.val=0.0")
    with pytest.raises(ConfigError, match="objective.name='nope': unknown"):
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

    from rewardsoup.models.base import BASE_META, base_metadata
    from rewardsoup.models.assets import tiny_model_dir

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


# ------------------------------------------------------------------ train settings: head, lr, scheduler
GOOD = ["thanks", "glad", "happy", "kind", "great", "welcome", "lovely", "wonderful", "nice", "pleased"]
BAD = ["hate", "stupid", "awful", "ugly", "terrible", "useless", "boring", "nasty", "horrible", "rude"]


@pytest.fixture
def clear_pairs(tmp_path):
    """400 pairs whose chosen reply is kind and rejected reply rude: a signal a few steps can learn."""
    import random

    rng = random.Random(0)
    rows = [{"prompt": f"Human: tell me about item {i}\n\nAssistant:",
             "chosen": " " + " ".join(rng.sample(GOOD, 3)), "rejected": " " + " ".join(rng.sample(BAD, 3))}
            for i in range(400)]
    path = tmp_path / "clear_pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return ["data=local_pairs", f"data.source={path}", "objective=pairwise", "data.split.val=0.1",
            "data.split.test=0.3"]


def _test_accuracy(cfg, model_dir) -> tuple[float, int]:
    """Accuracy on the held-out TEST split through the project's scoring path."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rewardsoup.data import load_splits
    from rewardsoup.scoring.metrics import evalset_from_split, row_credit, score_evalset

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    test = load_splits(cfg.data, tok).test
    es = evalset_from_split("clear", "pairwise", test, tok, int(cfg.train.max_length))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
    credit = row_credit(es, score_evalset(model, es, tok.pad_token_id).rewards)
    return float(credit.mean()), len(credit)


def _head(folder) -> torch.Tensor:
    return load_file(Path(folder) / "model.safetensors")["score.weight"]


def test_a_trained_member_beats_its_untrained_base(train, tiny_base_dir, clear_pairs):
    cfg, _ = train(*clear_pairs, "train.max_steps=20", "train.batch_size=8", "train.lr=3e-3")
    member, n = _test_accuracy(cfg, cfg.train.output_dir)
    base, _ = _test_accuracy(cfg, tiny_base_dir)
    assert n >= 100
    assert member >= 0.9 and member > base + 0.2, (member, base)


def test_head_init_zero_starts_the_member_from_a_zero_head(train, tiny_base_dir):
    before = _head(tiny_base_dir).clone()
    assert before.abs().sum() > 0  # the base's seeded head
    # a head lr of ~0 keeps the head where it started: zero for head_init=zero, the base's for head_init=base
    cfg, _ = train("data=demo_harmless", "objective=pairwise", "train.head_init=zero", "train.head_lr=1e-20")
    assert _head(cfg.train.output_dir).abs().max() < 1e-12
    meta = json.loads((Path(cfg.train.output_dir) / MEMBER_META).read_text())
    assert meta["optimizer"]["head_init"] == "zero" and meta["train"]["head_init"] == "zero"
    cfg, _ = train("data=demo_harmless", "objective=pairwise", "train.head_init=base", "train.head_lr=1e-20")
    assert torch.allclose(_head(cfg.train.output_dir), before, atol=1e-12)
    assert torch.equal(_head(tiny_base_dir), before)  # the base folder is never changed
    cfg, _ = train("data=demo_harmless", "objective=pairwise", "train.head_init=zero")
    assert _head(cfg.train.output_dir).abs().sum() > 0 and not torch.equal(_head(cfg.train.output_dir), before)


def test_head_lr_moves_the_head_more_than_a_tiny_head_lr(train, tiny_base_dir):
    base = _head(tiny_base_dir)
    moved = {}
    for head_lr in (1e-6, 1e-2):
        cfg, _ = train("data=demo_thumbs", "train.lr=1e-4", f"train.head_lr={head_lr}")
        moved[head_lr] = float((_head(cfg.train.output_dir) - base).norm())
        meta = json.loads((Path(cfg.train.output_dir) / MEMBER_META).read_text())
        assert meta["optimizer"]["head_lr"] == head_lr and meta["optimizer"]["lr"] == 1e-4
    assert moved[1e-2] > 100 * moved[1e-6], moved


def test_param_groups_split_head_from_body_and_keep_weight_decay(tiny_base_dir):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_base_dir))
    groups = {g["name"]: g for g in objectives.param_groups(model, 1e-4, 1e-2, 0.1)}
    assert set(groups) == {"body", "body/no_decay", "head"}  # GPT-2/Llama score heads have no bias
    assert groups["head"]["lr"] == 1e-2 and groups["body"]["lr"] == groups["body/no_decay"]["lr"] == 1e-4
    assert groups["body"]["weight_decay"] == groups["head"]["weight_decay"] == 0.1
    assert groups["body/no_decay"]["weight_decay"] == 0.0
    assert groups["head"]["params"][0] is model.score.weight
    assert sum(len(g["params"]) for g in groups.values()) == len(list(model.parameters()))


@pytest.mark.parametrize("scheduler,expected", [("constant", "constant_with_warmup"), ("cosine", "cosine"),
                                                ("linear", "linear")])
def test_scheduler_and_warmup_ratio_reach_the_trainer(train, monkeypatch, scheduler, expected):
    from transformers import Trainer

    real_train, seen = Trainer.train, {}

    def spy(self, *a, **kw):
        out = real_train(self, *a, **kw)
        seen.update(type=str(getattr(self.args.lr_scheduler_type, "value", self.args.lr_scheduler_type)),
                    warmup=self.args.get_warmup_steps(self.state.max_steps), last_lr=self.lr_scheduler.get_last_lr(),
                    groups=[g.get("name") for g in self.optimizer.param_groups])
        return out

    monkeypatch.setattr(Trainer, "train", spy)
    cfg, _ = train("data=demo_thumbs", f"train.scheduler={scheduler}", "train.warmup_ratio=0.5", "train.lr=1e-3",
                   "train.head_lr=1e-2")
    assert seen["type"] == expected
    assert seen["warmup"] == 2  # a ratio: half of the 4 optimizer steps, not 0.5 steps
    assert seen["groups"] == ["body", "body/no_decay", "head"]
    if scheduler == "constant":  # constant after warmup: the final step still runs at the full rates
        assert seen["last_lr"] == pytest.approx([1e-3, 1e-3, 1e-2])
    else:
        assert seen["last_lr"][0] < 1e-3 and seen["last_lr"][2] < 1e-2
    meta = json.loads((Path(cfg.train.output_dir) / MEMBER_META).read_text())
    assert meta["optimizer"]["lr_scheduler_type"] == expected and meta["optimizer"]["warmup_steps"] == 2


def test_resume_with_a_head_lr_restores_its_param_groups(train, compose_cfg, smoke_overrides, monkeypatch):
    from transformers import Trainer

    real_train = Trainer.train

    def crash_after_checkpoint(self, *a, **kw):
        self.args.max_steps = 2
        real_train(self, *a, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train", crash_after_checkpoint)
    overrides = ["data=demo_pairs", "objective=pairwise", "train.head_lr=1e-2", "train.weight_decay=0.01"]
    with pytest.raises(KeyboardInterrupt):
        train_member(compose_cfg("train", smoke_overrides + overrides))
    monkeypatch.setattr(Trainer, "train", real_train)
    with pytest.raises(ConfigError, match="other optimizer groups"):  # resumed without the head's groups
        train(*overrides, "train.head_lr=null", "train.resume=true")
    cfg, _ = train(*overrides, "train.resume=true")
    meta = json.loads((Path(cfg.train.output_dir) / MEMBER_META).read_text())
    assert meta["resumed_from"].endswith("checkpoint-2") and meta["steps"] == 4
    assert meta["optimizer"]["head_lr"] == 1e-2


def test_bad_train_settings_are_named(compose_cfg, smoke_overrides, out_root):
    """Value rules (training/config.py) name the field; a value of the wrong type does not even compose."""
    for override, words in (("train.lr=0", "train.lr"), ("train.head_lr=-1", "train.head_lr"),
                            ("train.scheduler=foo", "train.scheduler"), ("train.head_init=xavier", "train.head_init"),
                            ("train.warmup_ratio=-0.1", "train.warmup_ratio"), ("train.validate=often", "train.validate")):
        with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
            validate(compose_cfg("train", smoke_overrides + [override]))
    with pytest.raises(ConfigError, match=r"train\.epochs=0: .*max_steps"):  # no epoch and no step cap
        validate(compose_cfg("train", smoke_overrides + ["train.epochs=0", "train.max_steps=-1"]))
    with pytest.raises(ConfigCompositionException, match=r"train\.lr=abc"):
        compose_cfg("train", smoke_overrides + ["train.lr=abc"])
    validate(compose_cfg("train", smoke_overrides + ["train.epochs=0", "train.max_steps=2"]))  # max_steps caps it
    assert not (out_root / "members").exists()


def test_validate_cadence_changes_when_val_runs_not_what_is_trained(train, out_root):
    """train.validate=epochs scores val after each epoch too; =end once, on the final weights. Validation never
    touches the weights, so both give the same member and the same final val metrics."""
    common = ["data=demo_pairs", "objective=pairwise", "train.max_steps=-1", "train.epochs=2",
              "train.batch_size=16", "train.save_steps=1000"]
    runs = {}
    for mode in ("epochs", "end"):
        cfg, acc = train(*common, f"train.validate={mode}", f"train.member_name=pairs-{mode}")
        out = Path(cfg.train.output_dir)
        runs[mode] = (json.loads((out / MEMBER_META).read_text()), load_file(out / "model.safetensors"))
    (every, w_every), (end, w_end) = runs["epochs"], runs["end"]
    assert [h["epoch"] for h in every["val_history"]] == [1.0, 2.0] and end["val_history"] == []
    assert every["steps"] == end["steps"] > 2
    assert all(torch.equal(w_every[k], w_end[k]) for k in w_every)
    assert every["val"] == end["val"]
