"""Every W&B sweep spec's parameters and fixed arguments compose with the real merge config."""

from pathlib import Path

import pytest
import yaml

from conftest import ROOT

SPECS = sorted((ROOT / "sweeps").glob("*.yaml"))


def _values(spec):
    if "values" in spec:
        return spec["values"]
    if "value" in spec:
        return [spec["value"]]
    return [spec["min"], spec["max"]]


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_spec_composes_with_every_parameter(path: Path, compose_cfg):
    spec = yaml.safe_load(path.read_text())
    assert spec["program"] == "merge.py" and (ROOT / spec["program"]).exists()
    assert "${args_no_hyphens}" in spec["command"] and spec["metric"]["name"] == "objective"
    fixed = [a for a in spec["command"] if "=" in a and not a.startswith("$")]
    for key, pspec in spec["parameters"].items():
        for value in _values(pspec):
            cfg = compose_cfg("merge", fixed + [f"{key}={value}"])
            node = cfg
            for part in key.split("."):
                node = node[part]
            assert node == value
    assert cfg.mode == "trial"
