"""The one scoring path: batching and sorting change nothing, and scalar_score equals the HF pipeline."""

import numpy as np
import pytest

from rewardsoup.scoring import load_scorer, scalar_score, score_ids, score_pairs, score_texts, tokenize

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


def test_load_scorer_refuses_a_causal_lm():
    from rewardsoup.errors import ModelError
    from rewardsoup.models import tiny_model_dir

    with pytest.raises(ModelError, match="one logit"):
        load_scorer(tiny_model_dir("gpt2"))
