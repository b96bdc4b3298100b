"""Every adapter on a small in-test file, and every kind of bad input it must name clearly."""

import csv
import gzip
import json
import sys
import types

import datasets
import pytest

from rewardsoup.data import load_canonical, sources
from rewardsoup.data.adapters import ADAPTERS, split_hh_pair
from rewardsoup.data.schema import coerce_label
from rewardsoup.core.errors import ConfigError, DataError


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def write_json(path, rows):
    path.write_text(json.dumps(rows), encoding="utf-8")
    return str(path)


def load(adapter, source, **extra):
    return load_canonical({"adapter": adapter, "source": source, **extra})


def test_registry_is_explicit():
    assert set(ADAPTERS) == {
        "hh_rlhf", "chai_thumbs", "chai_feedback", "chai_pairs", "messages_label",
        "sharegpt_pairs", "local_pairs", "local_binary", "reward_bench", "demo",
    }


def test_hh_rlhf_splits_at_final_assistant_marker(tmp_path):
    chosen = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: rob a bank?\n\nAssistant: No, I can't help."
    rejected = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: rob a bank?\n\nAssistant: Sure, first..."
    src = write_jsonl(tmp_path / "hh.jsonl", [{"chosen": chosen, "rejected": rejected}])
    out = load("hh_rlhf", src)
    row = out.dataset[0]
    assert out.schema == "pairwise"
    assert row["prompt"] == "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: rob a bank?\n\nAssistant:"
    assert row["chosen"] == " No, I can't help." and row["rejected"] == " Sure, first..."
    assert row["prompt"] + row["chosen"] == chosen and row["prompt"] + row["rejected"] == rejected
    assert row["margin"] is None and row["group"] is None


def test_hh_split_keeps_transcripts_whole_in_odd_cases():
    # replies that diverge before the last turn: prompt stops at the last SHARED marker
    c = "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d"
    r = "\n\nHuman: a\n\nAssistant: x"
    prompt, rc, rr = split_hh_pair(c, r)
    assert prompt == "\n\nHuman: a\n\nAssistant:" and prompt + rc == c and prompt + rr == r
    # a transcript ending at the marker: the marker moves into the replies so neither is empty
    prompt, rc, rr = split_hh_pair("\n\nHuman: a\n\nAssistant:", "\n\nHuman: a\n\nAssistant: ok")
    assert (prompt, rc, rr) == ("\n\nHuman: a", "\n\nAssistant:", "\n\nAssistant: ok")


def test_chai_thumbs(tmp_path):
    rows = [{"input_text": "User: hi\nBot: hey", "labels": 1}, {"input_text": "User: hi\nBot: go away", "labels": 0}]
    out = load("chai_thumbs", write_jsonl(tmp_path / "thumbs.jsonl", rows))
    assert out.schema == "binary"
    assert out.dataset.to_list() == [
        {"text": "User: hi\nBot: hey", "label": 1, "group": None},
        {"text": "User: hi\nBot: go away", "label": 0, "group": None},
    ]


def feedback_rows():
    return [
        {"conversation": "Bot: hi\nUser: yo", "thumbs_up": True, "bot_id": "b1", "user_id": "u1", "model_name": "m"},
        {"conversation": "Bot: hey\nUser: meh", "thumbs_up": False, "bot_id": "b2", "user_id": "u1", "model_name": "m"},
    ]


def test_chai_feedback_groups_by_bot_id(tmp_path):
    out = load("chai_feedback", write_jsonl(tmp_path / "fb.jsonl", feedback_rows()))
    assert out.dataset["group"] == ["b1", "b2"] and out.dataset["label"] == [1, 0]
    assert out.dataset["text"] == ["Bot: hi\nUser: yo", "Bot: hey\nUser: meh"]


def test_chai_feedback_group_column_from_config(tmp_path):
    src = write_jsonl(tmp_path / "fb.jsonl", feedback_rows())
    assert load("chai_feedback", src, pairs={"group_key": "user_id"}).dataset["group"] == ["u1", "u1"]
    assert load("chai_feedback", src, columns={"group": "model_name"}).dataset["group"] == ["m", "m"]


def test_chai_pairs(tmp_path):
    rows = [{"chosen": "Bot: a", "chosen_conv_id": "c1", "rejected": "Bot: b", "rejected_conv_id": "c2", "same_user": True}]
    out = load("chai_pairs", write_jsonl(tmp_path / "pairs.jsonl", rows))
    assert out.dataset.to_list() == [{"prompt": "", "chosen": "Bot: a", "rejected": "Bot: b", "margin": None, "group": None}]


def test_messages_label_json_list(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "good"}], "label": True},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad"}], "label": False},
    ]
    out = load("messages_label", write_json(tmp_path / "kto.json", rows))
    assert out.dataset["text"] == ["\n\nHuman: q\n\nAssistant: good", "\n\nHuman: q\n\nAssistant: bad"]
    assert out.dataset["label"] == [1, 0]


def test_sharegpt_pairs(tmp_path):
    rows = [{
        "conversations": [{"from": "human", "value": "q1"}, {"from": "gpt", "value": "a1"}, {"from": "human", "value": "q2"}],
        "chosen": {"from": "gpt", "value": "good"},
        "rejected": {"from": "gpt", "value": "bad"},
    }]
    row = load("sharegpt_pairs", write_json(tmp_path / "dpo.json", rows)).dataset[0]
    assert row["prompt"] == "\n\nHuman: q1\n\nAssistant: a1\n\nHuman: q2\n\nAssistant:"
    assert (row["chosen"], row["rejected"]) == (" good", " bad")


def test_local_pairs_csv_with_column_map(tmp_path):
    path = tmp_path / "p.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "good", "bad", "score"])
        writer.writerow(["Q: ", "yes", "no", "2.5"])
    cfg = {"columns": {"prompt": "question", "chosen": "good", "rejected": "bad", "margin": "score"}}
    row = load("local_pairs", str(path), **cfg).dataset[0]
    assert row == {"prompt": "Q: ", "chosen": "yes", "rejected": "no", "margin": 2.5, "group": None}


def test_local_binary_parquet_and_label_coercion(tmp_path):
    path = tmp_path / "b.parquet"
    datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": ["true", "0", "1"], "g": ["x", "y", "x"]}).to_parquet(str(path))
    out = load("local_binary", str(path), columns={"group": "g"})
    assert out.dataset.to_list() == [
        {"text": "a", "label": 1, "group": "x"}, {"text": "b", "label": 0, "group": "y"}, {"text": "c", "label": 1, "group": "x"}
    ]


def test_label_coercion_rules():
    assert [coerce_label(v, "f", 0) for v in (0, 1, True, False, "0", "1", "true", "FALSE", 1.0)] == [0, 1, 1, 0, 0, 1, 1, 0, 1]
    for bad in (2, -1, "yes", None, 0.5):
        with pytest.raises(DataError, match="bad label"):
            coerce_label(bad, "f", 0)


def test_demo_adapter_with_monkeypatched_rows(monkeypatch):
    fake = types.ModuleType("rewardsoup.data.demo")
    calls = []

    def demo_rows(name, seed=0):
        calls.append((name, seed))
        if name == "thumbs":
            return [{"text": f"t{i}", "label": i % 2, "group": "g"} for i in range(5)]
        return [{"prompt": "p", "chosen": "c", "rejected": "r"}]

    fake.demo_rows = demo_rows
    monkeypatch.setitem(sys.modules, "rewardsoup.data.demo", fake)
    thumbs = load("demo", "thumbs", limit=3)
    assert thumbs.schema == "binary" and thumbs.dataset["text"] == ["t0", "t1", "t2"]
    assert load("demo", "harmless").schema == "pairwise"
    assert calls == [("thumbs", 0), ("harmless", 0)]
    with pytest.raises(ConfigError, match="expected one of"):
        load("demo", "nope")


def test_limit_keeps_first_source_rows(tmp_path):
    rows = [{"chosen": f"c{i}", "rejected": f"r{i}"} for i in range(10)]
    out = load("local_pairs", write_jsonl(tmp_path / "p.jsonl", rows), limit=4)
    assert out.dataset["chosen"] == ["c0", "c1", "c2", "c3"]
    assert out.report["rows_read"] == 4 and out.report["rows"] == 4
    with pytest.raises(ConfigError, match="data.limit"):
        load("local_pairs", str(tmp_path / "p.jsonl"), limit=0)


def test_identical_pairs_are_dropped_and_counted(tmp_path):
    rows = [{"prompt": "Q: ", "chosen": "same", "rejected": "same"}, {"chosen": "yes", "rejected": "no"},
            {"prompt": "Q: ", "chosen": "a", "rejected": "a"}]
    out = load("local_pairs", write_jsonl(tmp_path / "p.jsonl", rows))
    assert out.dataset["chosen"] == ["yes"]
    assert out.report["rows_read"] == 3 and out.report["rows"] == 1 and out.report["identical_pairs"] == 2


def test_a_file_of_identical_pairs_only_names_itself_and_the_count(tmp_path):
    rows = [{"chosen": f"r{i}", "rejected": f"r{i}"} for i in range(3)]
    with pytest.raises(DataError, match=r"same\.jsonl: every pair has chosen == rejected \(3 of 3 dropped"):
        load("local_pairs", write_jsonl(tmp_path / "same.jsonl", rows))


def test_an_empty_split_converts_without_crashing():
    """datasets 5 cannot build a Dataset from no rows with features ("Keys mismatch"): empty splits still work."""
    from rewardsoup.data.pairs import build_pairs, pairs_to_binary
    from rewardsoup.data.schema import BINARY_FEATURES, PAIRWISE_FEATURES, rows_dataset

    empty_pairs = rows_dataset([], PAIRWISE_FEATURES)
    binary = pairs_to_binary(empty_pairs)
    assert len(binary) == 0 and binary.features == BINARY_FEATURES
    pairs, report = build_pairs(rows_dataset([], BINARY_FEATURES))
    assert len(pairs) == 0 and pairs.features == PAIRWISE_FEATURES and report["pairs"] == 0


# ---------- bad input ----------

def test_missing_column_names_file_column_and_present_columns(tmp_path):
    src = write_jsonl(tmp_path / "nochosen.jsonl", [{"good": "a", "rejected": "b"}])
    with pytest.raises(DataError) as err:
        load("local_pairs", src)
    msg = str(err.value)
    assert "nochosen.jsonl" in msg and "'chosen'" in msg and "['good', 'rejected']" in msg


def test_bad_label_names_file_row_field_and_value(tmp_path):
    src = write_jsonl(tmp_path / "lab.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": "maybe"}])
    with pytest.raises(DataError) as err:
        load("local_binary", src)
    msg = str(err.value)
    assert "lab.jsonl" in msg and "row 1" in msg and "'label'" in msg and "'maybe'" in msg


def test_empty_text_names_source_row_and_field(tmp_path):
    src = write_jsonl(tmp_path / "e.jsonl", [{"chosen": "a", "rejected": "b"}, {"chosen": "a", "rejected": ""}])
    with pytest.raises(DataError, match=r"e\.jsonl, row 1 \(0-based\), field 'rejected': empty"):
        load("local_pairs", src)
    src = write_jsonl(tmp_path / "t.jsonl", [{"text": "   ", "label": 1}])
    with pytest.raises(DataError, match=r"t\.jsonl, row 0 \(0-based\), field 'text'"):
        load("local_binary", src)


def test_malformed_json_line_reports_line_number(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "a", "label": 1}\n\n{"text": "b", "label": 0}\n{"text": "c", "label": \n')
    with pytest.raises(DataError, match=r"broken\.jsonl.*line 4"):
        load("local_binary", str(path))


def test_malformed_gzip_json_line_reports_line_number(tmp_path):
    path = tmp_path / "broken.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write('{"chosen": "a", "rejected": "b"}\nnot json\n')
    with pytest.raises(DataError, match=r"broken\.jsonl\.gz.*line 2"):
        load("hh_rlhf", str(path))


def test_a_corrupt_gzip_is_one_data_error_naming_the_file(tmp_path):
    whole = gzip.compress(b'{"chosen": "a", "rejected": "b"}\n' * 2000)
    cases = {"plain.jsonl.gz": b'{"chosen": "a", "rejected": "b"}\n',  # not compressed at all
             "cut.jsonl.gz": whole[: len(whole) // 2],  # a copy that did not finish
             "crc.jsonl.gz": whole[:-8] + bytes(8)}  # a damaged trailer
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError, match=rf"{name.replace('.', '[.]')}: corrupt gzip file .* bytes of decompressed"):
            load("local_pairs", str(tmp_path / name))


def test_text_that_is_not_utf8_names_the_byte_offset_and_line(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "CHUNK", 5)  # the bad byte lands past a chunk boundary, mid-character too
    good = '{"chosen": "caf\u00e9 \u20ac", "rejected": "b"}\n'.encode()
    bad = good + b'{"chosen": "caf\xe9", "rejected": "b"}\n'  # latin-1 on line 2
    offset = len(good) + len(b'{"chosen": "caf')
    (tmp_path / "latin.jsonl").write_bytes(bad)
    (tmp_path / "latin.jsonl.gz").write_bytes(gzip.compress(bad))
    (tmp_path / "latin.csv").write_bytes(b"chosen,rejected\nok,fine\ncaf\xe9,b\n")  # 0xe9 at 16 + 8 + 3
    for name, where in (("latin.jsonl", f"byte offset {offset} (line 2)"),
                        ("latin.jsonl.gz", f"byte offset {offset} of the decompressed text (line 2)"),
                        ("latin.csv", "byte offset 27 (line 3)")):
        with pytest.raises(DataError) as err:
            load("local_pairs", str(tmp_path / name))
        assert f"{name}: not UTF-8 text: {where}" in str(err.value) and "0xe9" in str(err.value), str(err.value)
    (tmp_path / "cut.jsonl").write_bytes(good + "\u20ac".encode()[:2])  # ends inside a character
    with pytest.raises(DataError, match=rf"cut[.]jsonl: not UTF-8 text: byte offset {len(good)} \(line 2\)"):
        load("local_pairs", str(tmp_path / "cut.jsonl"))


def test_unknown_adapter_lists_known_ones():
    with pytest.raises(ConfigError) as err:
        load("nope", "x.jsonl")
    assert "'nope'" in str(err.value) and "hh_rlhf" in str(err.value) and "local_binary" in str(err.value)


def test_missing_local_file_is_named(tmp_path):
    with pytest.raises(DataError, match="missing.jsonl: file not found"):
        load("local_pairs", str(tmp_path / "missing.jsonl"))


def test_local_vs_hub_decision(tmp_path):
    assert sources.is_local("/abs/x") and sources.is_local("./x") and sources.is_local("~/x")
    assert sources.is_local("data.jsonl.gz") and sources.is_local("a/b.parquet")
    assert not sources.is_local("Anthropic/hh-rlhf")


def test_models_and_data_share_one_local_rule_and_one_offline_reading(monkeypatch):
    from rewardsoup.core import hub
    from rewardsoup.models import assets

    assert sources.is_local is hub.is_local is assets.is_local
    assert hub.is_local("../m") and hub.is_local("rows.csv") and not hub.is_local("HuggingFaceTB/SmolLM2-135M")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    for value, offline in (("1", True), ("on", True), ("YES", True), ("true", True), ("0", False), ("", False)):
        monkeypatch.setenv("HF_HUB_OFFLINE", value)
        assert hub.hub_offline() is offline, value


def test_unreachable_hub_fails_fast_with_local_path_hint(monkeypatch):
    monkeypatch.setattr(sources, "hub_reachable", lambda: False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(DataError) as err:
        load("hh_rlhf", "Anthropic/hh-rlhf", data_dir="harmless-base")
    msg = str(err.value)
    assert "Anthropic/hh-rlhf" in msg and "unreachable" in msg and "data.source=/path/to/file.jsonl" in msg


def test_hub_error_from_datasets_becomes_one_data_error(monkeypatch):
    def boom(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'x/y' on the Hub")

    monkeypatch.setattr(sources, "hub_reachable", lambda: True)
    monkeypatch.setattr(sources.datasets, "load_dataset", boom)
    with pytest.raises(DataError, match=r"'x/y'.*unreachable.*Couldn't reach"):
        load("chai_pairs", "x/y")
