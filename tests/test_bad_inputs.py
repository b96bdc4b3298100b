"""Bad input across stages: one clear `error:` line naming the problem, exit code 1, no partial output.

Each case of CASES runs the stage's work function the way its entry point does (`run_job`), on the real
configs; each of CLI_CASES runs an entry point on a config that fails to compose or breaks a value rule.
"""

import gzip
import json
import subprocess
import sys

import pytest

from conftest import ROOT
from rewardsoup.core.jobs import run_job


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _work(root):
    from rewardsoup.evaluation.job import evaluate_models
    from rewardsoup.search.jobs import merge_job
    from rewardsoup.training.member import train_member

    return {"train": train_member, "merge": merge_job, "evaluate": evaluate_models}[root]


LATIN1 = b'{"chosen": "kind", "rejected": "rude"}\n{"chosen": "caf\xe9", "rejected": "rude"}\n'  # Latin-1, not UTF-8
LATIN1_AT = "byte offset 54 (line 2)"  # 0xe9: the 39 bytes of line 1, then '{"chosen": "caf'


@pytest.fixture
def data_files(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "bad_json.jsonl").write_text('{"chosen": "a", "rejected": "b"}\n{"chosen": "a", oops}\n')
    (d / "no_col.jsonl").write_text('{"chosen": "a", "reject": "b"}\n')
    (d / "bad_label.jsonl").write_text('{"text": "hi", "label": "maybe"}\n')
    whole = gzip.compress("".join(json.dumps({"chosen": f"kind {i}", "rejected": f"rude {i}"}) + "\n"
                                  for i in range(400)).encode())
    (d / "corrupt.jsonl.gz").write_bytes(whole[: len(whole) // 2])  # a download or copy that did not finish
    (d / "latin1.jsonl").write_bytes(LATIN1)
    (d / "empty_text.jsonl").write_text('{"text": "", "label": 1}\n')
    (d / "empty.jsonl").write_text("")
    (d / "one_class.jsonl").write_text("".join(json.dumps({"text": f"good reply {i}", "label": 1}) + "\n"
                                               for i in range(40)))
    (d / "blank_texts.jsonl").write_text('{"text": "", "label": 1}\n{"text": "  ", "label": 0}\n')
    same = [{"prompt": "Q: hi", "chosen": f"reply {i}", "rejected": f"reply {i}"} for i in range(20)]
    (d / "identical.jsonl").write_text("".join(json.dumps(r) + "\n" for r in same))
    one_left = same[:5] + [{"prompt": "Q: hi", "chosen": "a kind reply", "rejected": "a rude reply"}]
    (d / "one_left.jsonl").write_text("".join(json.dumps(r) + "\n" for r in one_left))
    return d


@pytest.fixture
def truncated_member(tiny_members, tmp_path):
    """A copy of a member whose model.safetensors was cut in half (a copy or save that did not finish)."""
    import shutil

    folder = tmp_path / "truncated_member"
    shutil.copytree(tiny_members["harmless"], folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return folder


CASES = [
    # (id, root, overrides, expected words in the message)
    ("missing-file", "train", ["data=local_pairs", "data.source={d}/missing.jsonl"], ["missing.jsonl"]),
    ("malformed-json-line", "train", ["data=local_pairs", "data.source={d}/bad_json.jsonl"], ["bad_json.jsonl", "line 2"]),
    ("missing-column", "train", ["data=local_pairs", "data.source={d}/no_col.jsonl"], ["no_col.jsonl", "rejected"]),
    ("bad-label", "train", ["data=local_binary", "data.source={d}/bad_label.jsonl"], ["label", "maybe"]),
    ("corrupt-gzip", "train", ["data=local_pairs", "data.source={d}/corrupt.jsonl.gz"],
     ["corrupt.jsonl.gz", "corrupt gzip file", "bytes of decompressed text"]),
    ("not-utf8", "train", ["data=local_pairs", "data.source={d}/latin1.jsonl"],
     ["latin1.jsonl", "not UTF-8", LATIN1_AT]),
    ("empty-file", "train", ["data=local_pairs", "data.source={d}/empty.jsonl"], ["empty.jsonl", "no rows"]),
    ("identical-pairs", "train", ["data=local_pairs", "data.source={d}/identical.jsonl"],
     ["identical.jsonl", "every pair has chosen == rejected", "20 of 20"]),
    ("split-empty-after-identical-dropped", "train", ["data=local_pairs", "data.source={d}/one_left.jsonl"],
     ["one_left.jsonl", "rows after splitting", "5 identical pairs dropped"]),
    ("binary-one-class", "train", ["data=local_binary", "data.source={d}/one_class.jsonl"],
     ["one_class.jsonl", "has label 1", "both labels"]),
    ("all-texts-blank", "train", ["data=local_binary", "data.source={d}/blank_texts.jsonl"],
     ["blank_texts.jsonl", "row 0", "text"]),
    ("source-not-given", "train", ["data=local_pairs"], ["data.source", "???"]),
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
    ("member-weights-truncated", "merge", ["members.harmless={trunc}"], ["truncated_member", "safetensors"]),
    ("evaluate-weights-truncated", "evaluate", ["+models.t={trunc}"], ["truncated_member", "truncated"]),
    ("evaluate-bad-split", "evaluate", ["+models.m={member}", "split=dev"], ["dev"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, compose_cfg, smoke_overrides, merge_overrides, tiny_members, truncated_member, data_files,
                   out_root, capsys):
    from rewardsoup.models.assets import tiny_model_dir

    name, root, overrides, words = case
    fmt = {"d": data_files, "lm": tiny_model_dir("gpt2"), "member": tiny_members["thumbs"], "trunc": truncated_member}
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


NO_BASE_YET = [
    # (file, data config, objective, expected words): a first run, whose base would be built under paths.root
    ("corrupt.jsonl.gz", "local_pairs", "pairwise", ["corrupt gzip file", "bytes of decompressed text"]),
    ("latin1.jsonl", "local_pairs", "pairwise", ["not UTF-8", LATIN1_AT, "0xe9"]),
    ("no_col.jsonl", "local_pairs", "pairwise", ["missing column 'rejected'", "['chosen', 'reject']"]),
    ("bad_label.jsonl", "local_binary", "binary", ["row 0", "'label'", "'maybe'"]),
    ("one_class.jsonl", "local_binary", "binary", ["has label 1", "both labels"]),
]


@pytest.mark.parametrize("case", NO_BASE_YET, ids=[c[0] for c in NO_BASE_YET])
def test_a_bad_data_file_stops_train_before_the_base_is_built(case, compose_cfg, data_files, out_root, capsys):
    """Before any base exists (the tiny model's goes under paths.root/bases), train.py's work reads and checks the
    data first: a bad file is one `error:` line naming it, and paths.root stays empty (no base built first)."""
    from rewardsoup.training.member import train_member

    name, data, objective, words = case
    cfg = compose_cfg("train", ["experiment=smoke", f"data={data}", f"data.source={data_files / name}",
                                f"objective={objective}"])
    assert str(cfg.model.base_dir).startswith(str(out_root))  # no base yet: this run would build it
    with pytest.raises(SystemExit) as exit_info:
        run_job(train_member, cfg)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert exit_info.value.code == 1 and len(lines) == 1 and "Traceback" not in err, err
    assert all(word in lines[0] for word in [f"{data_files / name}"] + words), lines[0]
    assert _files(out_root) == [] and not (out_root / "bases").exists()


@pytest.mark.parametrize("name,words", [("corrupt.jsonl.gz", "corrupt gzip file"), ("latin1.jsonl", "not UTF-8")])
def test_train_py_on_a_bad_file_is_one_error_line_and_writes_nothing(data_files, out_root, name, words):
    """As a new user runs it: the real process, no base yet. The data is checked before Hydra creates its run
    folder (training.preflight.CheckData), so nothing at all is under paths.root."""
    source = data_files / name
    done = subprocess.run([sys.executable, "train.py", "experiment=smoke", "data=local_pairs", f"data.source={source}",
                           "objective=pairwise"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert str(source) in lines[0] and words in lines[0], lines[0]
    assert not out_root.exists() or _files(out_root) == []


def test_cases_cover_every_entry_point_with_unique_ids_and_expected_words():
    """Each of train.py, merge.py and evaluate.py has bad-input cases; no id hides another; every case names words.

    (sample.py's bad inputs are in tests/test_sampling.py::test_bad_inputs_are_clear_errors.)
    """
    ids = [c[0] for c in CASES]
    assert sorted({i for i in ids if ids.count(i) > 1}) == []  # pytest would rename a duplicate id silently
    assert {c[1] for c in CASES} == {"train", "merge", "evaluate"}
    assert all(callable(_work(root)) for root in ("train", "merge", "evaluate"))
    no_words = [c[0] for c in CASES if not c[3] or not all(isinstance(w, str) and w.strip() for w in c[3])]
    assert no_words == []  # a case with no expected words would only check the exit code


CLI_CASES = [
    # (id, entry point, overrides, expected words): the config does not compose, or breaks a value rule
    ("misspelt-key", "train.py", ["train.lrr=1"], ["train.lrr", "did you mean train.lr?"]),
    ("wrong-type", "train.py", ["train.epochs=abc"], ["train.epochs", "abc"]),
    ("lr-not-positive-cli", "train.py", ["train.lr=-1"], ["train.lr=-1.0", "> 0"]),
    ("misspelt-merge-key", "merge.py", ["merge.densty=0.5"], ["merge.densty", "merge.density?"]),
    ("bootstrap-not-a-number", "evaluate.py", ["bootstrap=many"], ["bootstrap", "many"]),
    ("sample-n-zero", "sample.py", ["prompt=hi", "n=0"], ["n=0", ">= 1"]),
    ("optuna-no-trials", "merge.py", ["-m", "search=optuna", "hydra.sweeper.n_trials=0"],
     ["hydra.sweeper.n_trials", "0"]),
    ("optuna-storage-down", "merge.py",
     ["-m", "search=optuna", "hydra.sweeper.storage=postgresql+psycopg://user:secret@127.0.0.1:1/db"],
     ["hydra.sweeper.storage", "postgresql+psycopg://user:***@127.0.0.1:1/db", "cannot connect"]),
    ("models-not-a-folder", "evaluate.py", ["models={x: /nonexistent/member}"], ["models.x", "/nonexistent/member"]),
    ("models-key-not-a-folder", "evaluate.py", ["models.x=/nonexistent/member"], ["models.x", "no config.json"]),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_bad_config_on_the_command_line(case, out_root):
    name, script, overrides, words = case
    flags = [o for o in overrides if o.startswith("-")]  # -m before the overrides, as argparse wants
    overrides = [o for o in overrides if not o.startswith("-")]
    done = subprocess.run([sys.executable, script, *flags, "logger=none", "experiment=smoke", *overrides], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    for word in words:
        assert word in lines[0], lines[0]
    assert "secret" not in done.stdout + done.stderr  # a storage URL's password is never shown
    assert _files(out_root) == []  # nothing written, not even Hydra's run folder


def test_models_takes_new_names_as_the_config_comment_says(compose_cfg, tmp_path):
    """`models` maps a name to a folder: models={x: dir} and models.x=dir both compose, and pass the rules."""
    from rewardsoup.core.config import validate

    folder = str(tmp_path / "member")
    (tmp_path / "member").mkdir()
    (tmp_path / "member" / "config.json").write_text("{}")
    for overrides in (["models={x: %s, y: %s}" % (folder, folder)], [f"models.x={folder}", f"models.y={folder}"]):
        cfg = validate(compose_cfg("evaluate", ["experiment=smoke", *overrides]))
        assert dict(cfg.models) == {"x": folder, "y": folder}
