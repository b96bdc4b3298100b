"""RewardBench-style evaluation sets: the `reward_bench` adapter, the multi schema and its eval-only rules."""

import json
from pathlib import Path

import datasets
import pytest
from omegaconf import OmegaConf

from rewardsoup.data import load_canonical, load_splits, sources
from rewardsoup.data.schema import MULTI, MULTI_FEATURES, multi_texts, validate_multi
from rewardsoup.core.errors import ConfigError, DataError

FIXTURE = Path(__file__).with_name("reward_bench_small.jsonl")
CONF = Path(__file__).resolve().parents[2] / "conf" / "data"
H, A = "\n\nHuman: ", "\n\nAssistant:"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def load(source, **extra):
    return load_canonical({"adapter": "reward_bench", "source": str(source), **extra})


def fixture_rows():
    return [json.loads(line) for line in FIXTURE.read_text().splitlines()]


def test_fixture_shape():
    rows = fixture_rows()
    assert len(rows) == 12 and {r["subset"] for r in rows} == {"safety", "focus", "ties"}
    assert all(len(r["rejected"]) == 3 for r in rows)
    assert [len(r["chosen"]) for r in rows].count(2) == 1


def test_adapter_rows_and_order():
    out = load(FIXTURE)
    raw = fixture_rows()
    ds = out.dataset
    assert out.schema == MULTI and ds.features == MULTI_FEATURES
    assert len(ds) == 13  # 12 source rows, one with 2 chosen
    first = ds[0]
    assert first["prompt"] == H + raw[0]["prompt"] + A
    assert first["chosen"] == " " + raw[0]["chosen"][0]
    assert first["rejected"] == [" " + r for r in raw[0]["rejected"]]  # source order kept
    assert (first["subset"], first["group"]) == ("safety", "s1")
    # source order kept; the 2-chosen row (t1, source row 8) becomes rows 8 and 9, each against every rejected
    assert ds["group"] == ["s1", "s2", "s3", "s4", "f1", "f2", "f3", "f4", "t1", "t1", "t2", "t3", "t4"]
    assert [ds[8]["chosen"], ds[9]["chosen"]] == [" " + c for c in raw[8]["chosen"]]
    assert ds[8]["rejected"] == ds[9]["rejected"] == [" " + r for r in raw[8]["rejected"]]
    assert ds[8]["prompt"] == ds[9]["prompt"]
    assert ds["subset"].count("ties") == 5


def test_k_chosen_expansion_is_counted():
    report = load(FIXTURE).report
    assert report["rows_read"] == 12 and report["rows"] == 13
    assert report["chosen_expansion"] == {"source_rows": 1, "rows_added": 1, "max_chosen": 2}
    # a limit cuts source rows, never expanded rows
    out = load(FIXTURE, limit=9)
    assert out.report["rows_read"] == 9 and out.report["rows"] == 10 and out.dataset["group"][-2:] == ["t1", "t1"]


def test_string_replies_and_no_expansion(tmp_path):
    """allenai/reward-bench (v1) style: chosen and rejected are single strings."""
    src = write_jsonl(tmp_path / "v1.jsonl", [{"prompt": "Hi?", "chosen": "Hello!", "rejected": "Go away.",
                                               "subset": "chat"}])
    out = load(src)
    assert out.dataset[0] == {"prompt": H + "Hi?" + A, "chosen": " Hello!", "rejected": [" Go away."],
                              "subset": "chat", "group": "0"}
    assert out.report["chosen_expansion"] == {"source_rows": 0, "rows_added": 0, "max_chosen": 1}


def test_message_prompt_no_prompt_and_column_map(tmp_path):
    rows = [{"q": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                   {"role": "user", "content": "c"}], "good": ["yes"], "bad": ["no", "nope"], "cat": "x"}]
    out = load(write_jsonl(tmp_path / "m.jsonl", rows),
               columns={"prompt": "q", "chosen": "good", "rejected": "bad", "subset": "cat"})
    row = out.dataset[0]
    assert row["prompt"] == H + "a" + A + " b" + "\n\n" + "Human: c" + A
    assert row["chosen"] == " yes" and row["rejected"] == [" no", " nope"] and row["subset"] == "x"
    # no prompt column: replies are scored verbatim, subset None
    out = load(write_jsonl(tmp_path / "n.jsonl", [{"chosen": ["good"], "rejected": ["bad"]}]))
    assert out.dataset[0] == {"prompt": "", "chosen": "good", "rejected": ["bad"], "subset": None, "group": "0"}


def test_multi_texts_put_chosen_first():
    row = {"prompt": "P:", "chosen": " c", "rejected": [" r1", " r2", " r3"]}
    assert multi_texts(row) == ["P: c", "P: r1", "P: r2", "P: r3"]
    out = load(FIXTURE)
    texts = multi_texts(out.dataset[0])
    assert len(texts) == 4 and texts[0].endswith(fixture_rows()[0]["chosen"][0])


# ---------- bad input ----------

@pytest.mark.parametrize("rejected,field,what", [
    ([], "'rejected'", "empty list"),
    (["ok", 3], "'rejected[1]'", "expected a string"),
    (["ok", ""], "'rejected[1]'", "empty text"),
    (7, "'rejected'", "expected a string or a list"),
])
def test_bad_rejected_names_source_row_and_field(tmp_path, rejected, field, what):
    rows = [{"prompt": "p", "chosen": "c", "rejected": ["r"]}, {"prompt": "p2", "chosen": "c", "rejected": rejected}]
    path = tmp_path / "bad.json"  # one JSON list: lets a row hold a value of another type
    path.write_text(json.dumps(rows))
    with pytest.raises(DataError) as err:
        load(path)
    msg = str(err.value)
    assert "bad.json, row 1 (0-based)" in msg and f"field {field}" in msg and what in msg, msg


def test_bad_chosen_names_row_and_field(tmp_path):
    src = write_jsonl(tmp_path / "c.jsonl", [{"prompt": "p", "chosen": [], "rejected": ["r"]}])
    with pytest.raises(DataError, match=r"c\.jsonl, row 0 \(0-based\), field 'chosen': empty list"):
        load(src)
    src = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "chosen": "", "rejected": ["r"]}])
    with pytest.raises(DataError, match=r"d\.jsonl, row 0 \(0-based\), field 'chosen': empty text"):
        load(src)
    src = write_jsonl(tmp_path / "e.jsonl", [{"prompt": "p", "rejected": ["r"]}])
    with pytest.raises(DataError, match=r"e\.jsonl: missing column 'chosen'"):
        load(src)


def test_validate_multi_rules():
    good = {"prompt": "", "chosen": "c", "rejected": ["a", "b"], "subset": "s", "group": 3, "extra": 1}
    assert validate_multi(good, "src", 0) == {"prompt": "", "chosen": "c", "rejected": ["a", "b"],
                                              "subset": "s", "group": "3"}
    cases = [
        ({**good, "chosen": ""}, "field 'chosen': empty text"),
        ({**good, "chosen": None}, "field 'chosen': expected a string"),
        ({**good, "rejected": []}, "field 'rejected': empty list"),
        ({**good, "rejected": "a"}, "field 'rejected': expected a list of strings"),
        ({**good, "rejected": ["a", None]}, "field 'rejected[1]': expected a string"),
        ({**good, "rejected": ["  "]}, "field 'rejected[0]': prompt + reply is blank"),
    ]
    for row, what in cases:
        with pytest.raises(DataError) as err:
            validate_multi(row, "src", 4)
        assert str(err.value).startswith("src, row 4 (0-based), ") and what in str(err.value), str(err.value)


# ---------- evaluation-only ----------

def test_every_row_goes_to_test():
    cfg = {"name": "rb_small", "adapter": "reward_bench", "source": str(FIXTURE), "split": {"val": 0.3, "test": 0.3}}
    splits = load_splits(cfg)
    assert splits.schema == MULTI and len(splits.train) == len(splits.val) == 0 and len(splits.test) == 13
    assert splits.train.features == splits.val.features == MULTI_FEATURES
    assert splits.report["eval_only"] is True
    assert splits.report["sizes"] == {"train": 0, "val": 0, "test": 13}
    assert splits.report["chosen_expansion"]["rows_added"] == 1
    with pytest.raises(ConfigError, match="pairs only applies to binary"):
        load_splits({**cfg, "pairs": {"group_key": "group"}})


@pytest.mark.parametrize("objective", ["pairwise", "binary"])
def test_training_on_it_is_refused(objective):
    from rewardsoup.training.objectives import adapt_splits, get_objective

    splits = load_splits({"name": "rb_small", "adapter": "reward_bench", "source": str(FIXTURE), "split": None})
    with pytest.raises(DataError) as err:
        adapt_splits(splits, get_objective(objective), {})
    msg = str(err.value)
    assert "'rb_small'" in msg and "evaluation-only" in msg and "\n" not in msg


# ---------- configs and the hub path ----------

def test_configs_read_the_hub_test_split_and_local_files(monkeypatch):
    hub = OmegaConf.to_container(OmegaConf.load(CONF / "reward_bench.yaml"))
    assert (hub["adapter"], hub["source"], hub["hub_split"]) == ("reward_bench", "allenai/reward-bench-2", "test")
    calls = []

    def fake_load(name, data_dir=None, split=None, **kwargs):
        calls.append((name, data_dir, split))
        return datasets.Dataset.from_list(fixture_rows())

    monkeypatch.setattr(sources, "hub_reachable", lambda: True)
    monkeypatch.setattr(sources.datasets, "load_dataset", fake_load)
    splits = load_splits(hub)
    assert calls == [("allenai/reward-bench-2", None, "test")]
    assert splits.name == "reward_bench" and len(splits.test) == 13 and splits.report["eval_only"]

    local = OmegaConf.to_container(OmegaConf.load(CONF / "local_reward_bench.yaml"))
    assert local["defaults"][0] == "reward_bench" and local["source"] == "???"
    monkeypatch.undo()
    out = load_splits({**hub, **{k: v for k, v in local.items() if k != "defaults"}, "source": str(FIXTURE)})
    assert out.name == "local_reward_bench" and len(out.test) == 13
