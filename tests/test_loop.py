"""The generator loop on tiny models: tune.py lowers the loss on its picks and changes the weights, the loss
covers reply tokens only, each round samples from the previous round's generator, the judge is never a
picker, a round killed mid-training resumes to the same outputs, and bad inputs are one `error:` line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT
from rewardsoup.core.config import validate
from rewardsoup.core.errors import ConfigError, DataError
from rewardsoup.data.demo import roleplay_prompts
from rewardsoup.loop import report, rounds
from rewardsoup.loop.config import roles, settings
from rewardsoup.loop.prompts import prompt_files
from rewardsoup.models.assets import resolve_model
from rewardsoup.pipeline.recipes import load_recipe
from rewardsoup.sampling import job
from rewardsoup.tuning import sft

QUICK_SAMPLE = ["generation.max_new_tokens=8", "max_length=128"]
QUICK_TUNE = ["tune.max_steps=4", "tune.save_steps=2", "tune.lr=1e-3", "tune.batch_size=2", "tune.max_length=128",
              "tune.precision=fp32"]


def _lines(path):
    return [json.loads(line) for line in open(path)]


@pytest.fixture
def picks(compose_cfg, tiny_members, tmp_path):
    """A mode=best file written by the tiny GPT-2 generator (its own family) for six role-play prompts."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in roleplay_prompts()[:6]))
    out = tmp_path / "picks.jsonl"
    cfg = compose_cfg("sample", ["logger=none", f"reward_model={tiny_members['thumbs']}", f"prompts={prompts}",
                                 f"generator={resolve_model('tiny:gpt2')}", "n=2", f"output={out}",
                                 "print_candidates=false", *QUICK_SAMPLE])
    job.sample_job(validate(cfg))
    return out


def _tune(compose_cfg, picks, output, *extra, generator=None):
    cfg = compose_cfg("tune", ["logger=none", f"generator={generator or resolve_model('tiny:gpt2')}",
                               f"picks={picks}", f"output={output}", *QUICK_TUNE, *extra])
    return sft.tune_generator(validate(cfg))


def test_tune_lowers_the_loss_on_its_picks_and_changes_the_weights(compose_cfg, picks, tmp_path):
    meta = _tune(compose_cfg, picks, tmp_path / "tuned")
    assert meta["examples"] == 6 and meta["steps"] == 4 and meta["dropped_no_reply_tokens"] == 0
    assert meta["loss_after"] < meta["loss_before"] - 0.05
    before = load_file(str(Path(resolve_model("tiny:gpt2")) / "model.safetensors"))
    after = load_file(str(tmp_path / "tuned" / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)
    saved = json.loads((tmp_path / "tuned" / sft.TUNED_META).read_text())
    assert saved["family"] == _lines(picks)[0]["generator"]["family"]  # a tuned copy keeps its family


def test_tune_with_lora_saves_plain_merged_weights(compose_cfg, picks, tmp_path):
    meta = _tune(compose_cfg, picks, tmp_path / "lora", "tune.lora.enabled=true", "tune.lora.r=4", "tune.lr=1e-2")
    after = load_file(str(tmp_path / "lora" / "model.safetensors"))
    before = load_file(str(Path(resolve_model("tiny:gpt2")) / "model.safetensors"))
    assert set(after) == set(before)  # merged into the weights: no adapter keys, loads as the source model does
    assert meta["lora"]["r"] == 4 and meta["loss_after"] < meta["loss_before"]
    assert any(not torch.equal(before[k], after[k]) for k in before if ".attn." in k)


def test_the_loss_covers_the_reply_tokens_only(compose_cfg, tmp_path):
    """A hand-made pick: the labels are -100 on every prompt token and the reply's tokens (and the end of text)
    elsewhere."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model("tiny:gpt2"))
    row = {"messages": [{"role": "user", "content": "name a colour"}], "prompt": "x",
           "generator": {"name": "tiny", "family": "f"}, "candidates": [],
           "chosen": {"index": 0, "text": "Blue, like the sea.", "reward": 1.0}}
    picks_file = tmp_path / "one.jsonl"
    picks_file.write_text(json.dumps(row) + "\n")
    rows = sft.examples(sft.read_picks(picks_file, "f"), tok)
    assert rows == [{"prompt": "\n\nHuman: name a colour\n\nAssistant:", "completion": " Blue, like the sea."}]
    cfg = validate(compose_cfg("tune", ["logger=none", f"picks={picks_file}", *QUICK_TUNE]))
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(resolve_model("tiny:gpt2"))
    trainer = sft.build_trainer(model, tok, rows, cfg.tune, tmp_path / "work", False, "t")
    batch = trainer.data_collator([trainer.train_dataset[0]])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    n_prompt = len(tok(rows[0]["prompt"])["input_ids"])
    assert labels[:n_prompt] == [-100] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:]
    assert tok.decode(ids[n_prompt:]) == " Blue, like the sea." + tok.eos_token


def _loop_settings(tiny_members, **changes):
    raw = {"rounds": 2, "n": 2, "generator": resolve_model("tiny:gpt2"), "pickers": {"thumbs": "thumbs"},
           "judge": "pairs", "seed": 0, "train_count": 6, "heldout_count": 5, "sample": QUICK_SAMPLE,
           "tune": QUICK_TUNE, **changes}
    return settings(raw, "test")


def _run_loop(compose_cfg, tiny_members, folder, loop=None):
    loop = loop or _loop_settings(tiny_members)
    pickers, judge = roles(loop, tiny_members)

    def stage(title, done, work):
        if done is None or not done.exists():
            work()

    rounds.Loop(loop, pickers, judge, folder, compose_cfg, stage, {"sample": ["logger=none"], "tune": ["logger=none"]}).run()
    scfg = validate(compose_cfg("sample", ["logger=none", f"reward_model={judge}", *QUICK_SAMPLE]))
    return report.judge_loop(loop, pickers, judge, folder, scfg)


def test_each_round_samples_from_the_previous_rounds_generator_and_is_judged(compose_cfg, tiny_members, tmp_path):
    folder = tmp_path / "loop"
    result = _run_loop(compose_cfg, tiny_members, folder)
    first, second = _lines(folder / "thumbs" / "round-1" / "picks.jsonl"), _lines(folder / "thumbs" / "round-2" / "picks.jsonl")
    assert {r["generator"]["name"] for r in first} == {resolve_model("tiny:gpt2")}
    assert {r["generator"]["name"] for r in second} == {str(folder / "thumbs" / "round-1" / "generator")}
    tuned = json.loads((folder / "thumbs" / "round-2" / "generator" / sft.TUNED_META).read_text())
    assert tuned["source"] == str(folder / "thumbs" / "round-1" / "generator")
    held = _lines(folder / "thumbs" / "round-2" / "heldout.jsonl")
    assert {r["generator"]["name"] for r in held} == {str(folder / "thumbs" / "round-2" / "generator")}
    train = {json.dumps(r["messages"]) for r in first}
    assert len(held) == 5 and not train & {json.dumps(r["messages"]) for r in held}
    assert [r["round"] for r in result["rows"]] == [0, 1, 2]
    assert "judge win rate vs round 0" in (folder / "table.md").read_text() and (folder / "loop.png").stat().st_size
    win = result["rows"][2]["judge_vs_round0"]
    assert 0 <= win["lo"] <= win["win_rate"] <= win["hi"] <= 1 and win["n"] == 5


def test_a_round_killed_while_tuning_resumes_to_the_same_outputs(compose_cfg, tiny_members, tmp_path, monkeypatch):
    loop = _loop_settings(tiny_members, rounds=1)
    whole = tmp_path / "whole"
    _run_loop(compose_cfg, tiny_members, whole, loop)

    from transformers import TrainerCallback

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 3:  # after the checkpoint of step 2
                raise KeyboardInterrupt("killed")

    built = sft.build_trainer

    def killed(*a, **kw):
        trainer = built(*a, **kw)
        trainer.add_callback(Kill())
        return trainer

    cut = tmp_path / "cut"
    monkeypatch.setattr(sft, "build_trainer", killed)
    with pytest.raises(KeyboardInterrupt):
        _run_loop(compose_cfg, tiny_members, cut, loop)
    assert not (cut / "thumbs" / "round-1" / "generator").exists()
    monkeypatch.setattr(sft, "build_trainer", built)
    _run_loop(compose_cfg, tiny_members, cut, loop)
    meta = json.loads((cut / "thumbs" / "round-1" / "generator" / sft.TUNED_META).read_text())
    assert meta["resumed_from"].endswith("checkpoint-2")
    a = load_file(str(whole / "thumbs" / "round-1" / "generator" / "model.safetensors"))
    b = load_file(str(cut / "thumbs" / "round-1" / "generator" / "model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    for name in ("thumbs/round-1/picks.jsonl", "thumbs/round-1/heldout.jsonl"):
        assert (whole / name).read_text().replace(str(whole), "") == (cut / name).read_text().replace(str(cut), "")


def test_the_judge_is_never_a_picker(tiny_members):
    with pytest.raises(ConfigError, match="loop.judge='thumbs' is also picker 'thumbs'"):
        roles(_loop_settings(tiny_members, judge="thumbs"), tiny_members)
    with pytest.raises(ConfigError, match="loop.judge=.* is also picker 'a'"):
        roles(_loop_settings(tiny_members, pickers={"a": "thumbs"}, judge=str(tiny_members["thumbs"])), tiny_members)


def test_a_recipe_takes_its_base_recipes_stages(tmp_path, monkeypatch):
    demo, looped = load_recipe("demo"), load_recipe("demo_loop", ["loop.rounds=3"])
    assert (looped.members, looped.alternatives, looped.merge, looped.train) == (demo.members, demo.alternatives,
                                                                                 demo.merge, demo.train)
    assert demo.loop is None and not looped.sample and looped.loop.rounds == 3 and looped.loop.judge == "multitask"
    with pytest.raises(ConfigError, match="has no loop"):
        load_recipe("demo", ["loop.rounds=1"])
    with pytest.raises(ConfigError, match=r"loop.roundz"):
        load_recipe("demo_loop", ["loop.roundz=1"])


def test_bad_loop_settings_name_the_field(tiny_members, tmp_path):
    with pytest.raises(ConfigError, match=r"loop.rounds=0: must be >= 1"):
        _loop_settings(tiny_members, rounds=0)
    with pytest.raises(ConfigError, match=r"loop.rounds=0: must be >= 1"):
        load_recipe("demo_loop", ["loop.rounds=0"])
    with pytest.raises(ConfigError, match="loop.pickers.x='nobody': not 'soup', a member"):
        roles(_loop_settings(tiny_members, pickers={"x": "nobody"}), tiny_members)
    train, held = tmp_path / "train.jsonl", tmp_path / "held.jsonl"
    train.write_text('{"prompt": "a"}\n{"prompt": "b"}\n')
    held.write_text('{"prompt": "c"}\n{"prompt": "b"}\n')
    loop = _loop_settings(tiny_members, train_prompts=str(train), heldout_prompts=str(held))
    with pytest.raises(DataError, match=f"{held}, line 2: this held-out prompt is also train prompt {train}, line 2"):
        prompt_files(loop, tmp_path / "loop")
    assert not (tmp_path / "loop").exists()


def test_tune_refuses_another_family_and_an_empty_file(compose_cfg, picks, tmp_path):
    llama = resolve_model("tiny:llama")
    with pytest.raises(DataError, match="line 1: written by generator .* but the generator being tuned is of family"):
        _tune(compose_cfg, picks, tmp_path / "x", generator=llama)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    proc = subprocess.run([sys.executable, str(ROOT / "tune.py"), f"picks={empty}", "logger=none",
                           f"generator={resolve_model('tiny:gpt2')}", f"output={tmp_path / 'y'}"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: picks file '{empty}' is empty; expected one JSON object per line"]
    assert not (tmp_path / "y").exists() and not (tmp_path / ".y.work").exists()


def test_the_pipeline_stops_on_a_bad_loop_before_any_work(tmp_path):
    root = tmp_path / "out"
    for arg, message in (("loop.rounds=0", "loop.rounds=0: must be >= 1"),
                         ("loop.judge=soup", "loop.judge='soup' is also picker 'soup'")):
        proc = subprocess.run([sys.executable, "-m", "rewardsoup.pipeline", "--recipe", "demo_loop", arg,
                               f"paths.root={root}", "logger=none"], capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 1 and message in proc.stderr and proc.stderr.count("error:") == 1, proc.stderr
        assert not root.exists()
