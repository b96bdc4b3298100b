"""The main job end to end on the tiny model: every stage runs, a second run skips them all."""

import json


from rewardsoup import pipeline


def test_demo_recipe_runs_every_stage_then_skips_them(out_root, tiny_base_dir, monkeypatch, capsys):
    monkeypatch.setattr(pipeline.RECIPES["demo"], "sample", False)  # best-of-N has its own tests
    overrides = ["experiment=smoke", f"model.base_dir={tiny_base_dir}", "train.max_steps=4",
                 "hydra.sweeper.n_trials=3", "trial.max_length=64", "pick.bootstrap=50"]
    first = pipeline.run_recipe("demo", overrides)
    out = capsys.readouterr().out
    assert "3/5 sweep" in out and "| model | kind |" in out
    ledger = [json.loads(x) for x in (out_root / "sweeps" / "optuna-ties" / "ledger.jsonl").read_text().splitlines()]
    assert len(ledger) == 3
    assert (out_root / "soups" / "best-optuna-ties" / "mergekit_config.yml").exists()
    assert set(first["members"]) == {"thumbs", "pairs", "harmless"}
    assert len(first["walls"]) == 5 and all(s >= 0 for s in first["walls"].values())  # 3 members, sweep, pick (base given)
    second = pipeline.run_recipe("demo", overrides)
    again = capsys.readouterr().out
    assert again.count("already done") == 5  # base, three members, the pick
    assert len((out_root / "sweeps" / "optuna-ties" / "ledger.jsonl").read_text().splitlines()) == 3
    assert second["walls"] == first["walls"]  # a rerun that did nothing reports the first run's stage times

    from rewardsoup.pick import best_row
    from rewardsoup.report import write_real_report

    text = write_real_report(second).read_text()  # the markdown `make report-real` writes, from any recipe's run
    best = best_row(ledger)
    assert f"Best val objective {best['objective']:.4f}" in text and "## Sweep: 3 trials" in text
    assert all(f"| {m} |" in text for m in ("thumbs", "pairs", "harmless")) and "| model | kind |" in text
    assert f"| all stages | {sum(first['walls'].values()):.0f} |" in text
