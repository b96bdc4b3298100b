"""The adapters on real public data from ../shared/data (skipped when that folder is absent)."""

import gzip
import json
from pathlib import Path

import pytest

from rewardsoup.data import load_canonical, load_splits
from rewardsoup.data.render import parse_hh_transcript, render_conversation
from rewardsoup.data.schema import pair_texts

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
HH = DATA / "hh-rlhf-harmless-base-test.1800.jsonl.gz"
KTO = DATA / "kto_en_demo.json"
DPO = DATA / "dpo_en_demo.json"

pytestmark = pytest.mark.slow  # real files from ../shared/data: run by `make test-slow`, not `make test`


def need(path: Path) -> str:
    if not path.exists():
        pytest.skip(f"real data not found: {path}")
    return str(path)


def test_hh_rlhf_harmless_round_trips_exactly():
    source = need(HH)
    out = load_canonical({"adapter": "hh_rlhf", "source": source})
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        originals = [json.loads(line) for line in handle]
    assert out.schema == "pairwise" and len(out.dataset) == len(originals) == 1800
    prompts, chosen, rejected = out.dataset["prompt"], out.dataset["chosen"], out.dataset["rejected"]
    for p, c, r, orig in zip(prompts, chosen, rejected, originals):
        assert p + c == orig["chosen"] and p + r == orig["rejected"]
    assert sum(p.endswith("\n\nAssistant:") for p in prompts) == 1800


def test_hh_transcripts_parse_and_render_back():
    with gzip.open(need(HH), "rt", encoding="utf-8") as handle:
        transcripts = [text for line in handle for text in json.loads(line).values()]
    assert len(transcripts) == 3600
    for text in transcripts:
        assert render_conversation(parse_hh_transcript(text)) == text


def test_kto_demo_is_balanced_binary():
    out = load_canonical({"adapter": "messages_label", "source": need(KTO)})
    assert out.schema == "binary" and len(out.dataset) == 300
    assert sum(out.dataset["label"]) == 150
    assert all(t.startswith("\n\nHuman: ") and "\n\nAssistant: " in t for t in out.dataset["text"])


def test_dpo_demo_gives_300_pairs_ending_in_replies():
    source = need(DPO)
    out = load_canonical({"adapter": "sharegpt_pairs", "source": source})
    raw = json.loads(Path(source).read_text(encoding="utf-8"))
    assert out.schema == "pairwise" and len(out.dataset) == 300
    for row, orig in zip(out.dataset, raw):
        assert row["prompt"].endswith("\n\nAssistant:")
        assert row["chosen"] == " " + orig["chosen"]["value"] and row["rejected"] == " " + orig["rejected"]["value"]


def test_hh_splits_do_not_leak():
    splits = load_splits({"adapter": "hh_rlhf", "source": need(HH)})
    assert sum(splits.report["sizes"].values()) == 1800
    owner = {}
    for name in ("train", "val", "test"):
        part = getattr(splits, name)
        for row in zip(part["prompt"], part["chosen"], part["rejected"]):
            for text in pair_texts(dict(zip(("prompt", "chosen", "rejected"), row))):
                assert owner.setdefault(text, name) == name
            assert owner.setdefault("prompt:" + row[0], name) == name
    assert len(splits.val) > 100 and len(splits.test) > 100
