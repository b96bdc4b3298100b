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


# W&B's own validator: wandb 0.31.0 ships no sweep schema; `wandb sweep` validates on the server, and the
# local controller (wandb/wandb_controller.py `_validate`) calls `sweeps.schema_violations_from_proposed_config`
# from W&B's `sweeps` package (the `wandb[sweeps]` extra), whose config/schema.json is the jsonschema.
def _sweeps():
    return pytest.importorskip("sweeps", reason="W&B's sweep validator: pip install --no-deps sweeps==0.3.0")


def _violations(spec: dict) -> list[str]:
    return _sweeps().schema_violations_from_proposed_config(spec)


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_spec_passes_wandbs_sweep_schema(path: Path):
    from wandb.sdk.launch.sweeps.utils import sweep_config_err_text_from_jsonschema_violations

    spec = yaml.safe_load(path.read_text())
    violations = _violations(spec)
    assert violations == [], sweep_config_err_text_from_jsonschema_violations(violations)
    filled = _sweeps().SweepConfig(spec)  # raises on a schema violation too; fills W&B's defaults
    assert filled["method"] == spec["method"] and set(filled["parameters"]) == set(spec["parameters"])


def _break(spec: dict, what: str) -> dict:
    spec = yaml.safe_load(yaml.safe_dump(spec))
    if what == "method":
        spec["method"] = "bogus"
    elif what == "min>max":
        spec["parameters"]["merge.density"] = {"distribution": "uniform", "min": 1.0, "max": 0.2}
    elif what == "goal":
        spec["metric"]["goal"] = "maximise"
    elif what == "key typo":
        spec["parameters"]["merge.density"] = {"vals": [0.5, 1.0]}
    return spec


@pytest.mark.parametrize("what,says", [("method", "'bogus' is not one of"),
                                       ("min>max", "merge.density: min 1.0 is not less than max 0.2"),
                                       ("goal", "'maximise' is not one of"),
                                       ("key typo", "invalid hyperparameter configuration: merge.density")])
@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_wandbs_schema_rejects_a_broken_spec(path: Path, what: str, says: str):
    spec = yaml.safe_load(path.read_text())
    assert _violations(spec) == []
    assert any(says in v for v in _violations(_break(spec, what))), _violations(_break(spec, what))


def _sample_runs(spec: dict, n: int) -> list[dict]:
    """n parameter sets drawn by W&B's own search code (a bayes sweep's first runs are random draws)."""
    from sweeps.grid_search import grid_search_next_runs
    from sweeps.random_search import random_search_next_runs

    if spec["method"] == "grid":
        runs = grid_search_next_runs([], spec, validate=True, n=n)
    else:  # bayes_search needs scikit-learn; its parameter space is the same as a random search's
        runs = random_search_next_runs({**spec, "method": "random"}, validate=True, n=n)
    return [run.config for run in runs]


def _agent_command(spec: dict, run_config: dict) -> list[str]:
    """The command `wandb agent` runs for one suggested run (wandb/wandb_agent.py, a program sweep)."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args

    sweep_vars = create_sweep_command_args({"args": run_config})
    sweep_vars.update(interpreter=["python"], program=[spec["program"]], env=["/usr/bin/env"])
    out: list[str] = []
    for chunk in create_sweep_command(list(spec["command"])):
        chunk = str(chunk)
        if chunk.startswith("${") and chunk.endswith("}"):
            out += sweep_vars.get(chunk[2:-1]) or []
        else:
            out.append(chunk)
    return out


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_agent_command_with_sampled_values_composes(path: Path, compose_cfg):
    spec = yaml.safe_load(path.read_text())
    configs = _sample_runs(spec, 3)
    assert len(configs) == 3 and len({repr(c) for c in configs}) == 3  # three distinct draws
    for run_config in configs:
        command = _agent_command(spec, run_config)
        assert command[:3] == ["/usr/bin/env", "python", "merge.py"] and "${" not in " ".join(command)
        cfg = compose_cfg("merge", command[3:])
        assert cfg.mode == "trial" and cfg.sweep.name == f"wandb-{spec['method']}"
        for key, value in run_config.items():
            node = cfg
            for part in key.split("."):
                node = node[part]
            assert node == pytest.approx(value["value"]), key
