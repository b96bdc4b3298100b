"""The real config tree composes for every choice, and its values mean what they say."""

import itertools
import re
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from conftest import ROOT, group_choices

MODELS = group_choices("model")
DATAS = group_choices("data")
OBJECTIVES = group_choices("objective")


def test_groups_have_the_promised_choices():
    assert {"smollm2_135m", "gpt2_8layers", "tiny_gpt2"} <= set(MODELS)
    assert {"demo_thumbs", "demo_pairs", "demo_harmless", "hh_rlhf", "chai_thumbs", "chai_feedback",
            "chai_pairs", "local_pairs", "local_binary"} <= set(DATAS)
    assert {"binary", "pairwise", "multitask"} == set(OBJECTIVES)
    assert {"wandb", "none"} <= set(group_choices("logger"))


@pytest.mark.parametrize("model,data,objective", list(itertools.product(MODELS, DATAS, OBJECTIVES)))
def test_train_composes_for_every_choice(compose_cfg, out_root, model, data, objective):
    overrides = [f"model={model}", f"data={data}", f"objective={objective}"]
    if data.startswith("local_"):
        overrides.append("data.source=/tmp/mine.jsonl")
    cfg = compose_cfg("train", overrides)
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert resolved["data"]["name"] == data
    assert resolved["objective"]["name"] == objective
    assert resolved["train"]["output_dir"] == f"{out_root}/members/{data}-{objective}"
    assert resolved["model"]["base_dir"].startswith(str(out_root))


@pytest.mark.parametrize("root", ["merge", "evaluate", "sample"])
@pytest.mark.parametrize("model", MODELS)
def test_other_roots_compose(compose_cfg, root, model):
    cfg = compose_cfg(root, [f"model={model}"])
    OmegaConf.to_container(cfg, resolve=True)
    assert cfg.model.name == model


def test_evaluate_has_every_demo_dataset(compose_cfg):
    cfg = compose_cfg("evaluate")
    assert set(cfg.datasets) == {"demo_thumbs", "demo_pairs", "demo_harmless"}
    assert cfg.datasets.demo_pairs.pairs.group_key == "group"
    # demo_pairs inherits demo_thumbs' rows and split, so a text sits in the same split in both
    assert cfg.datasets.demo_pairs.split == cfg.datasets.demo_thumbs.split


def test_seed_recipe_reproduces_the_seed(compose_cfg):
    cfg = compose_cfg("train", ["experiment=seed_recipe"])
    assert (cfg.train.lr, cfg.train.epochs, cfg.train.batch_size, cfg.train.max_length) == (1e-6, 4, 8, 1024)
    assert cfg.model.name == "gpt2_8layers" and cfg.model.layers == 8 and cfg.model.dtype == "float16"


def test_logger_none_and_paths_root_override(compose_cfg, tmp_path):
    cfg = compose_cfg("train", ["logger=none", f"paths.root={tmp_path}/elsewhere"])
    assert cfg.logger.backend == "none"
    assert cfg.train.output_dir.startswith(f"{tmp_path}/elsewhere/members/")


def test_relative_root_becomes_absolute(compose_cfg):
    cfg = compose_cfg("train", ["paths.root=rel/out"])
    for path in (cfg.paths.bases, cfg.paths.members, cfg.train.output_dir, cfg.model.base_dir):
        assert path.startswith("/") and "rel/out/" in path


# A config value, as ../shared/tools/house.py counts them: a `key: value` line, or a `- key: value` list item
# (so `defaults:` entries like `- model: tiny_gpt2` count; bare `- _self_` / `- override /x: y` do not).
# A `key:` line opening a block is not a value: the leaves under it are.
_VALUE_LINE = re.compile(r"^\s*(-\s+)?[\w.\-]+:\s+\S")


def _has_comment(line: str) -> bool:
    """True if the line ends in a YAML comment: a `#` after whitespace, outside quotes."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return True
    return False


def uncommented_values(text: str) -> list[int]:
    """1-based numbers of the value lines in a YAML text that carry no trailing `# ...` comment."""
    return [i for i, line in enumerate(text.splitlines(), 1)
            if _VALUE_LINE.match(line) and not line.lstrip().startswith("#") and not _has_comment(line)]


@pytest.mark.parametrize("text,bare", [
    ("a: 1  # why\n", []),
    ("a: 1\n", [1]),
    ("# header comment\na: 1\n", [2]),                      # a file header does not comment its first value
    ("# why a\na: 1  # why\nb: 2\n", [3]),                 # every value needs its own
    ("block:  # a block\n  x: 1  # why\n  y: 2\n", [3]),   # the block line is no value; its leaves are
    ("block:\n  x: {lo: 0, hi: 2}  # why\n", []),
    ("defaults:\n  - _self_\n  - model: tiny  # why\n  - data: demo\n", [4]),  # list entries with a key count
    ("defaults:\n  - override /model: tiny\n  - optuna\n", []),             # as in house.py: not counted
    ("url: http://x/#frag\n", [1]),                         # `#` inside a value is no comment
    ("tag: 'a # b'\n", [1]),
    ("tag: \"a # b\"  # why\n", []),
    ("lr: 5e-5               # why\n                         # and more\nb: 1  # why\n", []),
])
def test_uncommented_values_finds_every_bare_value(text, bare):
    assert uncommented_values(text) == bare


def test_uncommented_values_on_a_real_file(tmp_path):
    """A real conf file stripped of its comments is all bare; the same file commented line by line passes."""
    text = (ROOT / "conf" / "train.yaml").read_text()
    stripped = "\n".join(re.sub(r"\s+#.*$", "", line) for line in text.splitlines()
                         if not line.lstrip().startswith("#"))
    values = [i for i, line in enumerate(stripped.splitlines(), 1) if _VALUE_LINE.match(line)]
    assert len(values) > 20 and uncommented_values(stripped) == values
    commented = tmp_path / "train.yaml"
    commented.write_text("\n".join(line + "  # why" if i in values else line
                                   for i, line in enumerate(stripped.splitlines(), 1)) + "\n")
    assert uncommented_values(commented.read_text()) == []


def test_every_config_value_is_commented():
    """House rule: every value in conf/ carries a short comment with its reason, on its own line."""
    missing = [f"{path.relative_to(ROOT)}:{n}"
               for path in sorted((ROOT / "conf").rglob("*.yaml"))
               for n in uncommented_values(path.read_text(encoding="utf-8"))]
    assert not missing, f"{len(missing)} config values without a comment:\n" + "\n".join(missing)


def test_cli_cfg_job_composes(out_root):
    out = subprocess.run(
        [sys.executable, "train.py", "--cfg", "job", "model=tiny_gpt2", "data=demo_pairs", "objective=pairwise"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "name: demo_pairs" in out.stdout and "name: pairwise" in out.stdout


def test_unknown_choice_is_a_clear_error(out_root):
    out = subprocess.run([sys.executable, "train.py", "--cfg", "job", "data=nope"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "nope" in out.stderr and "data" in out.stderr


@pytest.mark.parametrize("preset", group_choices("merge"))
def test_every_merge_preset_composes_into_a_valid_request(compose_cfg, preset):
    """Each conf/merge preset, on the demo members, is a request mergekit's registry accepts, with every
    parameter the preset sets reaching the request (nothing silently dropped)."""
    from rewardsoup.merging.methods import resolve
    from rewardsoup.merging.soup import merge_request

    cfg = compose_cfg("merge", [f"merge={preset}", "logger=none"])  # typed by its schema; no members on disk
    r = merge_request(cfg)
    resolved = resolve(r["method"], r["members"], r["weights"], r["density"], r["params"])
    own = {"defaults", "method", "use", "density", "seed", "weights", "dtype", "name", "output_dir"}  # MergeConfig's
    set_here = set(OmegaConf.load(ROOT / "conf" / "merge" / f"{preset}.yaml")) - own
    assert set_here <= set(r["params"]), f"{preset}: {sorted(set_here - set(r['params']))} never reach the merge"
    assert len(resolved["names"]) >= resolved["spec"].min_members


def test_every_wired_method_has_a_preset(compose_cfg):
    from rewardsoup.merging.methods import SUPPORTED

    methods = {compose_cfg("merge", [f"merge={p}"]).merge.method for p in group_choices("merge")}
    assert set(SUPPORTED) - {"passthrough"} <= methods  # passthrough builds the base, it is no soup
