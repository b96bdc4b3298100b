"""Best-of-N on tiny models: output shape, argmax, same rendering and scores as scalar_score, seeding,
rerank without a generator, preference data that trains, best-of-n accuracy, and clear bad-input errors."""

import json
import logging
import subprocess
import sys

import numpy as np
import pytest
from datasets import Dataset
from omegaconf import open_dict

from conftest import ROOT
from rewardsoup.evaluation import best_of_n
from rewardsoup.sampling import generation, job
from rewardsoup.data import load_splits
from rewardsoup.data.render import render_conversation
from rewardsoup.core.config import validate
from rewardsoup.core.errors import ConfigError, DataError, ModelError
from rewardsoup.models.assets import resolve_model
from rewardsoup.scoring.rewards import scalar_score

PROMPTS = [
    {"prompt": "How do I boil an egg?"},
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
                  {"role": "user", "content": "Tell me a joke."}]},
    {"messages": [{"role": "assistant", "content": "Hey it's me, your best friend.", "name": "Best Friend Steve"},
                  {"role": "user", "content": "let's go on an adventure", "name": "User"}]},
]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _lines(path):
    return [json.loads(line) for line in open(path)]


@pytest.fixture
def prompts_file(tmp_path):
    return _jsonl(tmp_path / "prompts.jsonl", PROMPTS)


@pytest.fixture
def sample(compose_cfg, tiny_members):
    """sample("n=3", ...) -> (cfg, summary): a run with the tiny GPT-2 generator and the thumbs member."""

    def _sample(*overrides):
        cfg = compose_cfg("sample", ["logger=none", f"reward_model={tiny_members['thumbs']}",
                                     f"generator={resolve_model('tiny:gpt2')}", "generation.max_new_tokens=8",
                                     "print_candidates=false", "max_length=128", *overrides])
        return cfg, job.sample_job(validate(cfg))  # the value rules first, as run_job applies them

    return _sample


def test_output_lines_hold_every_candidate_and_the_argmax(sample, prompts_file, out_root, caplog):
    generation._GENERATORS.clear()
    with caplog.at_level(logging.WARNING, logger="rewardsoup.sampling.generation"):
        cfg, summary = sample(f"prompts={prompts_file}", "n=3", "generation.batch_prompts=2")
    assert [r.getMessage().count("no chat template") for r in caplog.records] == [1]  # said once, 2 batches
    out = out_root / "samples" / "prompts-best-n3-seed0.jsonl"
    assert summary["output"] == str(out) and summary["prompts"] == 3
    rows = _lines(out)
    assert len(rows) == 3
    for row, given in zip(rows, PROMPTS):
        assert set(row) == {"where", "messages", "prompt", "generator", "candidates", "chosen"}
        assert row["generator"] == {"name": resolve_model("tiny:gpt2"),
                                    "family": generation.load_generator(resolve_model("tiny:gpt2")).family}
        assert len(row["candidates"]) == 3 and all(isinstance(c["reward"], float) for c in row["candidates"])
        rewards = [c["reward"] for c in row["candidates"]]
        assert row["chosen"]["index"] == int(np.argmax(rewards))
        assert row["chosen"]["text"] == row["candidates"][row["chosen"]["index"]]["text"]
        assert row["chosen"]["reward"] == max(rewards)
    assert rows[0]["prompt"] == "\n\nHuman: How do I boil an egg?\n\nAssistant:"
    assert rows[2]["prompt"].endswith("\n\nUser: let's go on an adventure\n\nBest Friend Steve:")  # Chai names


def test_rewards_equal_scalar_score_on_the_training_rendering(sample, prompts_file, tiny_members):
    cfg, summary = sample(f"prompts={prompts_file}", "n=2")
    rows = _lines(summary["output"])
    texts, rewards = [], []
    for row in rows:
        name = next((m["name"] for m in row["messages"][::-1] if m["role"] == "assistant" and m.get("name")), None)
        for cand in row["candidates"]:
            reply = {"role": "assistant", "content": cand["text"], **({"name": name} if name else {})}
            texts.append(render_conversation(row["messages"] + [reply]))
            rewards.append(cand["reward"])
            assert texts[-1] == row["prompt"] + " " + cand["text"]
    assert texts[-1].startswith("\n\nBest Friend Steve: Hey it's me")
    probs = scalar_score(tiny_members["thumbs"], texts, max_length=128)
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-np.array(rewards))), atol=1e-6)


def test_same_seed_gives_the_same_candidates(sample, prompts_file, tmp_path):
    def candidates(seed, name):
        _, summary = sample(f"prompts={prompts_file}", f"seed={seed}", f"output={tmp_path / name}")
        return [[c["text"] for c in row["candidates"]] for row in _lines(summary["output"])]

    first = candidates(0, "a.jsonl")
    assert candidates(0, "b.jsonl") == first
    assert candidates(1, "c.jsonl") != first


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_shared_prefill_samples_what_num_return_sequences_samples(arch):
    from transformers import set_seed

    from rewardsoup.sampling.prompts import cli_prompts

    gen = generation.load_generator(resolve_model(f"tiny:{arch}"), "float32")
    items = cli_prompts(["hi", "a much longer question about the moon, its phases and tides"])  # left padding
    cfg = {"max_new_tokens": 6, "temperature": 0.9, "top_p": 0.95, "max_prompt_length": 64}
    set_seed(0)
    shared = generation.generate_replies(gen, items, 3, {**cfg, "share_prompt": True})
    set_seed(0)
    assert generation.generate_replies(gen, items, 3, {**cfg, "share_prompt": False}) == shared
    assert [len(r) for r in shared] == [3, 3]


def test_command_line_prompts_one_or_a_list(sample):
    _, one = sample("prompt=hello there", "n=2")
    _, two = sample("prompt=[first question,second question]", "n=2", "output=${paths.root}/two.jsonl")
    assert one["prompts"] == 1 and two["prompts"] == 2
    assert [r["messages"][0]["content"] for r in _lines(two["output"])] == ["first question", "second question"]


def test_rerank_picks_the_argmax_without_loading_a_generator(sample, tmp_path, monkeypatch, tiny_members):
    def no_generator(*args, **kwargs):
        raise AssertionError("rerank must not load a generator")

    monkeypatch.setattr(job, "load_generator", no_generator)
    rows = [{"prompt": "Say something nice.", "candidates": ["You are great!", "No.", "Have a lovely day, friend."]},
            {"messages": PROMPTS[2]["messages"], "candidates": ["Sure, let's go!", "I cannot continue."]}]
    _, summary = sample(f"candidates={_jsonl(tmp_path / 'cands.jsonl', rows)}")
    out = _lines(summary["output"])
    assert summary["output"].endswith("cands-best-rerank.jsonl")
    for row, given in zip(out, rows):
        assert [c["text"] for c in row["candidates"]] == given["candidates"]
        texts = [row["prompt"] + " " + c for c in given["candidates"]]
        probs = np.array(scalar_score(tiny_members["thumbs"], texts, 128))
        rewards = np.log(probs / (1 - probs))
        assert row["chosen"]["index"] == int(np.argmax(rewards))
        np.testing.assert_allclose([c["reward"] for c in row["candidates"]], rewards, atol=1e-4)


def test_preferences_mode_writes_canonical_pairs_that_train(sample, tmp_path, compose_cfg, tiny_base_dir):
    from rewardsoup.training.member import train_member

    prompts = _jsonl(tmp_path / "many.jsonl", [{"prompt": f"Question number {i}: what is {i} + {i}?"}
                                               for i in range(16)])
    _, best = sample(f"prompts={prompts}", "n=3", "output=${paths.root}/best.jsonl")
    _, prefs = sample(f"prompts={prompts}", "n=3", "mode=preferences")
    pairs = _lines(prefs["output"])
    assert prefs["output"].endswith("many-preferences-n3-seed0.jsonl") and 0 < len(pairs) <= 16
    by_prompt = {row["prompt"]: row for row in _lines(best["output"])}  # same seed -> same candidates
    for pair in pairs:
        assert set(pair) == {"prompt", "chosen", "rejected", "margin"}
        row = by_prompt[pair["prompt"]]
        rewards = {" " + c["text"]: c["reward"] for c in row["candidates"]}
        assert pair["chosen"] == " " + row["chosen"]["text"]
        assert pair["margin"] == pytest.approx(rewards[pair["chosen"]] - rewards[pair["rejected"]])
        assert pair["margin"] == pytest.approx(max(rewards.values()) - min(rewards.values()))
    data = {"name": "bon_prefs", "adapter": "local_pairs", "source": prefs["output"],
            "split": {"val": 0.3, "test": 0.0}}
    splits = load_splits(data)
    assert splits.schema == "pairwise" and len(splits.train) + len(splits.val) == len(pairs)
    cfg = compose_cfg("train", ["experiment=smoke", f"model.base_dir={tiny_base_dir}", "data=local_pairs",
                                f"data.source={prefs['output']}", "data.split.val=0.3", "data.split.test=0.0",
                                "objective=pairwise", "train.max_steps=2", "train.batch_size=4"])
    acc = train_member(cfg)
    assert 0.0 <= acc <= 1.0


def test_group_pairs_by_prompt_and_best_of_n_accuracy():
    ds = Dataset.from_list([
        {"prompt": "A", "chosen": "a+", "rejected": "a1"}, {"prompt": "A", "chosen": "a+", "rejected": "a2"},
        {"prompt": "A", "chosen": "a+", "rejected": "a2"},  # duplicate rejected: counted once
        {"prompt": "B", "chosen": "b+", "rejected": "b1"},
        {"prompt": "C", "chosen": "c+", "rejected": "c1"}, {"prompt": "C", "chosen": "c-other", "rejected": "c2"},
        {"prompt": "", "chosen": "x", "rejected": "y"},
        {"prompt": "D", "chosen": "d+", "rejected": "d+"},  # no distinct rejected reply
    ])
    groups, report = best_of_n.group_pairs_by_prompt(ds)
    assert [(g.prompt, g.chosen, g.rejected) for g in groups] == [("A", "a+", ["a1", "a2"]), ("B", "b+", ["b1"])]
    assert report == {"pairs": 8, "no_prompt": 1, "inconsistent_chosen": 1, "too_few": 1, "groups": 2}
    chosen_texts = {g.prompt + g.chosen for g in groups}
    good = best_of_n.best_of_n_accuracy(groups, lambda ts: [1.0 if t in chosen_texts else 0.0 for t in ts], 200)
    bad = best_of_n.best_of_n_accuracy(groups, lambda ts: [-1.0 if t in chosen_texts else 0.0 for t in ts], 200)
    ties = best_of_n.best_of_n_accuracy(groups, lambda ts: [0.0] * len(ts), 0)
    assert (good["bon"], good["bon_lo"], good["bon_hi"]) == (1.0, 1.0, 1.0) and bad["bon"] == 0.0
    assert ties["bon"] == pytest.approx((1 / 3 + 1 / 2) / 2)  # a tie at the top shares the credit: chance
    assert good["bon_chance"] == pytest.approx((1 / 3 + 1 / 2) / 2) and good["bon_groups"] == 2
    only_a, _ = best_of_n.group_pairs_by_prompt(ds, min_candidates=3)
    assert [g.prompt for g in only_a] == ["A"]


def test_evaluate_adds_best_of_n_columns(compose_cfg, tiny_members):
    from rewardsoup.evaluation.job import evaluate_models

    cfg = compose_cfg("evaluate", ["logger=none", f"+models.pairs={tiny_members['pairs']}", "best_of_n.enabled=true",
                                   "bootstrap=50"])
    with open_dict(cfg):
        cfg.datasets = {"demo_harmless": compose_cfg("train", ["data=demo_harmless"]).data}
    row = evaluate_models(cfg)["rows"][0]
    # demo_harmless has one pair per prompt: best-of-2 equals pairwise accuracy, chance 1/2
    assert row["demo_harmless_bon"] == pytest.approx(row["demo_harmless"])
    assert row["demo_harmless_bon_chance"] == 0.5
    assert row["demo_harmless_bon_lo"] <= row["demo_harmless_bon"] <= row["demo_harmless_bon_hi"]


@pytest.mark.parametrize("case,error,match", [
    ("missing", ConfigError, r"prompts=.*nope.jsonl: no such file"),  # a value rule: before any model loads
    ("empty", DataError, "is empty"),
    ("malformed", DataError, r"line 2: not valid JSON"),
    ("no_prompt_field", DataError, r"line 1: expected `messages`"),
    ("bad_role", DataError, r"line 1: message 0: message role 'robot'"),
    ("bad_candidates", DataError, r"line 1: `candidates` must be a non-empty list"),
    ("n0", ConfigError, "n=0"),
    ("both", ConfigError, "exactly one of"),
    ("prefs_n1", ConfigError, "n >= 2"),
    ("causal_lm_reward", ModelError, "one logit"),
    ("classifier_generator", ModelError, "expected a causal LM"),
])
def test_bad_inputs_are_clear_errors(sample, tmp_path, prompts_file, tiny_members, case, error, match):
    args = {
        "missing": [f"prompts={tmp_path / 'nope.jsonl'}"],
        "empty": [f"prompts={_jsonl(tmp_path / 'empty.jsonl', [])}"],
        "no_prompt_field": [f"prompts={_jsonl(tmp_path / 'f.jsonl', [{'text': 'hi'}])}"],
        "bad_role": [f"prompts={_jsonl(tmp_path / 'r.jsonl', [{'messages': [{'role': 'robot', 'content': 'x'}]}])}"],
        "bad_candidates": [f"candidates={_jsonl(tmp_path / 'c.jsonl', [{'prompt': 'hi', 'candidates': []}])}"],
        "n0": [f"prompts={prompts_file}", "n=0"],
        "both": [f"prompts={prompts_file}", "prompt=hi"],
        "prefs_n1": [f"prompts={prompts_file}", "n=1", "mode=preferences"],
        "causal_lm_reward": [f"prompts={prompts_file}", f"reward_model={resolve_model('tiny:gpt2')}"],
        "classifier_generator": [f"prompts={prompts_file}", f"generator={tiny_members['pairs']}"],
    }
    if case == "malformed":
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"prompt": "ok"}\n{"prompt": "broken"\n')
        args[case] = [f"prompts={bad}"]
    with pytest.raises(error, match=match):
        sample(*args[case])


def test_sample_py_exits_nonzero_with_one_error_line(tmp_path, tiny_members, out_root):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    proc = subprocess.run([sys.executable, str(ROOT / "sample.py"), f"prompts={empty}", "logger=none",
                           f"reward_model={tiny_members['thumbs']}"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and f"error: prompts file '{empty}' is empty" in proc.stderr
