"""Bad values for every field of train.py, merge.py, evaluate.py, sample.py and tune.py, generated from the schemas.

`config_fields.fields` lists every field of each entry point's composed config with what its schema says
(kind, Optional, value rule, input path): no field is named here, so a new schema field is covered as soon as it
lands. Each field gets the values of GENERIC its schema refuses (wrong type, out of a rule's range, empty, ???,
a missing path, an interpolation of nothing); hypothesis draws more values (numbers, short words, bad syntax)
and typo'd keys, derandomized, with bounded examples.

A case runs in-process as the entry point would: `entry` (a config that does not compose: one `error:` line)
around Hydra's override step on the entry point's composed config (`_apply_overrides_to_config`, the step
`compose` ends with), then `run_job` (value rules: one `error:` line) with a work function that only records
that it was reached: a refused value must stop before any work. A few cases also go through a full `compose`,
each script's real `@hydra.main`, and a subprocess. Last, a sweep ledger whose last line a killed writer tore.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import runpy
import subprocess
import sys
import tempfile
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from omegaconf import DictConfig, OmegaConf

from config_fields import Field, fields, why_bad
from conftest import CONF, ROOT
from rewardsoup.core.config import at_least_one, checked
from rewardsoup.core.jobs import entry, run_job
from rewardsoup.sweep import ledger

ROOTS = ("train", "merge", "evaluate", "sample", "tune")
GENERIC = ("-1", "0", "1e9", "''", "nan", "inf", "abc", "..", "/nonexistent/file", "null", "???", "1.5", "true",
           "[]", "[abc]", "{}", "${nope}", "[abc")
GROUPS = {p.relative_to(CONF).as_posix() for p in CONF.rglob("*") if p.is_dir()}  # config groups: data, model, ...
WORK = {"train": "rewardsoup.training.member:train_member", "merge": "rewardsoup.search.jobs:merge_job",
        "evaluate": "rewardsoup.evaluation.job:evaluate_models", "sample": "rewardsoup.sampling.job:sample_job",
        "tune": "rewardsoup.tuning.sft:tune_generator"}
# drawn values: numbers across every rule's range, short words and paths, and the generic ones (no ',' or '(':
# Hydra reads those as a sweep, which a single run refuses before any config exists)
VALUES = st.one_of(st.sampled_from(GENERIC), st.integers(-10**12, 10**12).map(str),
                   st.floats(allow_nan=True, allow_infinity=True).map(repr),
                   st.from_regex(r"[a-z0-9_./$\[\]{}-]{0,8}", fullmatch=True))
DRAWN = settings(derandomize=True, deadline=None, database=None, max_examples=60,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@dataclass
class Base:
    """An entry point's valid config, composed once with `overrides`; paths.root is `root` (never created)."""

    name: str
    overrides: list[str]
    cfg: DictConfig
    root: Path
    fields: list[Field] = field(default_factory=list)


@dataclass
class Outcome:
    code: Any
    err: str
    out: str
    reached: bool

    @property
    def errors(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("error:")]


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Base]:
    """Each entry point's config made valid: members and models are (stand-in) model folders, prompts a file."""
    tmp = tmp_path_factory.mktemp("generated")
    model, prompts = tmp / "model", tmp / "prompts.jsonl"
    model.mkdir()
    (model / "config.json").write_text("{}")  # what the model_folder rule looks for
    prompts.write_text('{"prompt": "hi"}\n')
    common = ["experiment=smoke", f"paths.root={tmp / 'outputs'}"]
    members = [f"members.{name}={model}" for name in _compose("merge", common).members]
    extra = {"train": [], "merge": members, "evaluate": [f"models.m={model}"],
             "sample": [f"reward_model={model}", f"prompts={prompts}"], "tune": [f"picks={prompts}"]}
    out = {}
    for name in ROOTS:
        shared = common if name != "tune" else common[1:] + ["logger=none"]  # tune.py takes no experiment bundle
        cfg = _compose(name, shared + extra[name])
        out[name] = Base(name, shared + extra[name], cfg, tmp / "outputs", fields(cfg))
    return out


def _compose(name: str, overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def _captured(main: Callable[[], Any], reached: list) -> Outcome:
    """Run `main` (an entry point's `entry(...)` or the script itself), capturing what it prints."""
    out, err, saved = io.StringIO(), io.StringIO(), os.environ.pop("HYDRA_FULL_ERROR", None)
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)  # entry() sets it for the process
        if saved is not None:
            os.environ["HYDRA_FULL_ERROR"] = saved
    return Outcome(code, err.getvalue(), out.getvalue(), bool(reached))


def run_case(base: Base, overrides: list[str]) -> Outcome:
    """One case, in-process. A config group's key (`data=...` selects a conf/data file) goes through Hydra's
    whole `compose`; any other key through its override step on the composed config (same errors, ~15x faster)."""
    reached: list = []

    def main():
        parsed = OverridesParser.create().parse_overrides(overrides)
        if any(o.key_or_group in GROUPS for o in parsed):
            return run_job(reached.append, _compose(base.name, base.overrides + overrides))
        cfg = copy.deepcopy(base.cfg)
        ConfigLoaderImpl._apply_overrides_to_config(parsed, cfg)
        return run_job(reached.append, cfg)

    return _captured(lambda: entry(main), reached)


def names(line: str, key: str) -> bool:
    """The error line names `key`: its dotted name, or its last component, as a whole word."""
    return any(re.search(rf"(?<![\w.]){re.escape(k)}(?!\w)", line) for k in (key, key.rsplit(".", 1)[-1]))


def assert_clean(o: Outcome, base: Base, case: str) -> None:
    """Refused the way every entry point refuses: exit code 1, one `error:` line, no traceback, nothing written."""
    assert not o.reached, f"{case}: passed every value rule and reached the work function"
    assert o.code == 1, f"{case}: exit code {o.code}\n{o.err}"
    assert len(o.errors) == 1 and "Traceback" not in o.err + o.out, f"{case}:\n{o.err}{o.out}"
    assert _files(base.root) == [], f"{case}: wrote {_files(base.root)}"


def assert_refused(o: Outcome, base: Base, key: str, case: str) -> None:
    assert_clean(o, base, case)
    assert names(o.errors[0], key), f"{case}: the error does not name {key}: {o.errors[0]}"


def refusals(f: Field) -> dict[str, str]:
    """reason -> the first value of GENERIC the field's schema refuses for it."""
    found: dict[str, str] = {}
    for text in GENERIC:
        why = why_bad(f, text)
        if why:
            found.setdefault(why.split(":")[0], text)
    return found


def test_the_fields_come_from_the_schemas(bases):
    """The walk finds the fields with what their schemas say; only Any fields take every value of GENERIC."""
    by_key = {root: {f.key: f for f in b.fields} for root, b in bases.items()}
    assert min(len(keys) for keys in by_key.values()) > 30
    lr, epochs, resume = (by_key["train"][k] for k in ("train.lr", "train.epochs", "train.resume"))
    assert (lr.kind, lr.check is not None, epochs.kind, resume.kind) == ("float", True, "int", "bool")
    assert by_key["train"]["data.split.val"].check is not None and by_key["train"]["data.limit"].optional
    assert by_key["merge"]["proxy.densities"].kind == "list" and by_key["merge"]["proxy.densities"].element == "float"
    assert all(by_key["merge"][k].path == "dir" for k in by_key["merge"] if k.startswith("members."))
    assert {"merge.density", "sweep.objective.kind", "trial.chunks", "pick.seed_ties.density"} <= set(by_key["merge"])
    assert {"bootstrap", "models.m", "best_of_n.min_candidates"} <= set(by_key["evaluate"])
    assert {"n", "generation.top_p", "reward_model"} <= set(by_key["sample"])
    assert by_key["sample"]["prompts"].path == "file" and not by_key["evaluate"]["models"].closed
    for root, base in bases.items():
        counts = {"rule or path": 0, "type only": 0, "anything": 0}
        for f in base.fields:
            found = refusals(f)
            kind = "rule or path" if {"rule", "path"} & set(found) else "type only" if "type" in found else "anything"
            counts[kind] += 1
            assert (kind == "anything") == (f.kind == "any"), (root, f)
        print(f"{root}: {len(base.fields)} fields, {counts}")


def test_a_new_schema_field_is_listed_without_editing_a_test():
    @dataclass
    class Fresh:
        steps: int = checked(3, check=at_least_one)

    cfg = OmegaConf.create({"fresh": OmegaConf.structured(Fresh)})
    (steps,) = [f for f in fields(cfg) if f.key == "fresh.steps"]
    assert steps.kind == "int" and why_bad(steps, "0").startswith("rule") and why_bad(steps, "2") is None


@pytest.mark.parametrize("root", ROOTS)
def test_the_base_configs_are_valid_and_reach_the_work(bases, root):
    o = run_case(bases[root], [])
    assert (o.code, o.reached, o.errors) == (0, True, [])


@pytest.mark.parametrize("root", ROOTS)
def test_every_field_refuses_its_bad_values(bases, root):
    """Each field, with the first value of GENERIC its schema refuses by its rule (or as a missing input path),
    by its type, and ???: one clear error naming it. (A config group's key, `data=...`, is a full compose: its
    type only. An interpolation of nothing and bad syntax come with the drawn values below.)"""
    base = bases[root]
    for f in base.fields:
        found = refusals(f)
        reasons = [r for r in ("rule", "path", "type") if r in found] + ["missing"]
        for reason in reasons[:1] if f.key in GROUPS else reasons:
            case = f"{f.key}={found[reason]}"
            assert_refused(run_case(base, [case]), base, f.key, f"{root}: {case} ({reason})")


@pytest.mark.parametrize("root", ROOTS)
def test_drawn_values_are_refused_with_one_clear_error(bases, root):
    """A drawn value the field's schema refuses: one error naming it. One it accepts may still break a rule
    across fields (val + test >= 1): then too one clean error, and never a traceback."""
    base = bases[root]

    @DRAWN
    @given(f=st.sampled_from(base.fields), text=VALUES)
    def check(f, text):
        o, case = run_case(base, [f"{f.key}={text}"]), f"{root}: {f.key}={text}"
        if why_bad(f, text):
            assert_refused(o, base, f.key, case)
        elif o.code != 0:
            assert_clean(o, base, case)

    check()


def _holders(base: Base) -> list[tuple[str, list[str]]]:
    """(prefix, keys) of the root and of every closed mapping: where a key the schema lacks is refused."""
    nodes = [("", base.cfg)] + [(f"{f.key}.", OmegaConf.select(base.cfg, f.key)) for f in base.fields
                                if f.kind in ("node", "dict") and f.closed]
    return [(prefix, [str(k) for k in node.keys()]) for prefix, node in nodes if isinstance(node, DictConfig)]


@st.composite
def typos(draw, base: Base) -> tuple[str, str]:
    """(the real key, a key one edit away from it that the config lacks)."""
    prefix, keys = draw(st.sampled_from(_holders(base)))
    real = draw(st.sampled_from(keys)) if keys else "key"
    at = draw(st.integers(0, len(real)))
    letter = draw(st.sampled_from("abcdefghijklmnopqrstuvwxyz_"))
    edit = draw(st.sampled_from(("insert", "delete", "double")))
    typo = {"insert": real[:at] + letter + real[at:], "delete": real[:at] + real[at + 1:],
            "double": real[:at] + real[at:at + 1] * 2 + real[at + 1:]}[edit]
    assume(typo and typo not in keys and re.fullmatch(r"[A-Za-z_]\w*", typo))
    return prefix + real, prefix + typo


@pytest.mark.parametrize("root", ROOTS)
def test_a_typod_key_beside_a_real_one_is_refused(bases, root):
    base = bases[root]

    @settings(DRAWN, max_examples=30)
    @given(pair=typos(base))
    def check(pair):
        real, typo = pair
        assert_refused(run_case(base, [f"{typo}=1"]), base, typo, f"{root}: {typo}=1 (beside {real})")

    check()


def _samples(base: Base) -> list[str]:
    """A few overrides that the schemas refuse in different places: a rule, a type, a ???, a typo (none of them
    a config group's key, which `run_case` composes in full anyway)."""
    picks = {}
    for f in (f for f in base.fields if f.key not in GROUPS):
        for reason, text in refusals(f).items():
            picks.setdefault(reason, f"{f.key}={text}")
    return [picks["rule"], picks["type"], picks["missing"], f"{base.fields[0].key}xx=1"]


@pytest.mark.parametrize("root", ROOTS)
def test_the_in_process_step_says_what_a_full_compose_says(bases, root):
    """The override step on a composed config, as used above, against Hydra's whole `compose`."""
    base = bases[root]
    for override in _samples(base):
        reached: list = []
        full = _captured(lambda: entry(lambda: run_job(reached.append, _compose(root, base.overrides + [override]))),
                         reached)
        fast = run_case(base, [override])
        assert_refused(full, base, override.split("=")[0], override)
        assert (fast.code, fast.errors) == (full.code, full.errors)


@pytest.mark.parametrize("root", ROOTS)
def test_each_script_refuses_before_hydra_writes_a_run_folder(bases, root, monkeypatch):
    """The real `@hydra.main` in-process: a typo (refused while composing) and a rule (refused by the
    ValidateConfig callback, before Hydra creates its run folder under paths.root)."""
    base, reached = bases[root], []
    module, attr = WORK[root].split(":")
    stand_in = types.ModuleType(module)
    setattr(stand_in, attr, reached.append)  # a rule that let a bad value through must not start real work
    monkeypatch.setitem(sys.modules, module, stand_in)
    script = str(ROOT / f"{root}.py")
    for override in _samples(base)[::3]:  # the rule, the typo
        monkeypatch.setattr(sys, "argv", [script, *base.overrides, override])
        try:  # as `python train.py ...` runs it: the file as __main__, Hydra finds conf/ beside it
            o = _captured(lambda: runpy.run_path(script, run_name="__main__"), reached)
        finally:
            GlobalHydra.instance().clear()
        assert_refused(o, base, override.split("=")[0], f"{root}.py {override}")


def test_a_typod_key_is_one_error_line_from_the_real_process(bases):
    """One real process (~5 s here): evaluate.py with a key its schema lacks (train.py's and merge.py's are in
    tests/test_bad_inputs.py; the four scripts run in-process above)."""
    base = bases["evaluate"]
    typo = f"{base.fields[-1].key}x=1"
    done = subprocess.run([sys.executable, "evaluate.py", *base.overrides, typo], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    o = Outcome(done.returncode, done.stderr, done.stdout, False)
    assert_refused(o, base, typo.split("=")[0], f"evaluate.py {typo}")


LEDGER_ROWS = st.lists(st.fixed_dictionaries({
    "trial": st.integers(0, 10**6), "note": st.text(max_size=12),
    "val": st.fixed_dictionaries({"a": st.floats(0, 1), "b": st.floats(0, 1)})}), min_size=1, max_size=5)


@settings(DRAWN, max_examples=25)
@given(rows=LEDGER_ROWS, cut=st.floats(0, 1, exclude_max=True))
def test_a_torn_last_ledger_line_is_a_counted_skip_and_never_kept(rows, cut):
    """A writer killed mid-row leaves a half line: `read` skips it and says which line, the next append starts
    on a fresh line, and rewriting the ledger (mark_front) keeps only whole rows."""
    *whole, torn = rows
    text = json.dumps(torn, sort_keys=True)
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()) as said:
        ledger.open_sweep(tmp, {"base": "b", "members": {}, "datasets": ["a", "b"], "objective": {}})
        for row in whole:
            ledger.append(tmp, row)
        with open(Path(tmp) / ledger.LEDGER, "a") as handle:
            handle.write(text[: 1 + int(cut * (len(text) - 1))])  # a strict prefix: never a whole row
        assert ledger.read(tmp)[1] == whole
        ledger.append(tmp, {"trial": -1, "val": {"a": 0.5, "b": 0.5}})
        assert ledger.read(tmp)[1] == whole + [{"trial": -1, "val": {"a": 0.5, "b": 0.5}}]
        ledger.mark_front(tmp)
        lines = (Path(tmp) / ledger.LEDGER).read_text().splitlines()
        assert [json.loads(line)["trial"] for line in lines] == [r["trial"] for r in whole] + [-1]
    skipped = [line for line in said.getvalue().splitlines() if "unreadable ledger row skipped" in line]
    assert len(skipped) == 3 and all(f"{ledger.LEDGER}:{len(rows)}:" in line for line in skipped)  # 3 reads
