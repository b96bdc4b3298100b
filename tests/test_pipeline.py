"""The main job end to end on the tiny model: every stage runs, a second run skips them all."""

import json

import pytest

from rewardsoup.core.errors import ConfigError
from rewardsoup.pipeline import recipes, run as pipeline


def test_demo_recipe_runs_every_stage_then_skips_them(out_root, tiny_base_dir, monkeypatch, capsys):
    """The demo with its seed runs (demo_warm: the demo recipe + two seeds of harmless and their average)."""
    demo = pipeline.load_recipe("demo_warm")
    demo.sample = False  # best-of-N has its own tests
    demo.routed = ["routed.rank=2", "routed.epochs=1", "routed.batch_rows=4", "routed.prompt_length=32"]
    monkeypatch.setattr(pipeline, "load_recipe", lambda name, loop_args=(): demo)
    overrides = ["experiment=smoke", f"model.base_dir={tiny_base_dir}", "train.max_steps=4",
                 "hydra.sweeper.n_trials=3", "trial.max_length=64", "pick.bootstrap=50"]
    first = pipeline.run_recipe("demo", overrides)
    out = capsys.readouterr().out
    assert "3/5 sweep" in out and "| model | kind |" in out
    ledger = [json.loads(x) for x in (out_root / "sweeps" / "optuna-ties" / "ledger.jsonl").read_text().splitlines()]
    assert len(ledger) == 3
    assert (out_root / "soups" / "best-optuna-ties-warm" / "mergekit_config.yml").exists()
    assert set(first["members"]) == {"thumbs", "pairs", "harmless"}
    assert set(first["alternatives"]) == {"multitask", "harmless_seed1", "harmless_seed2"}
    # 3 members, 3 alternatives, sweep, routed soup, pick (base given)
    assert len(first["walls"]) == 9 and all(s >= 0 for s in first["walls"].values())
    steps = [json.loads((out_root / "members" / f).joinpath("rewardsoup_member.json").read_text())["steps"]
             for f in ("demo_thumbs-binary", "demo_pairs-pairwise", "demo_harmless-pairwise", "multitask")]
    assert steps[3] == sum(steps[:3]) == 12  # the multi-task model trains as many steps as the members together
    results = json.loads((out_root / "reports" / "warm" / "evaluate-test" / "results.json").read_text())
    kinds = {r["model"]: r["kind"] for r in results["rows"]}
    assert kinds["multitask"] == "multitask" and kinds["harmless_avg3"] == "average"
    assert kinds["harmless_seed1"] == kinds["harmless_seed2"] == "run" and kinds["harmless_avg3_ensemble"] == "baseline"
    asked = {(v["model"], v["against"]) for v in results["verdicts"]}
    assert {("best-optuna-ties-warm", "multitask"), ("best-optuna-ties-warm", "logit_ensemble"), ("multitask", "length"),
            ("harmless_avg3", "harmless_seed2"), ("harmless_avg3", "harmless_avg3_ensemble")} <= asked
    assert all(v["verdict"] in ("better", "worse") or v["verdict"] == f"cannot tell at n={v['n']}"
               for v in results["verdicts"])
    assert "#### Every comparison, paired on the same rows" in out
    card = (out_root / "soups" / "best-optuna-ties-warm" / "README.md").read_text()  # the model card shows them too
    assert "| multitask | multitask |" in card and "This model against the alternatives" in card
    assert kinds["routed"] == "routed" and kinds["routed_outputs"] == "baseline"  # the routed stage's soup, tested
    assert {("routed", "best-optuna-ties-warm"), ("routed", "multitask"), ("routed", "routed_outputs")} <= asked
    assert any(v["model"] == "routed" and v["dataset"] == "mean" for v in results["verdicts"])
    assert set(results["routed_shares"]["routed"]) == {"demo_thumbs", "demo_pairs", "demo_harmless"}
    routed_card = (out_root / "soups" / "routed-optuna-ties" / "README.md").read_text()  # rewritten by the pick
    assert "How the router splits each test set" in routed_card and "| demo_harmless |" in routed_card
    assert "| routed | routed (this model) |" in routed_card
    second = pipeline.run_recipe("demo", overrides)
    again = capsys.readouterr().out
    assert again.count("already done") == 9  # base, three members, three alternatives, the routed soup, the pick
    assert len((out_root / "sweeps" / "optuna-ties" / "ledger.jsonl").read_text().splitlines()) == 3
    assert second["walls"] == first["walls"]  # a rerun that did nothing reports the first run's stage times

    from rewardsoup.sweep.pick import best_row
    from rewardsoup.sweep.objective import floors_from_members
    from rewardsoup.pipeline.report import write_real_report

    assert "by the 'floors' rule among 3 trials (val floors:" in again  # the demo recipe's objective
    text = write_real_report(second).read_text()  # the markdown `make report-real` writes, from any recipe's run
    members = json.loads((out_root / "sweeps" / "optuna-ties" / "members.json").read_text())["members"]
    floors = floors_from_members({m: {d: v["accuracy"] for d, v in per.items()} for m, per in members.items()}, 0.02)
    best = best_row(ledger, {"kind": "floors", "max_loss": 0.02}, floors)
    assert f"Picked by the 'floors' rule: val objective {best['objective']:.4f}" in text and "## Sweep: 3 trials" in text
    assert all(f"| {m} |" in text for m in ("thumbs", "pairs", "harmless")) and "| model | kind |" in text
    assert "| multitask | alternative | demo_mix | multitask |" in text
    assert "## The soup against what a user would choose instead" in text and "vs multitask on demo_pairs" in text
    assert f"| all stages | {sum(first['walls'].values()):.0f} |" in text


def test_recipes_are_yaml_files_with_per_member_overrides(compose_cfg, tmp_path, monkeypatch):
    assert {"demo", "real"} <= set(recipes.recipe_names())
    demo = recipes.load_recipe("demo")
    assert [(m.name, m.data, m.objective, m.train) for m in demo.members] == [
        ("thumbs", "demo_thumbs", "binary", []), ("pairs", "demo_pairs", "pairwise", []),
        ("harmless", "demo_harmless", "pairwise", [])]
    assert demo.train == [] and demo.merge[0] == "sweep.objective.kind=floors" and demo.sample
    assert {"scoring.dtype=auto", "pick.dtype=auto"} <= set(demo.merge)  # bf16 trials and test table where native
    for m in demo.members:  # the demo's members train on conf/train.yaml's settings, as before
        got = compose_cfg("train", recipes.member_overrides(demo, m, [])).train
        want = compose_cfg("train", [f"data={m.data}", f"objective={m.objective}", "train.resume=true"]).train
        assert got == want
    real = recipes.load_recipe("real")
    assert [m.name for m in real.members] == ["helpful", "harmless"] and not real.sample
    assert [(a.name, a.objective, a.budget) for a in real.alternatives] == [("multitask", "multitask", "members")]
    assert "members=real" in real.merge and "train.epochs=1" in real.train
    hh = compose_cfg("train", recipes.member_overrides(real, real.members[1], ["train.lr=1e-4"]))
    assert (hh.train.epochs, hh.train.lr, hh.data.name) == (1, 1e-4, "shared_hh_harmless")  # command line wins
    mix = compose_cfg("train", recipes.member_overrides(real, real.alternatives[0], []))
    assert sorted(mix.data.parts) == ["shared_hh_harmless", "shared_hh_helpful"] and mix.train.member_name == "multitask"
    assert mix.data.parts.shared_hh_helpful.split == compose_cfg("train", ["data=shared_hh_helpful"]).data.split

    conf = tmp_path / "conf"
    (conf / "recipe").mkdir(parents=True)
    (conf / "recipe" / "mine.yaml").write_text(
        "members:\n  - {name: a, data: demo_thumbs, objective: binary, train: [train.epochs=3]}\n"
        "  - {name: b, data: demo_pairs, objective: pairwise, train: [data.limit=5]}\n")
    monkeypatch.setattr(recipes, "CONF", conf)
    with pytest.raises(ConfigError, match=r"members\[1\] \('b'\).train may only override train"):
        recipes.load_recipe("mine")
    with pytest.raises(ConfigError, match="unknown recipe 'nope'"):
        recipes.load_recipe("nope")


def test_overrides_reach_the_roots_that_have_their_keys():
    demo, real = recipes.load_recipe("demo"), recipes.load_recipe("real")
    routed = pipeline.stage_overrides(demo, ["sweep.objective.kind=worst", "logger=none", "train.max_steps=4",
                                             "hydra.sweeper.n_trials=3", "generation.max_new_tokens=8"])
    assert routed["merge"] == ["sweep.objective.kind=worst", "logger=none", "hydra.sweeper.n_trials=3"]
    assert routed["train"] == ["logger=none", "train.max_steps=4"]
    assert routed["sample"] == ["logger=none", "generation.max_new_tokens=8"]
    sweep = recipes.compose_cfg("merge", ["search=optuna"] + demo.merge + routed["merge"])
    assert sweep.sweep.objective.kind == "worst"  # what `python merge.py -m ...` of stage 3 is given
    assert pipeline.stage_overrides(real, ["datasets=real"])["merge"] == ["datasets=real"]  # no longer dropped
    assert "sample" not in [k for k, v in pipeline.stage_overrides(real, ["logger=none"]).items() if v]
    with pytest.raises(ConfigError, match="override 'sweep.objectiv.kind=worst' matches no key"):
        pipeline.stage_overrides(demo, ["sweep.objectiv.kind=worst"])
    with pytest.raises(ConfigError, match="generation.max_new_tokens=8"):  # real has no sampling stage
        pipeline.stage_overrides(real, ["generation.max_new_tokens=8"])


def test_make_demo_args_fail_on_an_unknown_override_before_any_work(out_root):
    import subprocess
    import sys

    from conftest import ROOT

    out = subprocess.run([sys.executable, "-m", "rewardsoup.pipeline", "objectiv.kind=worst"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode == 1 and len(errors) == 1 and "objectiv.kind=worst" in errors[0]
    assert not out_root.exists()


def test_a_bad_data_file_stops_the_pipeline_before_the_base_is_built(out_root, tmp_path, monkeypatch, capsys):
    """Every member's and alternative's data is read and checked before stage 1 builds the base: a bad file (here
    an alternative's, not UTF-8) is one `error:` line naming the run and the file, and paths.root stays empty."""
    import sys

    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"chosen": "kind", "rejected": "rude"}\n{"chosen": "caf\xe9", "rejected": "rude"}\n')
    recipe = recipes.Recipe("bad", members=[recipes.Member("thumbs", "demo_thumbs", "binary")], sample=False,
                            alternatives=[recipes.Member("mine", "local_pairs", "pairwise", [f"data.source={bad}"],
                                                         alternative=True)])
    monkeypatch.setattr(pipeline, "load_recipe", lambda name, loop_args=(): recipe)
    monkeypatch.setattr(sys, "argv", ["rewardsoup.pipeline", "experiment=smoke"])
    with pytest.raises(SystemExit) as exit_info:
        pipeline.main()
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert exit_info.value.code == 1 and len(errors) == 1, captured.err
    assert f"alternative 'mine' (data=local_pairs): {bad}: not UTF-8 text: byte offset 54 (line 2)" in errors[0]
    assert "== 1/5 base" not in captured.out and not out_root.exists()
