"""Kill anywhere, lose nothing (#21): each long stage SIGKILLed at exact and at random points, rerun with the same
command, and compared with an uninterrupted run of that command.

Stages (tiny models): train.py (a member), merge.py -m (an Optuna sweep), merge.py mode=pick (export and test of
the sweep's best trial), merge.py search=routed (a routed soup fitted on val), evaluate.py, sample.py (best-of-N).
A stage's reference runs uninterrupted in the same outputs folder as its killed runs (then moved aside), so the
paths written into files are the same and files compare byte for byte. After every kill, before the rerun: nothing
under a final name is partial, and what the pipeline would take as done (`rewardsoup.pipeline.run`'s skip checks)
is complete. Kill points (tests/killpoint.py) are exact (before/after a final rename, the N-th call of a function)
or random (seeded delays after a marker); the commands run as processes of a fork server that imported torch & co
once (~10 s saved per command).
`make test` runs one representative kill per stage; the whole matrix is slow-marked (`make test-slow`).
"""

import json
import os
import random
import shutil
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from conftest import ROOT
from killpoint import Launcher
from rewardsoup.merging.on_disk import SOUP_CONFIG
from rewardsoup.models.assets import resolve_model
from rewardsoup.models.cards import CARD
from rewardsoup.sweep import ledger
from rewardsoup.sweep.pick import PICK_DONE
from rewardsoup.core.checkpoints import last_checkpoint
from rewardsoup.training.member import MEMBER_META

DATASETS = ("demo_thumbs", "demo_pairs", "demo_harmless")
SMALL = [f"datasets.{name}.limit=120" for name in DATASETS]  # a few dozen val and test rows each
RANDOM = random.Random(21)  # the random kill points: same seed, same delays
slow = pytest.mark.slow


def before(target: str, n: int = 1) -> dict:
    """Killed instead of the N-th rename onto a path matching `target` (a regex)."""
    return {"replace": target, "when": "before", "n": n}


def after(target: str, n: int = 1) -> dict:
    return {"replace": target, "when": "after", "n": n}


def call(target: str, when: str, n: int = 1) -> dict:
    return {"call": target, "when": when, "n": n}


def timer(marker: str | None, low: float, high: float) -> dict:
    """A random point: a seeded delay in [low, high) s after `marker` (a glob under the outputs) exists."""
    return {"timer": marker, "delay": round(RANDOM.uniform(low, high), 3)}


class Runner:
    """Runs a stage's command in `work/outputs` through the fork server, logs beside it."""

    def __init__(self, launcher: Launcher, work: Path, argv: list[str]):
        self.launcher, self.work, self.argv, self.runs, self.kills = launcher, work, argv, 0, 0
        self.root = work / "outputs"

    def __call__(self, spec: dict | None = None) -> int:
        self.runs += 1
        if spec and "timer" in spec and spec["timer"]:
            spec = {**spec, "timer": str(self.root / spec["timer"])}
        env = {**os.environ, "REWARDSOUP_OUTPUTS": str(self.root), "WANDB_MODE": "offline"}
        return self.launcher.run(self.argv, self.work / f"run{self.runs}.log", env, spec)

    def log(self) -> str:
        return (self.work / f"run{self.runs}.log").read_text()[-3000:]

    def reference(self) -> Path:
        """The uninterrupted run, moved to `work/reference`."""
        assert self(None) == 0, self.log()
        ref = self.work / "reference"
        os.replace(self.root, ref)
        return ref

    def kill_then_rerun(self, specs: list[dict], complete_or_absent, prepare=None) -> None:
        """Fresh outputs (`prepare(root)` adds the inputs), each spec kills one run (`self.kills` of them so far,
        checked by `complete_or_absent(root)` right after), then the same command runs to its end."""
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        if prepare is not None:
            prepare(self.root)
        for self.kills, spec in enumerate(specs, 1):
            rc = self(spec)
            assert rc == -9 or ("timer" in spec and rc == 0), f"{spec}: exit code {rc}, not killed there\n{self.log()}"
            complete_or_absent(self.root)
        assert self(None) == 0, self.log()


def files(folder: Path) -> dict[str, bytes]:
    """Relative path -> bytes, but the dot-named temporaries a killed atomic write leaves (never read as output)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)}


def same_files(ref: Path, got: Path, skip: tuple[str, ...] = ()) -> None:
    """Same file names, same bytes (but `skip`)."""
    a, b = files(ref), files(got)
    assert sorted(a) == sorted(b), (ref, got)
    assert [k for k in a if Path(k).name not in skip and a[k] != b[k]] == []


@pytest.fixture(scope="module")
def launcher():
    server = Launcher(ROOT)
    yield server
    server.close()


# --- train.py: one member --------------------------------------------------------------------------------------

MEMBER = "demo_thumbs-binary"
TRAIN_STEPS = 6
VOLATILE_META = ("train_wall_s", "train_loss", "resumed_from")  # this run's wall, loss mean and start


@pytest.fixture(scope="module")
def train_stage(launcher, tmp_path_factory, tiny_base_dir):
    # constant lr: one optimizer step too many after a resume would change the weights (linear decays to 0)
    run = Runner(launcher, tmp_path_factory.mktemp("train"), [
        "train.py", "experiment=smoke", f"model.base_dir={tiny_base_dir}", "data=demo_thumbs", "data.limit=200",
        f"train.max_steps={TRAIN_STEPS}", "train.save_steps=2", "train.batch_size=2", "train.scheduler=constant",
        "train.lr=1e-3", "train.resume=true"])
    return run, run.reference()


def member_complete_or_absent(root: Path) -> None:
    final = root / "members" / MEMBER
    if final.exists():  # the pipeline's skip check: MEMBER_META
        meta = json.loads((final / MEMBER_META).read_text())
        assert meta["steps"] == TRAIN_STEPS and (final / CARD).exists() and (final / "tokenizer.json").exists()
        assert load_file(final / "model.safetensors")
    work = root / "members" / f".{MEMBER}.work"
    resume = last_checkpoint(work, TRAIN_STEPS, main=False) if work.exists() else None
    if resume:  # what a rerun resumes from holds everything a resume reads
        names = {p.name for p in Path(resume).iterdir()}
        assert {"model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"} <= names, names
        assert load_file(Path(resume) / "model.safetensors")


def same_member(ref: Path, root: Path) -> None:
    same_files(ref / "members" / MEMBER, root / "members" / MEMBER, skip=(MEMBER_META, CARD))
    cards = [[line for line in (r / "members" / MEMBER / CARD).read_text().splitlines()
              if not line.startswith("- train loss ")] for r in (ref, root)]  # the card shows loss and wall
    assert cards[0] == cards[1]
    metas = [json.loads((r / "members" / MEMBER / MEMBER_META).read_text()) for r in (ref, root)]
    for meta in metas:
        for key in VOLATILE_META:
            meta.pop(key)
    assert metas[0] == metas[1]
    assert not (root / "members" / f".{MEMBER}.work").exists()


TRAIN_KILLS = [
    pytest.param([before(f"/members/{MEMBER}$")], id="before-final-rename"),
    pytest.param([call("transformers.trainer:Trainer._save_checkpoint", "before")], id="before-any-checkpoint",
                 marks=slow),
    pytest.param([call("transformers.trainer:Trainer._save_checkpoint", "after", 2)], id="mid-way", marks=slow),
    pytest.param([call("transformers.trainer:Trainer._save_rng_state", "before", 2)], id="mid-checkpoint",
                 marks=slow),
    pytest.param([after(f"/members/{MEMBER}$")], id="after-final-rename", marks=slow),
    pytest.param([call("transformers.trainer:Trainer._save_checkpoint", "after", 1),
                  call("transformers.trainer:Trainer._save_rng_state", "before", 1),
                  before(f"/members/{MEMBER}$")], id="three-kills", marks=slow),
    pytest.param([timer(f"members/.{MEMBER}.work/checkpoints/checkpoint-2", 0.0, 2.0) for _ in range(3)],
                 id="random", marks=slow),
]


@pytest.mark.parametrize("kills", TRAIN_KILLS)
def test_train_killed_then_rerun_writes_the_uninterrupted_member(train_stage, kills):
    run, ref = train_stage
    run.kill_then_rerun(kills, member_complete_or_absent)
    same_member(ref, run.root)


# --- merge.py -m: an Optuna sweep of in-memory trials ------------------------------------------------------------

SWEEP, N_TRIALS = "km", 3
VOLATILE_ROW = ("time", "merge_s", "trial_s", "trial", "front")  # when, how long, which Optuna number, the front


@pytest.fixture(scope="module")
def merge_args(tiny_members, tiny_base_dir, tmp_path_factory) -> list[str]:
    """The sweep's and the pick's overrides; their tokenized eval sets are cached once for all their runs
    (evaluate.py's own cache is killed and compared below)."""
    return ["logger=none", "model=tiny_gpt2", f"model.base_dir={tiny_base_dir}", "search=optuna",
            f"sweep.name={SWEEP}", "trial.max_length=64", *SMALL, f"paths.cache={tmp_path_factory.mktemp('cache')}",
            *[f"members.{name}={path}" for name, path in tiny_members.items()]]


@pytest.fixture(scope="module")
def sweep_stage(launcher, tmp_path_factory, merge_args):
    run = Runner(launcher, tmp_path_factory.mktemp("sweep"),
                 ["merge.py", "-m", *merge_args, f"hydra.sweeper.n_trials={N_TRIALS}"])
    return run, run.reference()


def rows_by_key(root: Path) -> dict[str, dict]:
    rows = ledger.read(root / "sweeps" / SWEEP)[1]
    assert len({r["key"] for r in rows}) == len(rows)  # no request scored twice
    return {r["key"]: {k: v for k, v in r.items() if k not in VOLATILE_ROW} for r in rows}


def sweep_complete_or_absent(root: Path) -> None:
    sweep = root / "sweeps" / SWEEP
    if (sweep / ledger.LEDGER).exists():  # one whole JSON row per line: a kill between rows tears none
        lines = (sweep / ledger.LEDGER).read_text().splitlines()
        assert all(json.loads(line)["objective"] is not None for line in lines)
    for name in ("pick.json", "members.json", "sweep.json"):
        if (sweep / name).exists():
            json.loads((sweep / name).read_text())


APPEND_AFTER_1 = call("rewardsoup.sweep.ledger:append", "after", 1)  # the next ledger row of this run
SWEEP_KILLS = [  # (kills, rows the rerun shares with the reference: later trials draw from a new seed by design)
    pytest.param([call("rewardsoup.sweep.ledger:append", "after", 2)], 2, id="mid-sweep"),
    pytest.param([call("rewardsoup.sweep.ledger:append", "before", 1)], 1, id="first-trial-scoring", marks=slow),
    pytest.param([call("rewardsoup.sweep.ledger:append", "after", N_TRIALS)], N_TRIALS, id="last-row-untold",
                 marks=slow),
    pytest.param([before(f"/sweeps/{SWEEP}/pick.json$")], N_TRIALS, id="summary", marks=slow),
    pytest.param([APPEND_AFTER_1, APPEND_AFTER_1, timer(f"sweeps/{SWEEP}/{ledger.LEDGER}", 0.0, 3.0)], 1,
                 id="three-kills", marks=slow),
]


@pytest.mark.parametrize("kills, shared", SWEEP_KILLS)
def test_sweep_killed_then_rerun_keeps_every_trial_and_redoes_none(sweep_stage, kills, shared):
    run, ref = sweep_stage
    seen: dict[str, dict] = {}  # the rows after the first kill

    def check(root: Path) -> None:
        sweep_complete_or_absent(root)
        if run.kills == 1 and (root / "sweeps" / SWEEP / ledger.HEADER).exists():
            seen.update({r["key"]: r for r in ledger.read(root / "sweeps" / SWEEP)[1]})

    run.kill_then_rerun(kills, check)
    want, got = rows_by_key(ref), rows_by_key(run.root)
    first = {k: {f: v for f, v in r.items() if f not in VOLATILE_ROW} for k, r in seen.items()}
    assert all(want[k] == r for k, r in first.items())  # up to the first kill the run replays the reference
    after_rerun = {r["key"]: r for r in ledger.read(run.root / "sweeps" / SWEEP)[1]}
    assert all(after_rerun[k]["time"] == r["time"] for k, r in seen.items())  # kept, not scored again
    assert sum(r["state"] == "complete" for r in got.values()) == N_TRIALS
    assert [got[k] == want[k] for k in got if k in want] == [True] * shared  # same request, same scores
    results = yaml.safe_load((run.root / "sweeps" / SWEEP / "optimization_results.yaml").read_text())
    assert results["n_complete"] == N_TRIALS
    pick = json.loads((run.root / "sweeps" / SWEEP / "pick.json").read_text())
    assert pick["objective"] == max(r["objective"] for r in got.values())
    if shared == N_TRIALS:
        assert pick == json.loads((ref / "sweeps" / SWEEP / "pick.json").read_text())


# --- merge.py mode=pick: export the best trial with mergekit, test it ----------------------------------------------

PICKED, SEED_TIES, REPORT = f"best-{SWEEP}", f"seed_ties-{SWEEP}", "evaluate-test"


@pytest.fixture(scope="module")
def pick_stage(launcher, tmp_path_factory, merge_args, sweep_stage):
    finished = sweep_stage[1] / "sweeps" / SWEEP

    def prepare(root: Path) -> None:
        shutil.copytree(finished, root / "sweeps" / SWEEP)

    run = Runner(launcher, tmp_path_factory.mktemp("pick"), ["merge.py", "mode=pick", *merge_args, "pick.bootstrap=50"])
    run.root.mkdir(parents=True)
    prepare(run.root)
    return run, run.reference(), prepare


def soups_complete_or_absent(root: Path, ref: Path) -> None:
    for soup in (root / "soups").glob("[!.]*") if (root / "soups").exists() else []:
        names = {p.name for p in soup.iterdir()}
        assert {"config.json", "model.safetensors", SOUP_CONFIG, CARD, "tokenizer.json"} <= names, (soup, names)
        assert load_file(soup / "model.safetensors")
    report = root / "reports" / REPORT
    if report.exists():
        assert {p.name for p in report.iterdir()} == {"table.md", "results.csv", "results.json", "length_bias.png"}
        json.loads((report / "results.json").read_text())
    if (root / "soups" / PICKED / PICK_DONE).exists():  # what the pipeline skips on is the finished pick
        same_files(ref / "soups" / PICKED, root / "soups" / PICKED)


PICK_KILLS = [
    pytest.param([after(f"/reports/{REPORT}$")], id="after-test-table"),
    pytest.param([before(f"/soups/{PICKED}$")], id="before-export-rename", marks=slow),
    pytest.param([after(f"/soups/{PICKED}$")], id="after-export-rename", marks=slow),
    pytest.param([before(f"/soups/{SEED_TIES}$")], id="before-seed-ties-rename", marks=slow),
    pytest.param([before(f"/{PICK_DONE}$")], id="before-done-marker", marks=slow),
    pytest.param([after(f"/soups/{PICKED}$"), before(f"/reports/{REPORT}$"), timer(f"soups/{PICKED}", 0.0, 4.0)],
                 id="three-kills", marks=slow),
]


@pytest.mark.parametrize("kills", PICK_KILLS)
def test_pick_killed_then_rerun_exports_and_tests_the_same_soup(pick_stage, kills):
    run, ref, prepare = pick_stage
    run.kill_then_rerun(kills, lambda root: soups_complete_or_absent(root, ref), prepare)
    for folder in (f"soups/{PICKED}", f"soups/{SEED_TIES}", f"reports/{REPORT}"):
        same_files(ref / folder, run.root / folder)
    for name in ("pick.json", ledger.LEDGER):
        assert (ref / "sweeps" / SWEEP / name).read_bytes() == (run.root / "sweeps" / SWEEP / name).read_bytes()


# --- merge.py search=routed: the sweep's pick, the members' differences, a router fitted on val ----------------

ROUTED = f"routed-{SWEEP}"
ROUTED_FILES = {"routed_soup.json", "shared", "deltas.safetensors", "router.safetensors", "README.md"}
VOLATILE_MANIFEST = ("wall_s", "fit_s", "walls")  # how long the build, the fit and each part took


@pytest.fixture(scope="module")
def routed_stage(launcher, tmp_path_factory, merge_args, sweep_stage):
    finished = sweep_stage[1] / "sweeps" / SWEEP

    def prepare(root: Path) -> None:
        shutil.copytree(finished, root / "sweeps" / SWEEP)

    args = [a for a in merge_args if a != "search=optuna"]
    run = Runner(launcher, tmp_path_factory.mktemp("routed"), ["merge.py", "search=routed", *args, "routed.rank=2",
                                                              "routed.epochs=2", "routed.batch_rows=4"])
    run.root.mkdir(parents=True)
    prepare(run.root)
    return run, run.reference(), prepare


def manifest(folder: Path) -> dict:
    data = json.loads((folder / "routed_soup.json").read_text())
    for key in VOLATILE_MANIFEST:
        data.pop(key, None)
        data["fit"].pop(key, None)
    return data


def routed_complete_or_absent(root: Path) -> None:
    folder = root / "soups" / ROUTED
    if folder.exists():  # one atomic rename: all of it or nothing
        assert {p.name for p in folder.iterdir()} == ROUTED_FILES
        assert load_file(folder / "deltas.safetensors") and manifest(folder)["kind"] == "routed"


ROUTED_KILLS = [
    pytest.param([call("rewardsoup.routing.fit:accuracy", "after", 2)], id="mid-fit"),
    pytest.param([before(f"/soups/{ROUTED}$")], id="before-folder-rename", marks=slow),
    pytest.param([after(f"/soups/{ROUTED}$")], id="after-folder-rename", marks=slow),
]


@pytest.mark.parametrize("kills", ROUTED_KILLS)
def test_routed_killed_then_rerun_fits_the_same_router(routed_stage, kills):
    run, ref, prepare = routed_stage
    run.kill_then_rerun(kills, routed_complete_or_absent, prepare)
    same_files(ref / "soups" / ROUTED, run.root / "soups" / ROUTED, skip=("routed_soup.json", "README.md"))
    assert manifest(ref / "soups" / ROUTED) == manifest(run.root / "soups" / ROUTED)


# --- evaluate.py: members scored on the test splits --------------------------------------------------------------

@pytest.fixture(scope="module")
def evaluate_stage(launcher, tmp_path_factory, tiny_members, tiny_base_dir):
    run = Runner(launcher, tmp_path_factory.mktemp("evaluate"), [
        "evaluate.py", "logger=none", "model=tiny_gpt2", f"model.base_dir={tiny_base_dir}", "split=test",
        "bootstrap=50", "max_length=64", *SMALL, *[f"+models.{n}={tiny_members[n]}" for n in ("thumbs", "pairs")]])
    return run, run.reference()


def report_complete_or_absent(root: Path) -> None:
    for cached in (root / "cache" / "evalsets").glob("[!.]*") if (root / "cache").exists() else []:
        assert json.loads(cached.read_text())["ids"]  # the cache is read back as is: never a partial file
    report = root / "reports" / REPORT
    if report.exists():
        assert {p.name for p in report.iterdir()} == {"table.md", "results.csv", "results.json", "length_bias.png"}
        json.loads((report / "results.json").read_text())


EVALUATE_KILLS = [
    pytest.param([before(f"/reports/{REPORT}$")], id="before-report-rename"),
    pytest.param([before("/cache/evalsets/")], id="before-first-cache-entry", marks=slow),
    pytest.param([after("/cache/evalsets/", 2)], id="mid-way", marks=slow),
    pytest.param([after(f"/reports/{REPORT}$")], id="after-report-rename", marks=slow),
    pytest.param([after("/cache/evalsets/"), timer(None, 0.5, 6.0), timer(None, 0.5, 6.0)], id="three-kills",
                 marks=slow),
]


@pytest.mark.parametrize("kills", EVALUATE_KILLS)
def test_evaluate_killed_then_rerun_writes_the_same_report(evaluate_stage, kills):
    run, ref = evaluate_stage
    run.kill_then_rerun(kills, report_complete_or_absent)
    same_files(ref / "reports" / REPORT, run.root / "reports" / REPORT)
    same_files(ref / "cache", run.root / "cache")


# --- sample.py: best-of-N with the tiny GPT-2 as generator ---------------------------------------------------------

PROMPTS = [{"prompt": "How do I boil an egg?"}, {"prompt": "Tell me a joke."}, {"prompt": "Plan a short trip."}]


@pytest.fixture(scope="module")
def sample_stage(launcher, tmp_path_factory, tiny_members):
    work = tmp_path_factory.mktemp("sample")
    prompts = work / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    run = Runner(launcher, work, [
        "sample.py", "logger=none", f"reward_model={tiny_members['thumbs']}", f"generator={resolve_model('tiny:gpt2')}",
        f"prompts={prompts}", "n=3", "generation.max_new_tokens=8", "generation.batch_prompts=1",
        "print_candidates=false", "max_length=128", f"output={work / 'outputs' / 'samples' / 'best.jsonl'}"])
    return run, run.reference()


def samples_complete_or_absent(root: Path) -> None:
    out = root / "samples" / "best.jsonl"
    if out.exists():  # the pipeline's skip check for best-of-4
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(rows) == len(PROMPTS) and all(len(r["candidates"]) == 3 for r in rows)


SAMPLE_KILLS = [
    pytest.param([call("rewardsoup.sampling.job:generate_replies", "after", 2)], id="mid-way"),
    pytest.param([call("rewardsoup.sampling.job:generate_replies", "before", 1)], id="before-any-reply",
                 marks=slow),
    pytest.param([before("/samples/best.jsonl$")], id="before-output-rename", marks=slow),
    pytest.param([after("/samples/best.jsonl$")], id="after-output-rename", marks=slow),
    pytest.param([call("rewardsoup.sampling.job:score_candidates", "after", 1), timer(None, 0.2, 3.0),
                  before("/samples/best.jsonl$")], id="three-kills", marks=slow),
]


@pytest.mark.parametrize("kills", SAMPLE_KILLS)
def test_sample_killed_then_rerun_writes_the_same_best_of_n(sample_stage, kills):
    run, ref = sample_stage
    run.kill_then_rerun(kills, samples_complete_or_absent)
    assert (ref / "samples" / "best.jsonl").read_bytes() == (run.root / "samples" / "best.jsonl").read_bytes()
