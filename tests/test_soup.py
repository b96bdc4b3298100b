"""merge.py's work on tiny members: soups are written atomically with a YAML that mergekit reproduces."""

import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import ROOT
from rewardsoup.core.errors import ConfigError, ModelError
from rewardsoup.merging.soup import merge_request, merge_soup


@pytest.mark.parametrize("method", ["ties", "seed_ties", "linear", "task_arithmetic", "dare_ties", "slerp",
                                    "model_stock"])
def test_every_preset_merges(compose_cfg, merge_overrides, out_root, method):
    cfg = compose_cfg("merge", merge_overrides + [f"merge={method}"])
    out = merge_soup(cfg)
    sd = load_file(f"{out}/model.safetensors")
    assert sd["score.weight"].shape == (1, 32)
    written = yaml.safe_load(open(f"{out}/mergekit_config.yml"))
    assert written["merge_method"] == cfg.merge.method
    if method == "seed_ties":
        weights = {m["model"].split("/")[-1]: m["parameters"]["weight"] for m in written["models"]}
        assert weights == {"demo_thumbs-binary": 0.5, "demo_pairs-pairwise": 0.6, "demo_harmless-pairwise": 0.05}
        assert written["dtype"] == "float16" and sd["score.weight"].dtype == torch.float16


def test_yaml_beside_the_soup_reproduces_it(compose_cfg, merge_overrides, tmp_path):
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    out = merge_soup(compose_cfg("merge", merge_overrides + ["merge=ties", "merge.density=0.5"]))
    cfg = MergeConfiguration.model_validate(yaml.safe_load(open(f"{out}/mergekit_config.yml")))
    run_merge(cfg, str(tmp_path / "again"), options=MergeOptions(quiet=True))
    a, b = load_file(f"{out}/model.safetensors"), load_file(tmp_path / "again" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_weights_are_keyed_by_member_name(compose_cfg, merge_overrides):
    cfg = compose_cfg("merge", merge_overrides + ["merge.weights.thumbs=0.9", "merge.weights.harmless=0.1"])
    r = merge_request(cfg)
    assert r["weights"]["thumbs"] == 0.9 and r["weights"]["harmless"] == 0.1


def test_bad_requests_name_the_field_and_leave_nothing(compose_cfg, merge_overrides, out_root, tmp_path):
    with pytest.raises(ConfigError, match="unknown member 'nobody'"):
        merge_soup(compose_cfg("merge", merge_overrides + ["+merge.weights.nobody=1.0"]))
    with pytest.raises(ConfigError, match="density"):
        merge_soup(compose_cfg("merge", merge_overrides + ["merge.density=0"]))
    with pytest.raises((ConfigError, ModelError), match="ghost"):
        merge_soup(compose_cfg("merge", merge_overrides + [f"members.harmless={tmp_path}/ghost"]))
    assert not (out_root / "soups").exists() or not any((out_root / "soups").iterdir())


def test_cli_exit_codes(merge_overrides, out_root):
    ok = subprocess.run([sys.executable, "merge.py", *merge_overrides, "merge=linear"], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert (out_root / "soups" / "linear" / "mergekit_config.yml").exists()
    bad = subprocess.run([sys.executable, "merge.py", *merge_overrides, "merge=ties", "merge.density=1.5"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "density" in bad.stderr and "Traceback" not in bad.stderr
    assert not (out_root / "soups" / "ties").exists()
