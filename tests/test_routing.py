"""The routed soup's one-forward mixing (issue #30): equal to the models it stands for, on the tiny GPT-2 members."""

from __future__ import annotations

import pytest
import torch

from rewardsoup.core.errors import ConfigError, ModelError
from rewardsoup.merging.in_memory import merge_in_memory
from rewardsoup.merging.state_dicts import apply_state_dict, load_state_dict
from rewardsoup.models.loading import load_reward_model
from rewardsoup.routing.deltas import kept_fraction, member_deltas
from rewardsoup.routing.model import build_routed, routable_matrices

NAMES = ("thumbs", "pairs", "harmless")


@pytest.fixture(scope="module")
def parts(tiny_members, tiny_base_dir):
    """(the TIES soup of the three tiny members as the shared model's state dict, the members' state dicts)."""
    sds = {n: load_state_dict(tiny_members[n] / "model.safetensors") for n in NAMES}
    base = load_state_dict(tiny_base_dir / "model.safetensors")
    shared = merge_in_memory("ties", base, sds, {n: 1.0 for n in NAMES}, 0.5)
    return shared, sds


def _model(tiny_base_dir, sd):
    return apply_state_dict(load_reward_model(tiny_base_dir), sd).eval()


def _batch(n=3, t=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 200, (n, t), generator=g)
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # one left-padded row
    return ids, mask


def _logits(model, ids, mask, gate=None):
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask) if gate is None else model(ids, mask, gate=gate)
    return out.logits.squeeze(-1)


@pytest.mark.parametrize("member", NAMES)
def test_a_one_hot_gate_at_full_rank_is_that_member(parts, tiny_base_dir, member):
    shared, sds = parts
    routed = build_routed(_model(tiny_base_dir, shared), sds, "full")
    ids, mask = _batch()
    gate = torch.zeros(len(ids), len(NAMES))
    gate[:, NAMES.index(member)] = 1.0
    want = _logits(_model(tiny_base_dir, sds[member]), ids, mask)
    torch.testing.assert_close(_logits(routed, ids, mask, gate), want, atol=1e-5, rtol=0)


def test_a_constant_gate_is_the_linear_soup_of_those_weights(parts, tiny_base_dir):
    shared, sds = parts
    w = {"thumbs": 0.5, "pairs": 0.2, "harmless": 0.3}
    soup = merge_in_memory("linear", None, sds, w, None)  # mergekit's linear math (normalised weights)
    routed = build_routed(_model(tiny_base_dir, shared), sds, "full")
    ids, mask = _batch()
    gate = torch.tensor([[w[n] for n in NAMES]] * len(ids))
    torch.testing.assert_close(_logits(routed, ids, mask, gate), _logits(_model(tiny_base_dir, soup), ids, mask),
                               atol=1e-5, rtol=0)


def test_each_text_gets_its_own_weights_and_a_zero_gate_is_the_shared_model(parts, tiny_base_dir):
    shared, sds = parts
    routed = build_routed(_model(tiny_base_dir, shared), sds, "full")
    ids, mask = _batch()
    gate = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    got = _logits(routed, ids, mask, gate)
    for row, model_sd in enumerate([shared, sds["thumbs"], sds["harmless"]]):
        torch.testing.assert_close(got[row], _logits(_model(tiny_base_dir, model_sd), ids, mask)[row],
                                   atol=1e-5, rtol=0)
    torch.testing.assert_close(_logits(routed, ids, mask), _logits(_model(tiny_base_dir, shared), ids, mask))


def test_a_low_rank_store_approximates_and_its_shared_weights_stay_put(parts, tiny_base_dir):
    shared, sds = parts
    model = _model(tiny_base_dir, shared)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    routed = build_routed(model, sds, 4)
    ids, mask = _batch()
    gate = torch.tensor([[0.0, 1.0, 0.0]] * len(ids))
    low = _logits(routed, ids, mask, gate)
    exact = _logits(_model(tiny_base_dir, sds["pairs"]), ids, mask)
    off = _logits(_model(tiny_base_dir, shared), ids, mask)
    assert (low - exact).abs().max() < (off - exact).abs().max()  # rank 4 is closer to the member than none
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_rank_beyond_a_matrix_and_members_of_another_shape_are_refused(parts, tiny_base_dir):
    shared, sds = parts
    model = _model(tiny_base_dir, shared)
    matrices = routable_matrices(model)
    with pytest.raises(ConfigError, match=r"routed.rank=100000 exceeds .*transformer"):
        member_deltas(shared, sds, 100000, matrices)
    with pytest.raises(ConfigError, match="routed.rank=0"):
        member_deltas(shared, sds, 0, matrices)
    bad = dict(sds, pairs={k: (v[:-1] if k == "score.weight" else v) for k, v in sds["pairs"].items()})
    bad["pairs"]["score.weight"] = torch.zeros(2, sds["pairs"]["score.weight"].shape[1])
    with pytest.raises(ModelError, match=r"member 'pairs'.*score.weight"):
        member_deltas(shared, bad, "full", matrices)
    assert kept_fraction(member_deltas(shared, sds, "full", matrices)) == 1.0
    assert 0.0 < kept_fraction(member_deltas(shared, sds, 2, matrices)) < 1.0
