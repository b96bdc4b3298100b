"""The one scoring path: batching and sorting change nothing, and scalar_score equals the HF pipeline."""

import numpy as np
import pytest

from rewardsoup.models.loading import load_scorer
from rewardsoup.scoring.rewards import scalar_score, score_ids, score_pairs, score_texts, tokenize

TEXTS = ["Best Friend Steve: Hey it's me, your best friend.",
         "Best Friend Steve: I am at best apathetic towards your presence.",
         "a", "User: tell me a story\nBot: " + "once upon a time " * 20]


def test_batched_sorted_scores_equal_one_by_one(tiny_members):
    model, tok = load_scorer(tiny_members["thumbs"])
    batched = score_texts(model, tok, TEXTS, 64, batch_size=3)
    single = np.array([score_texts(model, tok, [t], 64, batch_size=1)[0] for t in TEXTS])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    chosen, rejected = score_pairs(model, tok, TEXTS[:2], TEXTS[2:], 64)
    np.testing.assert_allclose(np.concatenate([chosen, rejected]), batched, atol=1e-5)


def test_scalar_score_equals_the_transformers_pipeline(tiny_members):
    from transformers import pipeline

    path = str(tiny_members["thumbs"])
    ours = scalar_score(path, TEXTS)
    clf = pipeline("text-classification", model=path)
    theirs = [r["score"] for r in clf(TEXTS)]
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert all(0 < p < 1 for p in ours)


def test_scores_read_the_last_real_token_whatever_the_padding(tiny_members):
    model, tok = load_scorer(tiny_members["pairs"])
    ids = tokenize(tok, TEXTS, 64).ids
    alone = score_ids(model, [ids[0]], tok.pad_token_id)
    padded_batch = score_ids(model, [ids[0], ids[3]], tok.pad_token_id)  # ids[0] gets right padding
    assert alone[0] == pytest.approx(padded_batch[0], abs=1e-5)


def test_repeated_texts_run_once_and_sets_are_scored_together(tiny_members):
    from rewardsoup.scoring.metrics import EvalSet, score_evalset, score_evalsets

    model, tok = load_scorer(tiny_members["thumbs"])
    ids = tokenize(tok, TEXTS, 64).ids
    calls = []
    real_forward = model.forward
    model.forward = lambda *a, **k: calls.append(k["input_ids"].shape[0]) or real_forward(*a, **k)
    try:
        binary = EvalSet("b", "binary", ids, np.array([1, 0, 1, 0]))
        pairs = EvalSet("p", "pairwise", [ids[0], ids[2], ids[1], ids[3]], None)  # the same texts, as pairs
        together = score_evalsets(model, [binary, pairs], tok.pad_token_id, batch_size=2)
    finally:
        model.forward = real_forward
    assert sum(calls) == len(TEXTS)  # 8 sequences asked for, 4 distinct ones run
    for es, scored in zip([binary, pairs], together):
        assert scored.evalset is es
        np.testing.assert_allclose(scored.rewards, score_evalset(model, es, tok.pad_token_id, 1).rewards, atol=1e-5)


def test_load_scorer_refuses_a_causal_lm():
    from rewardsoup.core.errors import ModelError
    from rewardsoup.models.assets import tiny_model_dir

    with pytest.raises(ModelError, match="one logit"):
        load_scorer(tiny_model_dir("gpt2"))
