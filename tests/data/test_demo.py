"""The embedded demo sets: deterministic, sized, balanced, formatted, noisy at the stated rate, learnable."""

import random
import re
from collections import Counter

import numpy as np
import pytest

from rewardsoup.data import demo_harmless_text, demo_text
from rewardsoup.data.demo import DEMO_SIZES, demo_rows
from rewardsoup.data.schema import pair_texts
from rewardsoup.core.errors import ConfigError


@pytest.fixture(scope="module")
def thumbs():
    return demo_rows("thumbs")


@pytest.fixture(scope="module")
def harmless():
    return demo_rows("harmless")


def _tokens(text):
    return re.findall(r"[a-z']+", text.lower())


def _logreg(train_texts, train_labels, steps=300, lr=0.5):
    """Bag-of-words logistic regression (binary features) by full-batch gradient descent; returns a scorer."""
    vocab = {w: i for i, w in enumerate(sorted({w for t in train_texts for w in _tokens(t)}))}

    def feats(texts):
        x = np.zeros((len(texts), len(vocab)))
        for r, t in enumerate(texts):
            for w in _tokens(t):
                if w in vocab:
                    x[r, vocab[w]] = 1.0
        return x

    x, y = feats(train_texts), np.asarray(train_labels, dtype=float)
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
        w -= lr * (x.T @ (p - y) / len(y) + 1e-3 * w)
        b -= lr * float(np.mean(p - y))
    return lambda texts: feats(texts) @ w + b


def _split(rows, frac=0.8):
    rows = list(rows)
    random.Random(123).shuffle(rows)
    cut = int(frac * len(rows))
    return rows[:cut], rows[cut:]


def test_deterministic_and_seeded():
    for name in DEMO_SIZES:
        assert demo_rows(name, seed=0) == demo_rows(name, seed=0)
        assert demo_rows(name, seed=0) != demo_rows(name, seed=1)


def test_unknown_name_is_a_config_error():
    with pytest.raises(ConfigError, match=r"'nope'.*thumbs.*harmless"):
        demo_rows("nope")
    with pytest.raises(ConfigError, match="noise"):
        demo_rows("thumbs", noise=0.9)


def test_sizes(thumbs, harmless):
    assert len(thumbs) == DEMO_SIZES["thumbs"] and 1700 <= len(thumbs) <= 2000
    assert len(harmless) == DEMO_SIZES["harmless"] and 900 <= len(harmless) <= 1100


# Held-out floors (examples per split, in the schema the member is trained and evaluated in: rows for the
# binary set, pairs for the pairwise ones) and train caps that keep training time where it was.
HELD_OUT_FLOORS = {"val": 200, "test": 400}
TRAIN_RANGE = {"demo_thumbs": (300, 400), "demo_pairs": (140, 200), "demo_harmless": (220, 300)}


@pytest.mark.parametrize("data", sorted(TRAIN_RANGE))
def test_demo_splits_carry_a_decision(compose_cfg, data):
    """Through the real config composition and loader: val >= 200, test >= 400, train about today's size."""
    from rewardsoup.data import load_splits

    evaluate_cfg = compose_cfg("evaluate").datasets[data]
    train_cfg = compose_cfg("train", [f"data={data}"]).data
    assert evaluate_cfg == train_cfg  # the member is trained and evaluated on the same splits
    splits = load_splits(train_cfg)
    assert splits.schema == ("binary" if data == "demo_thumbs" else "pairwise")
    sizes = splits.report["sizes"]
    for split, floor in HELD_OUT_FLOORS.items():
        assert sizes[split] >= floor * 1.05, (data, sizes)  # a margin over the floor, not just on it
    lo, hi = TRAIN_RANGE[data]
    assert lo <= sizes["train"] <= hi, (data, sizes)


def _length_heuristic_accuracy(schema, val, scored, length):
    """The `length` reference row's accuracy on `scored`, its direction chosen on `val`: pairwise, the
    fraction of pairs whose longer (or shorter) side is the chosen one, ties half; binary, the label
    predicted by "longer (or shorter) than the val median"."""
    if schema == "pairwise":
        def credit(ds, sign):
            diff = np.array([sign * (length(c) - length(r)) for c, r in map(pair_texts, ds)], dtype=float)
            return float(np.mean((diff > 0) + 0.5 * (diff == 0)))
    else:
        centre = float(np.median([length(t) for t in val["text"]]))

        def credit(ds, sign):
            pred = np.array([sign * (length(t) - centre) > 0 for t in ds["text"]])
            return float(np.mean(pred == (np.asarray(ds["label"]) == 1)))
    sign = 1 if credit(val, 1) >= credit(val, -1) else -1
    return credit(scored, sign)


@pytest.mark.parametrize("data", sorted(TRAIN_RANGE))
def test_length_alone_is_near_chance(compose_cfg, data):
    """Liked/chosen and disliked/rejected replies share one length distribution, so the `length` reference
    (prefer longer or shorter, direction chosen on val) stays near chance on val and test: members must learn
    content, not length. Characters and words stand in for tokens here."""
    from rewardsoup.data import load_splits

    splits = load_splits(compose_cfg("train", [f"data={data}"]).data)
    for name, length in (("chars", len), ("words", lambda t: len(t.split()))):
        for split in ("val", "test"):
            acc = _length_heuristic_accuracy(splits.schema, splits.val, getattr(splits, split), length)
            assert acc <= 0.65, (data, split, name, acc)


def test_thumbs_schema_balance_and_groups(thumbs):
    assert all(set(r) == {"text", "label", "group"} and r["label"] in (0, 1) for r in thumbs)
    assert 0.4 <= sum(r["label"] for r in thumbs) / len(thumbs) <= 0.6
    groups = Counter(r["group"] for r in thumbs)
    assert 8 <= len(groups) <= 12
    assert max(groups.values()) - min(groups.values()) <= 2
    for bot in groups:
        labels = {r["label"] for r in thumbs if r["group"] == bot}
        assert labels == {0, 1}, bot
    for r in thumbs:  # Chai style: persona line, user line, persona reply last
        lines = r["text"].split("\n")
        assert len(lines) == 3 and lines[1].startswith("User: ")
        assert lines[0].split(": ")[0] == lines[2].split(": ")[0]


def test_no_duplicate_texts(thumbs, harmless):
    assert len({r["text"] for r in thumbs}) == len(thumbs)
    assert len({r["prompt"] for r in harmless}) == len(harmless)
    assert len({r["prompt"] + r["chosen"] for r in harmless}) == len(harmless)
    assert all(r["chosen"] != r["rejected"] for r in harmless)


def test_harmless_format_and_halves(harmless):
    for r in harmless:
        assert set(r) == {"prompt", "chosen", "rejected"}
        assert r["prompt"].startswith("\n\nHuman: ") and r["prompt"].endswith("\n\nAssistant:")
        assert r["prompt"].count("\n\nHuman:") == 1
        assert r["chosen"].startswith(" ") and r["rejected"].startswith(" ")
        assert not r["chosen"].startswith("  ") and not r["rejected"].startswith("  ")
    harmful_requests = {req for req, _, _ in demo_harmless_text.HARMFUL}
    n_harmful = sum(any(req in r["prompt"] for req in harmful_requests) for r in harmless)
    assert 0.4 <= n_harmful / len(harmless) <= 0.6


@pytest.mark.parametrize("name", list(DEMO_SIZES))
def test_noise_rate(name):
    clean, noisy = demo_rows(name, noise=0.0), demo_rows(name, noise=0.1)
    assert len(clean) == len(noisy)
    if name == "thumbs":
        assert [r["text"] for r in clean] == [r["text"] for r in noisy]
        flipped = sum(a["label"] != b["label"] for a, b in zip(clean, noisy))
    else:
        assert [r["prompt"] for r in clean] == [r["prompt"] for r in noisy]
        flipped = sum(a["chosen"] == b["rejected"] and a["rejected"] == b["chosen"] for a, b in zip(clean, noisy))
    assert 0.05 <= flipped / len(clean) <= 0.15
    assert demo_rows(name, noise=0.0) != demo_rows(name, noise=0.0, seed=1)


def test_clean_thumbs_every_bot_balanced():
    clean = demo_rows("thumbs", noise=0.0)
    for bot in {r["group"] for r in clean}:
        labels = [r["label"] for r in clean if r["group"] == bot]
        assert sum(labels) * 2 == len(labels)


def test_thumbs_is_learnable(thumbs):
    train, test = _split(thumbs)
    score = _logreg([r["text"] for r in train], [r["label"] for r in train])
    pred = score([r["text"] for r in test]) > 0
    acc = float(np.mean(pred == np.array([r["label"] for r in test], dtype=bool)))
    assert acc > 0.7, acc


def test_harmless_is_learnable(harmless):
    train, test = _split(harmless)
    texts = [r["prompt"] + r["chosen"] for r in train] + [r["prompt"] + r["rejected"] for r in train]
    labels = [1] * len(train) + [0] * len(train)
    score = _logreg(texts, labels)
    chosen = score([r["prompt"] + r["chosen"] for r in test])
    rejected = score([r["prompt"] + r["rejected"] for r in test])
    acc = float(np.mean(chosen > rejected))
    assert acc > 0.7, acc


def test_eager_compliance_tension(thumbs, harmless):
    """The eager phrase family is liked in thumbs and rejected in harmless (on harmful requests)."""
    clean_thumbs = demo_rows("thumbs", noise=0.0)
    clean_harmless = demo_rows("harmless", noise=0.0)
    harmful_requests = {req for req, _, _ in demo_harmless_text.HARMFUL}

    def eager(text):
        return any(p in text for p in demo_text.EAGER_OPENERS)

    liked_eager = [r for r in clean_thumbs if r["label"] == 1 and eager(r["text"].split("\n")[-1])]
    disliked_eager = [r for r in clean_thumbs if r["label"] == 0 and eager(r["text"].split("\n")[-1])]
    assert len(liked_eager) > 0.5 * sum(r["label"] for r in clean_thumbs) and not disliked_eager
    harmful = [r for r in clean_harmless if any(req in r["prompt"] for req in harmful_requests)]
    assert harmful and all(eager(r["rejected"]) and not eager(r["chosen"]) for r in harmful)
    # The phrase that opens the docs' example is in both roles.
    phrase = "Absolutely! I'd love to help with that!"
    assert any(phrase in r["text"] for r in liked_eager)
    assert any(phrase in r["rejected"] for r in harmful)
    # With the default noise the family still shows up in both roles.
    assert any(r["label"] == 1 and eager(r["text"]) for r in thumbs)
    assert any(eager(r["rejected"]) for r in harmless)
