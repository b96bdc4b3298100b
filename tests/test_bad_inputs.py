"""Bad input across stages: one clear `error:` line naming the problem, exit code 1, no partial output.

Each case runs the stage's work function the way its entry point does (`run_job`), on the real configs.
"""


import pytest

from rewardsoup.core.jobs import run_job


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _work(root):
    from rewardsoup.evaluation.job import evaluate_models
    from rewardsoup.sweep.search import merge_job
    from rewardsoup.training.member import train_member

    return {"train": train_member, "merge": merge_job, "evaluate": evaluate_models}[root]


@pytest.fixture
def data_files(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "bad_json.jsonl").write_text('{"chosen": "a", "rejected": "b"}\n{"chosen": "a", oops}\n')
    (d / "no_col.jsonl").write_text('{"chosen": "a", "reject": "b"}\n')
    (d / "bad_label.jsonl").write_text('{"text": "hi", "label": "maybe"}\n')
    (d / "empty_text.jsonl").write_text('{"text": "", "label": 1}\n')
    return d


CASES = [
    # (id, root, overrides, expected words in the message)
    ("missing-file", "train", ["data=local_pairs", "data.source={d}/missing.jsonl"], ["missing.jsonl"]),
    ("malformed-json-line", "train", ["data=local_pairs", "data.source={d}/bad_json.jsonl"], ["bad_json.jsonl", "line 2"]),
    ("missing-column", "train", ["data=local_pairs", "data.source={d}/no_col.jsonl"], ["no_col.jsonl", "rejected"]),
    ("bad-label", "train", ["data=local_binary", "data.source={d}/bad_label.jsonl"], ["label", "maybe"]),
    ("empty-text", "train", ["data=local_binary", "data.source={d}/empty_text.jsonl"], ["empty_text.jsonl", "text"]),
    ("unknown-adapter", "train", ["data.adapter=nope"], ["adapter", "nope"]),
    ("unknown-objective", "train", ["objective.name=nope"], ["objective", "nope"]),
    ("empty-val-split", "train", ["data.split.val=0.0"], ["no val rows"]),
    ("split-fractions", "train", ["data.split.val=0.6", "data.split.test=0.5"], ["split"]),
    ("layers-out-of-range", "train", ["model.base_dir={d}/newbase", "model.layers=7"], ["model.layers=7"]),
    ("unknown-embedded-model", "train", ["model.source=embedded:foo", "model.base_dir={d}/b2"], ["foo"]),
    ("lr-not-positive", "train", ["train.lr=-1"], ["train.lr=-1.0", "> 0"]),
    ("head-lr-not-positive", "train", ["train.head_lr=0"], ["train.head_lr=0", "> 0"]),
    ("unknown-scheduler", "train", ["train.scheduler=foo"], ["train.scheduler", "foo", "cosine"]),
    ("unknown-head-init", "train", ["train.head_init=random"], ["train.head_init", "random"]),
    ("warmup-ratio-not-a-ratio", "train", ["train.warmup_ratio=1.0"], ["train.warmup_ratio=1.0", "[0, 1)"]),
    ("weight-for-unknown-member", "merge", ["+merge.weights.ghost=1.0"], ["ghost"]),
    ("density-zero", "merge", ["merge.density=0"], ["density"]),
    ("member-path-missing", "merge", ["members.harmless={d}/nowhere"], ["nowhere"]),
    ("slerp-three-members", "merge", ["merge=slerp", "merge.use=null"], ["exactly 2"]),
    ("unknown-merge-method", "merge", ["merge.method=soupify"], ["soupify"]),
    ("all-zero-weights", "merge", ["merge.weights.thumbs=0", "merge.weights.pairs=0", "merge.weights.harmless=0"], ["zero"]),
    ("pick-non-sweep", "merge", ["mode=pick", "sweep.dir={d}"], ["not a sweep folder"]),
    ("unknown-mode", "merge", ["mode=bake"], ["bake"]),
    ("bad-objective-kind", "merge", ["mode=trial", "sweep.objective.kind=median"], ["median"]),
    ("evaluate-causal-lm", "evaluate", ["+models.lm={lm}"], ["one logit"]),
    ("evaluate-bad-split", "evaluate", ["+models.m={member}", "split=dev"], ["dev"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, compose_cfg, smoke_overrides, merge_overrides, tiny_members, data_files, out_root, capsys):
    from rewardsoup.models.assets import tiny_model_dir

    name, root, overrides, words = case
    fmt = {"d": data_files, "lm": tiny_model_dir("gpt2"), "member": tiny_members["thumbs"]}
    base = {"train": smoke_overrides, "merge": merge_overrides, "evaluate": merge_overrides[:3]}[root]
    cfg = compose_cfg(root, base + [o.format(**fmt) for o in overrides])
    before = _files(out_root)
    with pytest.raises(SystemExit) as exit_info:
        run_job(_work(root), cfg)
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], lines[0]
    after = [f for f in _files(out_root) if not f.startswith(("cache/", "wandb/"))]
    assert after == [f for f in before if not f.startswith(("cache/", "wandb/"))]  # nothing half-written


def test_there_are_at_least_twenty_cases():
    assert len(CASES) >= 20 and len({c[1] for c in CASES}) == 3
