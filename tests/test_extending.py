"""Extending is one room: an adapter, an objective and a merge preset each need one code file (none for the
preset) plus one YAML, and no edit anywhere in the project. The code lives in THIS test file, the YAML in a
folder of the test's own that Hydra finds through `hydra.searchpath`, as a user's project would."""

import json

from datasets import Dataset

from rewardsoup.data import load_splits
from rewardsoup.data.schema import FEATURES, PAIRWISE, validate_pairwise
from rewardsoup.merging.soup import merge_request
from rewardsoup.training import objectives
from rewardsoup.training.member import train_member


def upvoted_answers(raw, cfg, tokenizer=None):
    """A throwaway adapter: rows {question, answers: [{text, votes}]} -> pairwise, most vs least voted."""
    rows = []
    for i, row in enumerate(raw):
        ranked = sorted(row["answers"], key=lambda a: -a["votes"])
        pair = {"prompt": f"\n\nHuman: {row['question']}\n\nAssistant:", "chosen": " " + ranked[0]["text"],
                "rejected": " " + ranked[-1]["text"]}
        rows.append(validate_pairwise(pair, cfg["source"], i))
    return PAIRWISE, Dataset.from_list(rows, features=FEATURES[PAIRWISE])


# A throwaway objective: Bradley-Terry with trl's margin column ignored, built from the project's pieces.
NO_MARGIN = objectives.Objective(
    "no_margin", "pairwise",
    lambda ds, tok, n, cfg: objectives.OBJECTIVES["pairwise"].tokenize(ds, tok, n, {**cfg, "use_margin": False}),
    objectives.OBJECTIVES["pairwise"].trainer)


def _extra_conf(tmp_path, source):
    conf = tmp_path / "my_conf"
    (conf / "data").mkdir(parents=True)
    (conf / "objective").mkdir()
    (conf / "merge").mkdir()
    (conf / "data" / "upvotes.yaml").write_text(
        "# Q&A answers ranked by votes (test_extending.upvoted_answers)\n"
        "defaults:\n  - local_pairs  # the local-file settings; only what differs below\n  - _self_\n"
        "name: upvotes  # name in tables and caches\n"
        "adapter: test_extending:upvoted_answers  # our own code, by import path\n"
        f"source: {source}  # the file\n")
    (conf / "objective" / "no_margin.yaml").write_text(
        "# Bradley-Terry ignoring margins (test_extending.NO_MARGIN)\n"
        "defaults:\n  - pairwise  # pairing and trl settings of the built-in\n  - _self_\n"
        "name: test_extending:NO_MARGIN  # our own Objective, by import path\n")
    (conf / "merge" / "half_ties.yaml").write_text(
        "# TIES keeping half of each delta: a preset is YAML only\n"
        "defaults:\n  - ties  # every TIES setting\n  - _self_\n"
        "density: 0.5  # trim to the larger half of each member's delta\n"
        "name: half_ties  # soup folder name\n")
    return [f"hydra.searchpath=[file://{conf}]"]


def _votes_file(tmp_path):
    path = tmp_path / "votes.jsonl"
    with path.open("w") as f:
        for i in range(60):
            f.write(json.dumps({"question": f"How do I fix bug {i}?", "answers": [
                {"text": f"Check the log of run {i}, then retry.", "votes": 5},
                {"text": "No idea.", "votes": 0}, {"text": f"Try step {i}.", "votes": 2}]}) + "\n")
    return path


def test_an_adapter_an_objective_and_a_preset_need_no_edit_in_the_project(compose_cfg, smoke_overrides, tmp_path):
    extra = _extra_conf(tmp_path, _votes_file(tmp_path))
    cfg = compose_cfg("train", smoke_overrides + extra + ["data=upvotes", "objective=no_margin", "train.max_steps=2"])
    splits = load_splits(cfg.data)
    assert splits.schema == PAIRWISE and len(splits.train) + len(splits.val) + len(splits.test) == 60
    assert splits.train[0]["chosen"].startswith(" Check the log") and splits.train[0]["rejected"] == " No idea."
    assert objectives.get_objective(str(cfg.objective.name)) is NO_MARGIN
    assert train_member(cfg) is not None  # trains through the project's trainer with our objective

    merge = compose_cfg("merge", extra + ["merge=half_ties", "logger=none"])
    assert merge.merge.density == 0.5 and merge_request(merge)["density"] == 0.5
