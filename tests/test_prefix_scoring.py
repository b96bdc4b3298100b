"""Shared-prefix scoring equals the full-text path on the tiny Llama and tiny GPT-2 (real GPT-2 tokenizer)."""

import numpy as np
import pytest
import torch

from rewardsoup.models.assets import load_gpt2_tokenizer
from rewardsoup.scoring.prefix import PrefixStats, score_groups
from rewardsoup.scoring.rewards import score_ids, tokenize

PROMPT = ("\n\nHuman: My neighbour keeps parking in front of my driveway and I cannot get my car out in the "
          "morning. What can I do about it without starting a fight?\n\nAssistant:")
REPLIES = [" Talk to them calmly first; most people simply do not notice.",
           " Leave a polite note on the windshield explaining the problem.",
           " Call the police and have the car towed right away.",
           " I am not sure, sorry."]
OTHER = "\n\nHuman: How do I boil an egg so the yolk stays soft in the middle?\n\nAssistant: Six minutes."


@pytest.fixture(scope="module")
def tok():
    return load_gpt2_tokenizer()


def _model(arch: str, pad_id: int):
    from transformers import GPT2Config, GPT2ForSequenceClassification, LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(0)
    common = dict(vocab_size=50257, num_labels=1, pad_token_id=pad_id, bos_token_id=pad_id, eos_token_id=pad_id)
    if arch == "gpt2":
        model = GPT2ForSequenceClassification(GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=512, **common))
    else:
        model = LlamaForSequenceClassification(LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=512, **common))
    torch.nn.init.normal_(model.score.weight, std=1.0)  # a visible spread of rewards
    return model.float().eval()


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model(request, tok):
    return _model(request.param, tok.eos_token_id)


def _check(model, tok, texts, groups, max_length=256, batch_size=4, min_prefix=16) -> PrefixStats:
    ids = tokenize(tok, texts, max_length).ids
    full = score_ids(model, ids, tok.eos_token_id, batch_size)
    shared, stats = score_groups(model, ids, groups, tok.eos_token_id, batch_size, min_prefix)
    np.testing.assert_allclose(shared, full, atol=1e-4, rtol=0)
    assert np.std(full) > 1e-3 or len(set(map(tuple, ids))) == 1  # the check compares distinct numbers
    return stats


def test_pairs_with_a_shared_prompt_share_it(model, tok):
    texts = [PROMPT + REPLIES[0], PROMPT + REPLIES[1], PROMPT + REPLIES[2], PROMPT + REPLIES[3]]
    stats = _check(model, tok, texts, [(0, 1), (2, 3)])
    assert (stats.shared, stats.fallback, stats.ungrouped) == (4, 0, 0)
    assert stats.tokens < stats.tokens_full and stats.token_ratio < 0.7


def test_equal_texts_and_a_text_that_is_the_others_prefix(model, tok):
    same = PROMPT + REPLIES[0]
    texts = [same, same, PROMPT, PROMPT + REPLIES[1]]  # pair 2: one side is the whole common prefix
    stats = _check(model, tok, texts, [(0, 1), (2, 3)])
    assert (stats.shared, stats.fallback, stats.ungrouped) == (2, 0, 1)  # the equal pair is one text


def test_zero_length_common_prefix_falls_back(model, tok):
    texts = [PROMPT + REPLIES[0], OTHER, "Short.", PROMPT + REPLIES[1]]
    stats = _check(model, tok, texts, [(0, 1), (2, 3)])
    assert (stats.shared, stats.fallback, stats.ungrouped) == (0, 4, 0)
    assert stats.tokens == stats.tokens_full


def test_left_truncation_shared_only_where_the_cut_kept_a_common_prefix(model, tok):
    n = [len(tok(PROMPT + r, add_special_tokens=False)["input_ids"]) for r in REPLIES]
    max_length = min(n) - 3  # every text loses its beginning
    a, b = PROMPT + " Yes, do that now.", PROMPT + " No, wait a bit."  # equal reply lengths: the same cut
    assert len(tok(a)["input_ids"]) == len(tok(b)["input_ids"])
    texts = [PROMPT + REPLIES[0], PROMPT + REPLIES[3], a, b]
    stats = _check(model, tok, texts, [(0, 1), (2, 3)], max_length=max_length)
    assert (stats.shared, stats.fallback) == (2, 2)  # pair 1 was cut at different places: no common prefix


@pytest.mark.parametrize("window_batches", [1, 32])
def test_mixed_batch_and_best_of_n_groups(model, tok, monkeypatch, window_batches):
    monkeypatch.setattr("rewardsoup.scoring.prefix.WINDOW_BATCHES", window_batches)  # 1: several windows
    bon = [PROMPT + r for r in REPLIES]  # one prompt, 4 candidates
    texts = bon + [OTHER, OTHER + " Or seven.", PROMPT + REPLIES[0], "Short.", OTHER + " Boil it.",
                   PROMPT + REPLIES[2] + "<|endoftext|>", PROMPT + " Ask a neighbour.", "lonely binary text"]
    groups = [(0, 1, 2, 3), (4, 5, 8), (6, 7), (9, 10)]
    for batch_size in (1, 3, 32):
        stats = _check(model, tok, texts, groups, batch_size=batch_size)
    # 0-3 and 4,5,8 share; text 6 equals text 0 (placed already), so group (6, 7) is "Short." alone;
    # 9 and 10 share the prompt (9 ends in the pad token: it is read where the classifier reads it)
    assert (stats.shared, stats.fallback, stats.ungrouped) == (9, 0, 2)


def test_best_of_n_groups_of_four(model, tok):
    prompts = [PROMPT, OTHER + "\n\nHuman: And a hard-boiled one, for a salad with tuna?\n\nAssistant:"]
    texts = [p + r for p in prompts for r in REPLIES]
    stats = _check(model, tok, texts, [range(0, 4), range(4, 8)], batch_size=5)
    assert stats.shared == 8 and stats.fallback == 0
    ids = tokenize(tok, texts, 256).ids
    scores, _ = score_groups(model, ids, [range(0, 4), range(4, 8)], tok.eos_token_id)
    full = score_ids(model, ids, tok.eos_token_id).reshape(2, 4)
    assert (scores.reshape(2, 4).argmax(1) == full.argmax(1)).all()


def test_min_prefix_is_configurable(model, tok):
    texts = [PROMPT + REPLIES[0], PROMPT + REPLIES[1]]
    n = len(tok(PROMPT, add_special_tokens=False)["input_ids"])
    assert _check(model, tok, texts, [(0, 1)], min_prefix=n + 50).fallback == 2
    assert _check(model, tok, texts, [(0, 1)], min_prefix=4).shared == 2


def test_other_architectures_use_the_full_text_path(tok):
    from transformers import MistralConfig, MistralForSequenceClassification

    torch.manual_seed(0)
    model = MistralForSequenceClassification(MistralConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=50257, num_labels=1, pad_token_id=tok.eos_token_id)).eval()
    stats = _check(model, tok, [PROMPT + REPLIES[0], PROMPT + REPLIES[1]], [(0, 1)])
    assert "does not apply to MistralForSequenceClassification" in stats.note
    assert stats.shared == 0 and stats.tokens == stats.tokens_full


def test_score_evalsets_with_and_without_sharing_agree(model, tok):
    from rewardsoup.scoring.metrics import EvalSet, metrics, score_evalsets

    def ids(texts):
        return tokenize(tok, texts, 256).ids

    pairs = EvalSet("p", "pairwise", ids([PROMPT + REPLIES[0], OTHER, PROMPT + REPLIES[1], OTHER + " No."]), None)
    binary = EvalSet("b", "binary", ids([PROMPT + REPLIES[2], "Short."]), np.array([1, 0]))
    multi = EvalSet("m", "multi", ids([PROMPT + r for r in REPLIES] + [OTHER, OTHER + " Or seven."]), None,
                    sizes=np.array([4, 2]), subsets=[None, "eggs"])
    off = score_evalsets(model, [pairs, binary, multi], tok.eos_token_id, 3)
    on = score_evalsets(model, [pairs, binary, multi], tok.eos_token_id, 3, share_prefix=True)
    for a, b in zip(off, on):
        np.testing.assert_allclose(b.rewards, a.rewards, atol=1e-4, rtol=0)
        assert metrics(a, bootstrap=0)["accuracy"] == metrics(b, bootstrap=0)["accuracy"]


def test_best_of_n_text_groups_agree(model, tok):
    from rewardsoup.scoring.prefix import group_sizes, score_text_groups
    from rewardsoup.scoring.rewards import score_texts

    tok.pad_token = tok.eos_token
    texts = [PROMPT + r for r in REPLIES] + [OTHER, OTHER + " Or seven."]
    full = score_texts(model, tok, texts, 256, 4)
    shared = score_text_groups(model, tok, texts, group_sizes([4, 2]), 256, 4)
    np.testing.assert_allclose(shared, full, atol=1e-4, rtol=0)
    assert list(map(list, group_sizes([4, 2]))) == [[0, 1, 2, 3], [4, 5]]


@pytest.mark.parametrize("root", ["evaluate", "merge", "sample"])
def test_one_switch_for_every_scoring_job(compose_cfg, root):
    from omegaconf import OmegaConf

    assert OmegaConf.select(compose_cfg(root), "scoring.share_prefix") is False  # off by default (measured)
    assert OmegaConf.select(compose_cfg(root, ["scoring.share_prefix=true"]), "scoring.share_prefix") is True
