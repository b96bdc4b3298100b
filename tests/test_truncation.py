"""Joint truncation (conf/scoring `truncation: joint`): a long row's texts take one common left cut, so every
reply is judged against the same context; texts that fit are unchanged; a reply longer than max_length falls
back to independent truncation. Real GPT-2 tokenizer, tiny GPT-2 scorer."""

import numpy as np
import pytest
import torch
from conftest import CONF
from hydra import compose, initialize_config_dir

from rewardsoup.core.config import problems
from rewardsoup.models.assets import gpt2_tokenizer_dir, load_gpt2_tokenizer
from rewardsoup.scoring import evalsets
from rewardsoup.scoring.evalsets import cache_key, load_evalset
from rewardsoup.scoring.metrics import score_evalsets, take_rows
from rewardsoup.scoring.prefix import score_groups, score_text_groups
from rewardsoup.scoring.rewards import score_ids, tokenize
from rewardsoup.scoring.truncation import MODES, common_prefix, truncate
from rewardsoup.search import proxy

PROMPT = ("\n\nHuman: My neighbour keeps parking in front of my driveway and I cannot get my car out in the "
          "morning. I have asked twice already. What can I do about it without starting a fight?\n\nAssistant:")
SHORT = " Leave a polite note on the windshield."
LONG = (" Talk to them calmly first; most people simply do not notice. If that fails, check the local rules "
        "on blocking a driveway and ask the council to paint a line.")


@pytest.fixture(scope="module")
def tok():
    return load_gpt2_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    torch.manual_seed(0)
    pad = tok.eos_token_id
    m = GPT2ForSequenceClassification(GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=512, vocab_size=50257,
                                                 num_labels=1, pad_token_id=pad, bos_token_id=pad, eos_token_id=pad))
    torch.nn.init.normal_(m.score.weight, std=1.0)  # a visible spread of rewards
    return m.float().eval()


def _full(tok, texts):
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


def test_a_long_pair_keeps_one_context_and_both_full_replies(tok):
    texts = [PROMPT + SHORT, PROMPT + LONG]
    full = _full(tok, texts)
    p = common_prefix(full)
    max_length = len(full[1]) - 10  # the long side needs a cut of 10 prompt tokens; the short side fits
    assert len(full[0]) <= max_length < len(full[1]) and p > 10
    joint = tokenize(tok, texts, max_length, [(0, 1)], "joint")
    assert (joint.truncated, joint.joint, joint.fallback) == (2, 1, 0)  # the short side is cut too
    assert [len(s) for s in joint.ids] == [len(full[0]) - 10, max_length]
    assert joint.ids[0][: p - 10] == joint.ids[1][: p - 10] == full[0][10:p]  # the same kept prefix
    for ids, f, reply in zip(joint.ids, full, (SHORT, LONG)):
        assert ids == f[10:] and ids[-(len(f) - p):] == f[p:]  # whole continuation kept
        assert tok.decode(ids).endswith(reply)
    independent = tokenize(tok, texts, max_length)
    assert independent.ids[0] == full[0] and independent.truncated == 1  # the short side kept more context


def test_texts_that_fit_are_unchanged(tok):
    texts = [PROMPT + SHORT, PROMPT + LONG, "lonely text"]
    full = _full(tok, texts)
    for mode in ("independent", "joint"):
        out = tokenize(tok, texts, max(map(len, full)), [(0, 1)], mode)
        assert out.ids == full and (out.truncated, out.joint, out.fallback) == (0, 0, 0)


def test_a_reply_longer_than_max_length_falls_back_to_independent(tok):
    texts = [PROMPT + SHORT, PROMPT + LONG, PROMPT + SHORT + " Then wait.", PROMPT + LONG + " Then wait."]
    full = _full(tok, texts)
    continuation = len(full[1]) - common_prefix(full[:2])
    max_length = continuation - 3  # pair (0, 1): the long reply alone does not fit
    joint = tokenize(tok, texts, max_length, [(0, 1), (2, 3)], "joint")
    independent = tokenize(tok, texts, max_length)
    assert joint.ids == independent.ids and joint.fallback == 2 and joint.joint == 0
    assert joint.truncated == independent.truncated == 4
    assert all(len(s) == max_length for s in joint.ids)


def test_best_of_n_group_and_texts_outside_groups(tok):
    texts = [PROMPT + SHORT, PROMPT + LONG, PROMPT + " No.", PROMPT * 3]
    full = _full(tok, texts)
    max_length = len(full[1]) - 20
    out = tokenize(tok, texts, max_length, [range(0, 3)], "joint")
    p = common_prefix(full[:3])
    assert all(s[: p - 20] == full[0][20:p] for s in out.ids[:3]) and max(len(s) for s in out.ids) == max_length
    assert out.ids[3] == full[3][-max_length:]  # in no group: cut on its own
    assert (out.joint, out.fallback, out.truncated) == (1, 0, 4)


def test_bad_arguments(tok):
    with pytest.raises(ValueError, match="one of independent, joint"):
        truncate([[1, 2]], 1, (), "both")
    with pytest.raises(ValueError, match="disjoint"):
        truncate([[1, 2], [1, 3], [1, 4]], 1, [(0, 1), (1, 2)], "joint")


def test_config_rule(compose_cfg):
    cfg = compose_cfg("evaluate", ["scoring.truncation=both"])
    assert problems(cfg) == ["scoring.truncation=both: expected one of independent, joint"]
    assert compose_cfg("merge").scoring.truncation == "independent"  # off by default


@pytest.fixture(scope="module")
def harmless(tmp_path_factory):
    """demo_harmless val at max_length 64 in both modes, through the disk cache: (cache dir, data, sets)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        data = compose(config_name="train", overrides=["data=demo_harmless"]).data
    cache, saved = tmp_path_factory.mktemp("cache"), dict(evalsets._MEMORY)
    evalsets._MEMORY.clear()
    sets = {mode: load_evalset("h", data, "val", gpt2_tokenizer_dir(), 64, cache, mode) for mode in MODES}
    evalsets._MEMORY.clear()
    evalsets._MEMORY.update(saved)
    return cache, data, sets


def test_cache_key_and_entries_differ_by_mode(harmless, monkeypatch):
    cache, data, built = harmless
    tdir = gpt2_tokenizer_dir()
    keys = {mode: cache_key(tdir, data, "val", 64, mode) for mode in MODES}
    assert keys["independent"] != keys["joint"] and keys["independent"] == cache_key(tdir, data, "val", 64)
    assert sorted(p.stem for p in (cache / "evalsets").glob("*.json")) == sorted(keys.values())
    assert built["joint"].joint > 0 and built["independent"].joint == 0
    assert built["joint"].ids != built["independent"].ids
    monkeypatch.setattr(evalsets, "_MEMORY", {})
    monkeypatch.setattr(evalsets, "build_evalset", lambda *a: pytest.fail("should come from the disk cache"))
    for mode in MODES:
        again = load_evalset("h", data, "val", tdir, 64, cache, mode)
        assert (again.ids, again.joint, again.fallback) == (built[mode].ids, built[mode].joint, built[mode].fallback)


def test_shared_prefix_scoring_of_joint_ids(harmless, model, tok):
    texts = [PROMPT + SHORT, PROMPT + LONG, PROMPT + " Ask them.", PROMPT + LONG + " Or move."]
    max_length = len(_full(tok, texts)[3]) - 12
    groups = [(0, 1), (2, 3)]
    fallback = {}
    for mode in MODES:
        ids = tokenize(tok, texts, max_length, groups, mode).ids
        shared, stats = score_groups(model, ids, groups, tok.eos_token_id, 2)
        np.testing.assert_allclose(shared, score_ids(model, ids, tok.eos_token_id, 2), atol=1e-4, rtol=0)
        np.testing.assert_allclose(score_text_groups(model, tok, texts, groups, max_length, 2, True, mode), shared,
                                   atol=1e-4, rtol=0)
        fallback[mode] = stats.fallback
    assert fallback == {"independent": 4, "joint": 0}  # independent cuts left no common prefix
    es = take_rows(harmless[2]["joint"], np.arange(24))  # real rows, jointly cut: few, so the test stays fast
    on, off = (score_evalsets(model, [es], tok.eos_token_id, 8, share)[0].rewards for share in (True, False))
    np.testing.assert_allclose(on, off, atol=1e-4, rtol=0)


def test_the_setting_reaches_the_proxy_and_its_rewards_cache(compose_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(evalsets, "_MEMORY", {})
    (tmp_path / "member").mkdir()
    (tmp_path / "member" / "config.json").write_text("{}")
    request = {"base": str(gpt2_tokenizer_dir()), "members": {"m": str(tmp_path / "member")}}
    drop = ["~datasets.demo_pairs", "~datasets.demo_thumbs"]  # demo_harmless alone: each set is built per mode
    cfgs = {mode: compose_cfg("merge", ["trial.max_length=64", f"scoring.truncation={mode}"] + drop) for mode in MODES}
    assert proxy.rewards_path(cfgs["independent"], request) != proxy.rewards_path(cfgs["joint"], request)
    sets = {mode: proxy.val_evalsets(cfg, request["base"]) for mode, cfg in cfgs.items()}
    assert sets["joint"]["demo_harmless"].joint > 0 and sets["independent"]["demo_harmless"].joint == 0
