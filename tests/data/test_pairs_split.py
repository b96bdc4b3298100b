"""The pair builder's counts, and the hash split's determinism and freedom from leakage."""

import json
import os
import random
import subprocess
import sys
from collections import Counter

import pytest
from datasets import Dataset
from hydra.errors import ConfigCompositionException

from rewardsoup.data import build_pairs, load_splits, pairs_to_binary
from rewardsoup.data.schema import BINARY_FEATURES, PAIRWISE_FEATURES, pair_texts
from rewardsoup.data.split import split_dataset, split_fractions
from rewardsoup.core.config import validate
from rewardsoup.core.errors import ConfigError


def binary(rows):
    return Dataset.from_list([{"group": None, **r} for r in rows], features=BINARY_FEATURES)


def pairwise(rows):
    return Dataset.from_list([{"prompt": "", "margin": None, "group": None, **r} for r in rows], features=PAIRWISE_FEATURES)


def grouped_rows():
    spec = {"A": (3, 1), "B": (0, 2), "C": (2, 2), None: (1, 1)}
    rows = []
    for group, (n_pos, n_neg) in spec.items():
        rows += [{"text": f"{group}+{i}", "label": 1, "group": group} for i in range(n_pos)]
        rows += [{"text": f"{group}-{i}", "label": 0, "group": group} for i in range(n_neg)]
    return rows


def test_build_pairs_counts_every_row():
    pairs, report = build_pairs(binary(grouped_rows()), group_key="group", seed=0)
    assert report == {"rows": 12, "groups": 4, "pairs": 4, "unpaired_pos": 2, "unpaired_neg": 2, "groups_without_both": 1}
    assert report["rows"] == 2 * report["pairs"] + report["unpaired_pos"] + report["unpaired_neg"]
    for row in pairs:
        assert "+" in row["chosen"] and "-" in row["rejected"] and row["prompt"] == ""
        assert row["chosen"].split("+")[0] == row["rejected"].split("-")[0] == str(row["group"])
    assert Counter(pairs["group"]) == {"A": 1, "C": 2, None: 1}


def test_build_pairs_is_seeded():
    rows = [{"text": f"p{i}", "label": 1, "group": "g"} for i in range(20)]
    rows += [{"text": f"n{i}", "label": 0, "group": "g"} for i in range(20)]
    first, _ = build_pairs(binary(rows), seed=0)
    again, _ = build_pairs(binary(list(rows)), seed=0)
    other, _ = build_pairs(binary(rows), seed=1)
    assert first.to_list() == again.to_list()
    assert first.to_list() != other.to_list()
    assert sorted(first["chosen"]) == sorted(other["chosen"])


def test_build_pairs_without_group_key_uses_one_pool():
    pairs, report = build_pairs(binary(grouped_rows()), group_key=None)
    assert report["groups"] == 1 and report["pairs"] == 6 and report["unpaired_pos"] == 0 and report["unpaired_neg"] == 0


def test_pairs_to_binary():
    ds = pairwise([{"prompt": "P:", "chosen": "a", "rejected": "b", "group": "g"}])
    assert pairs_to_binary(ds).to_list() == [
        {"text": "P:a", "label": 1, "group": "g"},
        {"text": "P:b", "label": 0, "group": "g"},
    ]


def random_pairs(n=600, seed=0):
    """Pairs that share texts and prompts on purpose, so the union-find has work to do."""
    rng = random.Random(seed)
    replies = [f"reply {i}" for i in range(n // 2)]
    prompts = [f"prompt {i}: " for i in range(n // 4)] + [""] * (n // 4)
    return pairwise([
        {"prompt": rng.choice(prompts), "chosen": rng.choice(replies), "rejected": rng.choice(replies)} for _ in range(n)
    ])


def membership(parts):
    return {name: sorted(json.dumps(r, sort_keys=True) for r in ds) for name, ds in parts.items()}


def test_pairwise_split_has_no_leakage():
    ds = random_pairs()
    parts = split_dataset(ds, "pairwise", val=0.2, test=0.2, salt="s")
    assert sum(len(p) for p in parts.values()) == len(ds)
    owner_text, owner_prompt = {}, {}
    for name, part in parts.items():
        for row in part:
            for text in pair_texts(row):
                assert owner_text.setdefault(text, name) == name, f"{text!r} in two splits"
            if row["prompt"]:
                assert owner_prompt.setdefault(row["prompt"], name) == name


def test_pairs_sharing_a_text_stay_together():
    rows = [{"chosen": f"x{i}", "rejected": f"y{i}"} for i in range(200)] + [{"chosen": "y7", "rejected": "z"}]
    parts = split_dataset(pairwise(rows), "pairwise", val=0.3, test=0.3)
    home = [name for name, part in parts.items() if "y7" in part["rejected"]]
    assert home and "y7" in parts[home[0]]["chosen"]


def test_binary_duplicates_share_a_split():
    rows = [{"text": f"t{i % 50}", "label": i % 2} for i in range(300)]
    parts = split_dataset(binary(rows), "binary", val=0.3, test=0.3)
    seen = [set(part["text"]) for part in parts.values()]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])


def test_split_is_deterministic_and_order_free():
    ds = random_pairs()
    first = membership(split_dataset(ds, "pairwise", 0.1, 0.1, "salt"))
    assert first == membership(split_dataset(ds, "pairwise", 0.1, 0.1, "salt"))
    shuffled = ds.shuffle(seed=3)
    assert first == membership(split_dataset(shuffled, "pairwise", 0.1, 0.1, "salt"))
    assert first != membership(split_dataset(ds, "pairwise", 0.1, 0.1, "other salt"))


SUBPROCESS = """
import json, sys
from datasets import Dataset
from rewardsoup.data.split import split_dataset
rows = [{"text": f"text number {i}", "label": i % 2, "group": None} for i in range(400)]
parts = split_dataset(Dataset.from_list(rows), "binary", 0.2, 0.2, "salt")
print(json.dumps({k: list(v["text"]) for k, v in parts.items()}))
"""


def test_split_is_stable_across_python_hash_seeds():
    hash_seed = "1" if os.environ.get("PYTHONHASHSEED") == "12345" else "12345"
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run([sys.executable, "-c", SUBPROCESS], env=env, capture_output=True, text=True, check=True)
    there = json.loads(done.stdout.strip().splitlines()[-1])
    rows = [{"text": f"text number {i}", "label": i % 2} for i in range(400)]
    here = {k: list(v["text"]) for k, v in split_dataset(binary(rows), "binary", 0.2, 0.2, "salt").items()}
    assert there == here
    assert 40 <= len(here["val"]) <= 120 and 40 <= len(here["test"]) <= 120


@pytest.mark.parametrize("overrides", [["data.split.val=-0.1"], ["data.split.val=0.5", "data.split.test=0.5"]])
def test_bad_fractions_are_config_errors(compose_cfg, overrides):
    with pytest.raises(ConfigError, match=r"data\.split"):  # the rules of data/config.py's SplitConfig
        validate(compose_cfg("train", overrides))


def test_a_fraction_that_is_no_number_fails_to_compose(compose_cfg):
    with pytest.raises(ConfigCompositionException) as err:
        compose_cfg("train", ["data.split.test=lots"])
    assert "data.split.test" in str(err.value.__cause__)


def test_split_fraction_defaults():
    assert split_fractions(None) == (0.1, 0.1, "rewardsoup")
    assert split_fractions({"val": 0, "test": 0.25, "salt": 7}) == (0.0, 0.25, "7")


def write_binary(path, n=200):
    rows = [{"text": f"msg {i}", "label": i % 3 != 0, "bot": f"bot{i % 4}"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_load_splits_builds_pairs_within_each_split(tmp_path):
    cfg = {"name": "fb", "adapter": "local_binary", "source": write_binary(tmp_path / "b.jsonl"),
           "pairs": {"group_key": "bot", "seed": 0}, "split": {"val": 0.2, "test": 0.2, "salt": "x"}}
    splits = load_splits(cfg)
    assert splits.name == "fb" and splits.schema == "pairwise"
    report = splits.report
    assert report["rows_read"] == 200 and report["split"] == {"val": 0.2, "test": 0.2, "salt": "x"}
    assert sum(r["rows"] for r in report["pairs"].values()) == 200
    for name in ("train", "val", "test"):
        part, counts = getattr(splits, name), report["pairs"][name]
        assert len(part) == counts["pairs"] == report["sizes"][name]
        assert counts["rows"] == 2 * counts["pairs"] + counts["unpaired_pos"] + counts["unpaired_neg"]
        assert all(g.startswith("bot") for g in part["group"])
    train_texts = set(splits.train["chosen"]) | set(splits.train["rejected"])
    assert not train_texts & (set(splits.test["chosen"]) | set(splits.test["rejected"]))


def test_load_splits_empty_split_is_reported_not_raised(tmp_path):
    splits = load_splits({"adapter": "local_binary", "source": write_binary(tmp_path / "b.jsonl", 20),
                          "split": {"val": 0.0, "test": 0.0}})
    assert splits.schema == "binary" and splits.report["sizes"] == {"train": 20, "val": 0, "test": 0}


def test_pairs_on_a_pairwise_source_is_a_config_error(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"chosen": "a", "rejected": "b"}) + "\n")
    with pytest.raises(ConfigError, match="pairs only applies to binary"):
        load_splits({"adapter": "local_pairs", "source": str(path), "pairs": {"group_key": "group"}})


def test_load_splits_accepts_omegaconf(tmp_path):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"adapter": "local_binary", "source": write_binary(tmp_path / "b.jsonl", 30),
                            "pairs": None, "split": {"val": 0.1, "test": 0.1, "salt": "rewardsoup"}})
    assert sum(load_splits(cfg).report["sizes"].values()) == 30
