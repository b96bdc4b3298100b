"""Layer-wise soups (search.layerwise) on the tiny members: the differentiable merge equals TIES and mergekit,
its gradient matches finite differences, a learned soup is a ledger row the pick exports, bad input stops early."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rewardsoup.core.errors import ConfigError
from rewardsoup.merging.in_memory import merge_in_memory
from rewardsoup.merging.on_disk import merge_to_disk
from rewardsoup.merging.soup import checked_config, merge_request
from rewardsoup.search import jobs
from rewardsoup.sweep import ledger
from rewardsoup.sweep import record as recording
from rewardsoup.merging.layers import layer_groups
from rewardsoup.search.layerwise import LayerwiseTies, _batch_ids, _losses, learn
from rewardsoup.sweep.resident import resident


@pytest.fixture
def cfg_of(compose_cfg, merge_overrides, out_root):
    def _cfg(*extra):
        return compose_cfg("merge", merge_overrides + ["trial.max_length=64", "sweep.name=lw", "search=layerwise",
                                                       "layerwise.start=equal", *extra])

    return _cfg


def _soup(cfg, density=0.6):
    request = merge_request(cfg)
    prepared, model = resident(request["base"], request["members"])
    names = sorted(request["members"])
    groups = layer_groups([k for k, v in prepared.base_sd.items() if v.is_floating_point()])
    return request, prepared, model, names, LayerwiseTies(prepared.base_sd, prepared.member_sds, names, density,
                                                          request["params"], groups)


def test_default_groups_follow_the_blocks():
    keys = ["transformer.wte.weight", "transformer.h.0.attn.c_attn.weight", "transformer.h.1.mlp.c_fc.bias",
            "transformer.h.10.ln_1.weight", "transformer.ln_f.weight", "score.weight"]
    assert layer_groups(keys) == dict(zip(keys, ["embed", "block0", "block1", "block10", "norm", "head"]))
    assert layer_groups(keys, 2)["transformer.h.1.mlp.c_fc.bias"] == "blocks0-1"
    assert layer_groups(keys, patterns={"attn": r"\.attn\."})["transformer.h.0.attn.c_attn.weight"] == "attn"


def test_equal_coefficients_reproduce_the_global_ties_soup_exactly(cfg_of):
    request, prepared, _, names, soup = _soup(cfg_of())
    weights = {"harmless": 0.7, "pairs": 0.2, "thumbs": 0.5}
    coeffs = torch.tensor([[weights[n]] * len(soup.group_names) for n in names])
    ours = soup.merged(coeffs)
    ref = merge_in_memory("ties", prepared.base_sd, prepared.member_sds, weights, 0.6, request["params"])
    assert all(torch.equal(ours[k], ref[k]) for k in ref)
    assert soup.where, "the embedding is held at its changed positions only"


def test_per_layer_coefficients_equal_merge_in_memory_and_mergekit(cfg_of, tmp_path):
    request, prepared, _, names, soup = _soup(cfg_of())
    g = torch.Generator().manual_seed(0)
    coeffs = torch.rand(len(names), len(soup.group_names), generator=g) + 0.1
    ours = soup.merged(coeffs)
    lw = soup.layer_weights(coeffs)
    ref = merge_in_memory("ties", prepared.base_sd, prepared.member_sds, request["weights"], 0.6, request["params"],
                          layer_weights=lw)
    assert max(float((ours[k] - ref[k]).abs().max()) for k in ref) <= 1e-6
    full = dict(request) | {"density": 0.6, "layer_weights": lw}
    config = checked_config(full)
    assert any(isinstance(m["parameters"]["weight"], list) for m in config["models"])  # per-tensor filters
    written = load_file(str(merge_to_disk(config, tmp_path / "soup", copy_tokenizer=False) / "model.safetensors"))
    assert max(float((written[k] - ours[k]).abs().max()) for k in written) <= 1e-6
    flat = merge_in_memory("ties", prepared.base_sd, prepared.member_sds, request["weights"], 0.6, request["params"])
    assert any(not torch.equal(flat[k], ref[k]) for k in ref)  # the per-layer weights changed the soup


def test_gradient_matches_finite_differences(cfg_of):
    from torch.func import functional_call

    from rewardsoup.scoring.evalsets import load_evalset
    from rewardsoup.scoring.rewards import pad_batch

    cfg = cfg_of()
    request, _, model, names, soup = _soup(cfg, density=1.0)
    es = load_evalset("demo_harmless", cfg.datasets.demo_harmless, "val", request["base"], 64, cfg.paths.cache)
    rows = np.arange(6)
    batch = pad_batch(_batch_ids(es, rows), model.config.pad_token_id)
    buffers = dict(model.named_buffers())
    model.eval()

    def loss(c):
        logits = functional_call(model, soup.merged(c) | buffers, args=(), kwargs=batch).logits[:, 0].double()
        return _losses(es, logits, rows)

    coeffs = torch.full((len(names), len(soup.group_names)), 0.6, dtype=torch.float64)
    coeffs[0] = 0.9  # members weighted apart: sign election is constant near here
    soup.base = {k: v.double() for k, v in soup.base.items()}
    soup.deltas = {k: v.double() for k, v in soup.deltas.items()}
    model.double()
    try:
        c = coeffs.clone().requires_grad_(True)
        loss(c).backward()
        for i, j in [(0, 0), (1, len(soup.group_names) - 1), (2, 1)]:
            h = 1e-5
            up, down = coeffs.clone(), coeffs.clone()
            up[i, j] += h
            down[i, j] -= h
            numeric = (float(loss(up)) - float(loss(down))) / (2 * h)
            assert float(c.grad[i, j]) == pytest.approx(numeric, rel=1e-4, abs=1e-8), (names[i], soup.group_names[j])
        assert float(c.grad.abs().sum()) > 0
    finally:
        model.float()


def test_learned_soup_is_a_ledger_row_the_pick_can_export(cfg_of, tmp_path):
    cfg = cfg_of("layerwise.steps=4", "layerwise.eval_every=2", "layerwise.lr=0.2")
    value = jobs.merge_job(cfg)
    row = ledger.read(cfg.sweep.dir)[1][-1]
    assert row["source"] == "layerwise" and row["objective"] == value
    assert row["request"]["layer_weights"] and [s for s, _ in row["held_loss"]] == [0, 2, 4]
    coeffs = np.array(row["coefficients"])
    assert coeffs.shape == (3, len(row["groups"])) and (coeffs >= 0).all()
    if row["kept_step"]:  # the kept coefficients moved off the start
        assert np.ptp(coeffs, axis=1).max() > 0
    again = learn(cfg, merge_request(cfg))  # same seed, same coefficients: the ledger finds the row again
    assert ledger.request_key(again["request"]) == row["key"]
    written = load_file(str(merge_to_disk(checked_config(row["request"]), tmp_path / "s", copy_tokenizer=False)
                            / "model.safetensors"))
    prepared, _ = resident(row["request"]["base"], row["request"]["members"])
    mem = prepared.merge(row["request"])
    assert max(float((written[k] - mem[k]).abs().max()) for k in written) <= 1e-6
    picked = jobs.merge_job(cfg_of("mode=pick", "pick.name=lw-pick", "pick.bootstrap=0"))  # the only row: it
    card = (Path(picked["soup"]) / "README.md").read_text()
    assert "## Per-layer coefficients" in card and (Path(picked["soup"]) / "layer_coefficients.png").stat().st_size
    assert all(g in card for g in row["groups"])


@pytest.mark.parametrize("extra,needles", [
    (["+layerwise.groups.attn=nothing_matches_this"], ["layerwise.groups.attn", "matches no tensor"]),
    (["+layerwise.init.zulu=0.5"], ["layerwise.init", "unknown member 'zulu'"]),
    (["merge=linear"], ["search=layerwise learns TIES", "linear"]),
])
def test_bad_input_stops_before_any_work(cfg_of, extra, needles):
    cfg = cfg_of(*extra)
    with pytest.raises(ConfigError) as err:
        jobs.merge_job(cfg)
    assert all(n in str(err.value) for n in needles), str(err.value)
    assert not (Path(cfg.sweep.dir) / ledger.LEDGER).exists()


def test_merge_layers_set_by_hand_reach_the_trial_the_ledger_and_mergekit(compose_cfg, merge_overrides, out_root,
                                                                          tmp_path):
    """merge.layers.<member>.<group> (what search=cmaes_layers searches) is a per-tensor weight in the trial,
    the ledger key and the exported YAML, all equal to merge_in_memory's soup."""
    base = ["trial.max_length=64", "sweep.name=by-hand", "merge.density=0.7"]
    cfg = compose_cfg("merge", merge_overrides + base + ["+merge.layers.harmless={block0: 2.0, head: 0.1}"])
    request = merge_request(cfg)
    lw = request["layer_weights"]["harmless"]
    assert lw and all(v == 2.0 for k, v in lw.items() if ".h.0." in k) and lw["score.weight"] == 0.1
    assert not any(".h.1." in k for k in lw)  # groups not named keep the member's global weight
    row = recording.record(cfg, request, "grid", 0)
    plain = merge_request(compose_cfg("merge", merge_overrides + base))
    assert row["key"] != ledger.request_key(plain)
    prepared, model = resident(request["base"], request["members"])
    ref = merge_in_memory("ties", prepared.base_sd, prepared.member_sds, request["weights"], 0.7, request["params"],
                          layer_weights=request["layer_weights"])
    assert all(torch.equal(model.state_dict()[k], ref[k]) for k in ref)
    written = load_file(str(merge_to_disk(checked_config(request), tmp_path / "s", copy_tokenizer=False)
                            / "model.safetensors"))
    assert max(float((written[k] - ref[k]).abs().max()) for k in written) <= 1e-6
    for bad, needle in (("+merge.layers.zulu={head: 1.0}", "merge.layers.zulu: unknown member"),
                        ("+merge.layers.harmless={block7: 1.0}", "merge.layers.harmless.block7: no such layer group")):
        with pytest.raises(ConfigError, match=needle):
            merge_request(compose_cfg("merge", merge_overrides + base + [bad]))


@pytest.mark.parametrize("preset,members,overrides", [
    ("cmaes_layers", ["thumbs", "pairs", "harmless"], ""),
    ("cmaes_layers_real", ["helpful", "harmless"], "members=real datasets=real paths.root=outputs/real")])
def test_cmaes_layers_presets_are_what_the_generator_writes(compose_cfg, preset, members, overrides):
    """The shipped CMA-ES-over-layers presets equal `search.cmaes_layers`' output on the recipes' base (SmolLM2 cut
    to 4 layers), search exactly the weights they start (no `+` needed), and run two generations."""
    from omegaconf import OmegaConf

    from conftest import CONF
    from rewardsoup.search import cmaes_layers

    keys = sorted(["model.embed_tokens.weight", *[f"model.layers.{i}.self_attn.q_proj.weight" for i in range(4)],
                   "model.norm.weight", "score.weight"])
    groups = cmaes_layers.groups_of(keys)
    assert groups == ["embed", "block0", "block1", "block2", "block3", "norm", "head"]
    text = (CONF / "search" / f"{preset}.yaml").read_text()
    assert text == cmaes_layers.preset(members, groups, preset, overrides)
    node = OmegaConf.create(text)
    params = set(node.hydra.sweeper.params)
    starts = {f"merge.layers.{m}.{g}" for m, gs in node.merge.layers.items() for g in gs}
    assert params == starts and len(starts) == len(members) * 7
    assert node.hydra.sweeper.n_trials == 2 * cmaes_layers.population(len(starts))
    cfg = compose_cfg("merge", overrides.split()[:2] + [f"search={preset}"])
    assert sorted(cfg.merge.layers) == sorted(cfg.members) == sorted(members)


def test_groups_of_orders_blocks_by_number():
    from rewardsoup.search import cmaes_layers

    keys = sorted(f"model.layers.{i}.mlp.up_proj.weight" for i in range(12)) + ["model.wte.weight", "score.weight"]
    assert cmaes_layers.groups_of(keys) == ["embed", *[f"block{i}" for i in range(12)], "head"]
    assert cmaes_layers.groups_of(keys, 4) == ["embed", "blocks0-3", "blocks4-7", "blocks8-11", "head"]
