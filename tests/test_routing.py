"""The routed soup's one-forward mixing (issue #30): equal to the models it stands for, on the tiny GPT-2 members."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rewardsoup.core.errors import ConfigError, ModelError
from rewardsoup.merging.in_memory import merge_in_memory
from rewardsoup.merging.state_dicts import apply_state_dict, load_state_dict
from rewardsoup.models.assets import tiny_model_dir
from rewardsoup.models.loading import load_reward_model
from rewardsoup.routing.deltas import kept_fraction, member_deltas
from rewardsoup.routing.model import build_routed, routable_matrices
from rewardsoup.search import routed as routed_search
from rewardsoup.scoring.rewards import pad_batch

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


@pytest.mark.parametrize("arch", ["gpt2", "llama"])  # Conv1D and Linear layers
def test_a_low_rank_routed_forward_is_the_model_with_those_low_rank_differences_added(arch):
    """At rank r the routed forward under gate g is exactly the plain model whose weights are the shared ones
    plus sum_k g_k B_k A_k (the stored factors), per text: the LoRA-style path adds what it stores."""
    torch.manual_seed(0)
    shared = AutoModelForSequenceClassification.from_pretrained(str(tiny_model_dir(arch)), num_labels=1).eval()
    shared.config.pad_token_id = 0
    base = {k: v.detach().clone() for k, v in shared.named_parameters()}
    sds = {n: {k: v + 0.05 * torch.randn_like(v) for k, v in base.items()} for n in ("a", "b")}
    routed = build_routed(shared, sds, 3)
    ids, mask = _batch()
    gates = torch.tensor([[0.7, 0.1], [0.0, 1.0], [0.3, 0.3]])
    got = _logits(routed, ids, mask, gates)
    for i, g in enumerate(gates):
        weights = {}
        for key, stack in routed.stacks.items():
            deltas = stack.d if stack.exact else stack.b @ stack.a  # (K, *shape): each member's stored difference
            weights[key.replace("__", ".")] = base[key.replace("__", ".")] + torch.einsum("k,k...->...", g, deltas)
        plain = copy.deepcopy(shared)
        plain.load_state_dict(weights, strict=False)
        want = _logits(plain, ids[i:i + 1], mask[i:i + 1])
        torch.testing.assert_close(got[i:i + 1], want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape", [(300, 40), (40, 300), (64, 64)])  # tall (the embedding), wide, square
def test_a_low_rank_difference_is_the_truncated_svd(shape):
    """routing.deltas: the stored factors' product is the truncated SVD's (the best rank-r approximation), and
    the kept share of the squared norm is its top singular values'."""
    torch.manual_seed(0)
    shared = {"w": torch.randn(*shape)}
    member = {"w": shared["w"] + torch.randn(*shape) @ torch.diag(torch.linspace(1, 0.01, shape[1]))}
    d = member_deltas(shared, {"m": member}, 5, {"w"})["w"][0]
    u, s, vh = torch.linalg.svd((member["w"] - shared["w"]).double(), full_matrices=False)
    want = (u[:, :5] * s[:5]) @ vh[:5]
    torch.testing.assert_close((d.b @ d.a).double(), want, atol=1e-5, rtol=0)
    assert d.kept2 / d.norm2 == pytest.approx(float(s[:5].pow(2).sum() / s.pow(2).sum()), rel=1e-9)


def test_a_text_repeated_under_one_gate_is_scored_once_and_under_another_gate_again(parts, tiny_base_dir):
    """routing.scorer.score_routed_ids: a text shared by two sets (demo_pairs repeats demo_thumbs' texts) is run
    once when its gate is the same and scored apart when it is not; every row equals its text scored alone."""
    from rewardsoup.routing.scorer import score_routed_ids

    shared, sds = parts
    routed = build_routed(_model(tiny_base_dir, shared), sds, 2)
    texts = [[5, 6, 7, 8], [9, 10, 11], [5, 6, 7, 8], [5, 6, 7, 8]]
    gate = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [0.0, 0.0, 1.0]])
    calls = []
    routed.model.register_forward_hook(lambda m, a, kw, o: calls.append(int(kw["input_ids"].shape[0])),
                                       with_kwargs=True)
    got = score_routed_ids(routed, texts, gate, routed.config.pad_token_id, batch_size=8)
    alone = [float(_logits(routed, torch.tensor([t]), torch.ones(1, len(t), dtype=torch.long), gate[i:i + 1])[0])
             for i, t in enumerate(texts)]
    np.testing.assert_allclose(got, alone, atol=1e-5)
    assert got[0] == got[2] and got[0] != got[3]
    assert calls[0] == 3  # one batch: the repeat under the same gate was not run again


def _prompted(pairs=4, prompt=20, seed=0) -> tuple[list[list[int]], list[list[int]]]:
    """Texts in pairs that share a `prompt`-token start (a pair's chosen and rejected), and the pairs' groups."""
    g = torch.Generator().manual_seed(seed)
    texts, groups = [], []
    for k in range(pairs):
        start = torch.randint(1, 200, (prompt + k,), generator=g).tolist()
        texts += [start + torch.randint(1, 200, (3 + k,), generator=g).tolist(),
                  start + torch.randint(1, 200, (5,), generator=g).tolist()]
        groups.append([2 * k, 2 * k + 1])
    return texts, groups


@pytest.mark.parametrize("rank", [2, "full"])
def test_texts_that_share_a_prompt_run_it_once_under_their_gate_with_the_same_rewards(parts, tiny_base_dir, rank):
    """score_routed_ids with groups (a pair's texts share a prompt, hence a gate): the common prefix runs once
    under the pair's gate (scoring.prefix), fewer tokens forwarded, every reward equal to the full-text path's;
    a text repeated under another gate is still scored apart."""
    from rewardsoup.routing.scorer import score_routed_ids

    shared, sds = parts
    routed = build_routed(_model(tiny_base_dir, shared), sds, rank)
    texts, groups = _prompted()
    texts, groups = texts + [texts[0], texts[1]], groups + [[8, 9]]  # pair 0 again, under another gate
    gate = torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.2, 0.1], [0.0, 1.0, 0.0], [0.1, 0.1, 0.1], [1.0, 0.0, 0.0]])
    gate = gate.repeat_interleave(2, dim=0)
    tokens = []
    routed.model.get_input_embeddings().register_forward_hook(lambda m, a, o: tokens.append(a[0].numel()))
    alone = score_routed_ids(routed, texts, gate, routed.config.pad_token_id, batch_size=3)
    full_tokens, tokens[:] = sum(tokens), []
    got = score_routed_ids(routed, texts, gate, routed.config.pad_token_id, batch_size=3, groups=groups)
    np.testing.assert_allclose(got, alone, atol=1e-5)
    assert sum(tokens) < 0.8 * full_tokens  # the prompts ran once per pair
    assert abs(got[8] - got[0]) > 1e-6  # pair 0's text under another gate: another reward


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


def _conflicting_sets(model, pad_id, rows=48, seed=0):
    """Two sets the shared model ranks oppositely: right on X's prompts, wrong on Y's (labels flipped)."""
    from rewardsoup.routing.fit import RouteSet
    from rewardsoup.routing.router import prompt_features

    g = torch.Generator().manual_seed(seed)
    emb = model.get_input_embeddings().weight.detach()
    out = []
    for name, lo, flip in (("X", 10, False), ("Y", 120, True)):
        prompts = [torch.randint(lo, lo + 40, (6,), generator=g).tolist() for _ in range(rows)]
        a = [p + torch.randint(60, 110, (5,), generator=g).tolist() for p in prompts]
        b = [p + torch.randint(60, 110, (5,), generator=g).tolist() for p in prompts]
        with torch.no_grad():
            batch = pad_batch(a + b, pad_id)
            r = model(**batch).logits[:, 0]
        up = (r[:rows] > r[rows:]) != flip  # chosen: the side the shared model prefers on X, the other on Y
        chosen = [x if u else y for x, y, u in zip(a, b, up)]
        rejected = [y if u else x for x, y, u in zip(a, b, up)]
        out.append(RouteSet(name, "pairwise", chosen + rejected, None, prompt_features(emb, prompts)))
    return out


def test_a_fitted_router_sends_each_prompt_to_the_member_that_ranks_it_right(parts, tiny_base_dir):
    from rewardsoup.routing.fit import accuracy, fit_router
    from rewardsoup.routing.router import PromptRouter

    shared, _ = parts
    model = _model(tiny_base_dir, shared)
    flipped = dict(shared, **{"score.weight": -shared["score.weight"]})  # a member that ranks everything reversed
    routed = build_routed(model, {"same": shared, "reversed": flipped}, "full")
    pad = model.config.pad_token_id
    sets = _conflicting_sets(model, pad)

    def fit(seed):
        router = PromptRouter(model.config.n_embd, 2, init="shared")
        result = fit_router(routed, router, sets, pad, epochs=6, lr=0.1, seed=seed, say=lambda _: None)
        return router, result

    router, result = fit(0)
    assert result["history"][0]["stop"]["Y"] < 0.5  # the start (the shared model) gets Y wrong
    everything = np.arange(48)
    for rs in sets:  # every row, fitting and stopping
        assert accuracy(routed, router, rs, everything, pad, 16) > 0.9
    with torch.no_grad():
        gx, gy = router(sets[0].feats), router(sets[1].feats)
    assert (gx[:, 1] < 0.5).float().mean() > 0.9  # X's prompts stay off the reversed member
    assert (gy[:, 1] > 0.5).float().mean() > 0.9  # Y's go to it
    again, _ = fit(0)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in router.state_dict().items())  # seeded


def test_prompt_features_read_the_prompt_alone():
    from rewardsoup.routing.router import prompt_features

    emb = torch.randn(50, 8)
    f = prompt_features(emb, [[1, 2, 3], [1, 2, 3], []])
    torch.testing.assert_close(f[0], emb[[1, 2, 3]].mean(0))
    assert torch.equal(f[0], f[1]) and torch.equal(f[2], torch.zeros(8))


def test_a_saved_routed_soup_reloads_to_identical_scores(parts, tiny_base_dir, tmp_path):
    from rewardsoup.routing.folder import is_routed, load_routed, save_routed
    from rewardsoup.routing.router import PromptRouter

    shared, sds = parts
    shared_dir = tmp_path / "shared-src"
    _model(tiny_base_dir, shared).save_pretrained(shared_dir)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        if (tiny_base_dir / f).exists():
            (shared_dir / f).write_bytes((tiny_base_dir / f).read_bytes())
    routed = build_routed(load_reward_model(shared_dir), sds, 3)
    router = PromptRouter(routed.config.n_embd, 3, hidden=4, init="uniform")
    torch.nn.init.normal_(router.net[-1].weight)  # a router that is not constant
    folder = save_routed(tmp_path / "routed", routed, router, shared_dir,
                         {"rank": 3, "router": {"dim": routed.config.n_embd, "hidden": 4, "init": "uniform"}})
    again, router2, manifest = load_routed(folder)
    assert is_routed(folder) and not is_routed(shared_dir) and manifest["members"] == list(NAMES)
    ids, mask = _batch()
    feats = torch.randn(len(ids), routed.config.n_embd)
    with torch.no_grad():
        want = routed(ids, mask, gate=router(feats)).logits
        got = again(ids, mask, gate=router2(feats)).logits
    assert torch.equal(want, got)


def test_the_prompt_ends_at_the_last_speaker_marker_and_ignores_the_reply():
    from rewardsoup.routing.prompts import shared_prompt, split_prompt

    hh = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: help me\n\nAssistant:"
    assert split_prompt(hh + " Sure, here is how.") == hh
    assert split_prompt(hh + " No.") == split_prompt(hh + " A different, longer reply entirely.")
    demo = "Best Friend Steve: Yo!\nUser: rough day\nBest Friend Steve:"
    assert split_prompt(demo + " That's what friends are for.") == demo
    assert split_prompt("a reply alone, no speaker") == ""
    # a reply with a marker line of its own: the pair's two texts still share one prompt, the common part
    assert shared_prompt([hh + " fine", hh + " Step one\nNote: careful"]) == hh


def test_the_routed_scorer_gates_on_prompts_alone_and_equals_the_soup_under_a_constant_router(parts, tiny_base_dir):
    from transformers import AutoTokenizer

    from rewardsoup.routing.router import PromptRouter
    from rewardsoup.routing.scorer import RoutedScorer
    from rewardsoup.scoring.rewards import score_texts

    shared, sds = parts
    tok = AutoTokenizer.from_pretrained(str(tiny_base_dir))
    routed = build_routed(_model(tiny_base_dir, shared), sds, "full")
    router = PromptRouter(routed.config.n_embd, 3, init="uniform")
    torch.nn.init.normal_(router.net[-1].weight, std=0.5)  # gates that differ from prompt to prompt
    scorer = RoutedScorer(routed, router, tok)
    p1, p2 = "\n\nHuman: a question\n\nAssistant:", "\n\nHuman: something else entirely\n\nAssistant:"
    texts = [p1 + " short", p1 + " a much longer and different reply", p2 + " short"]
    g = scorer.gates(texts)
    assert torch.equal(g[0], g[1]) and not torch.equal(g[0], g[2])  # the reply never reaches the gate
    assert torch.equal(scorer.gates([p1 + " Note:", p1 + " fine"], [[0, 1]])[0],
                       scorer.gates([p1 + " Note:", p1 + " fine"], [[0, 1]])[1])  # a group shares one gate
    torch.nn.init.zeros_(router.net[-1].weight)  # a constant router: the uniform weights over shared + 3
    soup = {k: (shared[k] + sum(sds[n][k] for n in NAMES)) / 4 for k in shared}
    want = score_texts(_model(tiny_base_dir, soup), tok, texts, 64)
    np.testing.assert_allclose(scorer.score_texts(texts, 64), want, atol=1e-5)


def test_search_routed_fits_saves_and_reloads_a_routed_soup(compose_cfg, merge_overrides, out_root):
    """merge.py search=routed from the merge request (routed.shared=equal): a folder under paths.soups that
    reloads to the routed model it saved, the shared model a plain reward model folder of its own."""
    from transformers import AutoTokenizer

    from rewardsoup.core.config import validate
    from rewardsoup.routing.folder import SHARED, load_routed
    from rewardsoup.routing.scorer import RoutedScorer
    from rewardsoup.search import jobs

    cfg = validate(compose_cfg("merge", merge_overrides + [
        "search=routed", "routed.shared=equal", "routed.rank=2", "routed.epochs=2", "routed.batch_rows=4",
        "trial.max_length=64", "routed.prompt_length=32", "logger=none"]))
    manifest = jobs.merge_job(cfg)
    folder = out_root / "soups" / "routed-optuna-ties"
    assert manifest["members"] == sorted(NAMES) and 0 < manifest["kept_fraction"] < 1
    assert manifest["fit"]["rows"]["demo_pairs"]["stop"] > 0 and len(manifest["fit"]["history"]) >= 2
    routed, router, again = load_routed(folder)
    assert again["members"] == manifest["members"]
    plain_model = load_reward_model(folder / SHARED)  # the shared model loads as any reward model
    tok = AutoTokenizer.from_pretrained(str(folder / SHARED))
    texts = ["Wizard: Enter.\nUser: hi\nWizard: Welcome!", "Wizard: Enter.\nUser: hi\nWizard: Go away."]
    scores = RoutedScorer(routed, router, tok, manifest["prompt_end"]).score_texts(texts, 64)
    assert np.isfinite(scores).all() and scores[0] != scores[1]
    assert plain_model.config.num_labels == 1


def test_search_routed_refuses_a_bad_rank_or_mismatched_member_before_any_work(compose_cfg, merge_overrides, out_root,
                                                                               tiny_members, monkeypatch):
    """From config.json and safetensors headers alone: no merge, no fit, nothing under paths.soups."""
    from rewardsoup.core.config import validate
    from rewardsoup.search import jobs, routed as routed_search

    def no_work(*a, **k):
        raise AssertionError("the members were loaded before the checks")

    monkeypatch.setattr(routed_search, "resident", no_work)
    base = merge_overrides + ["search=routed", "routed.shared=equal", "trial.max_length=64", "logger=none"]
    with pytest.raises(ConfigError, match=r"routed\.rank=100000 exceeds what tensor '.*' allows"):
        jobs.merge_job(validate(compose_cfg("merge", base + ["routed.rank=100000"])))
    other = tiny_model_dir("gpt2", {"n_embd": 48})  # another width: no routed soup can add its differences
    folder = out_root.parent / "wider-member"
    AutoModelForSequenceClassification.from_pretrained(str(other), num_labels=1).save_pretrained(str(folder))
    with pytest.raises(ModelError, match=r"member 'pairs': tensor '.*' has shape"):
        jobs.merge_job(validate(compose_cfg("merge", base + ["routed.rank=2", f"members.pairs={folder}"])))
    assert not (out_root / "soups").exists()


def test_evaluate_scores_a_routed_soup_beside_its_output_mixing_row_and_says_how_it_splits_each_set(
        compose_cfg, merge_overrides, tiny_members, out_root, monkeypatch):
    """evaluate.py takes a routed folder by path: a `routed` row with the 2-point bar and paired verdicts against
    the static soup, the ensemble and its own output-mixing row, whose rewards are the gates applied to the
    shared model's and the members' own rewards; the router's split of each set in the notes."""
    from transformers import AutoTokenizer

    from rewardsoup.core.config import validate
    from rewardsoup.evaluation.job import evaluate_models
    from rewardsoup.merging.soup import merge_soup
    from rewardsoup.routing.folder import SHARED, load_routed
    from rewardsoup.routing.sets import route_set, text_gates
    from rewardsoup.scoring.rewards import score_ids
    from rewardsoup.search import jobs

    cfg = validate(compose_cfg("merge", merge_overrides + [
        "search=routed", "routed.shared=equal", "routed.rank=2", "routed.epochs=1", "routed.batch_rows=4",
        "routed.init=uniform", "trial.max_length=64", "routed.prompt_length=32", "logger=none"]))
    jobs.merge_job(cfg)
    folder = out_root / "soups" / "routed-optuna-ties"
    soup = merge_soup(compose_cfg("merge", merge_overrides + ["merge=ties"]))
    models = [f"+models.{n}={p}" for n, p in tiny_members.items()] + [f"+models.ties={soup}", f"+models.rt={folder}"]
    ecfg = compose_cfg("evaluate", merge_overrides[:3] + models + ["bootstrap=50", "max_length=64"])
    out = evaluate_models(ecfg)
    by_model = {r["model"]: r for r in out["rows"]}
    assert by_model["rt"]["kind"] == "routed" and by_model["rt_outputs"]["kind"] == "baseline"
    assert "rt_arrow" not in by_model  # GPT-2's Conv1D layers are no LoRA adapters for Arrow (test_the_arrow_...)
    assert by_model["rt"]["demo_pairs_bar"].startswith(("holds", "fails", "cannot tell at n="))
    against = {(v["model"], v["against"]) for v in out["verdicts"]}
    assert {("rt", "ties"), ("rt", "logit_ensemble"), ("rt", "rt_outputs")} <= against
    routed, router, manifest = load_routed(folder)
    tok = AutoTokenizer.from_pretrained(str(folder / SHARED))
    rs, es = route_set("demo_pairs", ecfg.datasets.demo_pairs, "test", tok, folder / SHARED, 64, ecfg.paths.cache,
                       "independent", manifest["prompt_end"], manifest["prompt_length"],
                       routed.model.get_input_embeddings().weight.detach())
    g = text_gates(router, rs).numpy()
    pad = routed.config.pad_token_id
    own = {m: score_ids(load_reward_model(tiny_members[m]), es.ids, pad) for m in manifest["members"]}
    want = (1 - g.sum(1)) * score_ids(routed.model, es.ids, pad) + sum(g[:, k] * own[m]
                                                                       for k, m in enumerate(manifest["members"]))
    got = (want[: es.n] > want[es.n:]).mean()  # the output-mixing row's accuracy, recomputed by hand
    assert by_model["rt_outputs"]["demo_pairs"] == pytest.approx(got)
    notes = json.loads((out_root / "reports" / "evaluate-test" / "results.json").read_text())["notes"]
    assert "rt_outputs: the shared model's rewards are ties's (the same merge)" in notes  # routed.shared=equal
    from rewardsoup.evaluation.routed import same_soup

    other = {**manifest["shared"], "density": 0.5 * manifest["shared"]["density"]}
    assert same_soup(manifest["shared"], {"ties": soup}) == "ties" and same_soup(other, {"ties": soup}) is None
    mean = next(v for v in out["verdicts"] if (v["model"], v["against"], v["dataset"]) == ("rt", "ties", "mean"))
    per_set = [v["diff"] for v in out["verdicts"] if (v["model"], v["against"]) == ("rt", "ties") and v["dataset"] != "mean"]
    assert len(per_set) == 3 and mean["diff"] == pytest.approx(np.mean(per_set))  # the sets weigh the same
    assert mean["lo"] <= mean["diff"] <= mean["hi"]
    notes = json.loads((out_root / "reports" / "evaluate-test" / "results.json").read_text())["notes"]
    split = [n for n in notes if n.startswith("rt routes demo_pairs: shared ")]
    assert split and all(name in split[0] for name in NAMES)
    from rewardsoup.sweep.pick import test_config

    import rewardsoup.evaluation.routed as evaluation_routed

    asked = []
    monkeypatch.setattr(evaluation_routed, "arrow_model", lambda *a, **kw: asked.append(1))  # None: no adapters
    off = ["references.base=false", "references.length=false", "baselines.uniform_soup=false", "bootstrap=0"]
    for arrow in ("true", "false"):  # references.arrow=false: Arrow's model is not even built
        again = evaluate_models(compose_cfg("evaluate", merge_overrides[:3] + models + ["max_length=64"] + off
                                            + [f"references.arrow={arrow}"]))
        assert len(asked) == 1 and {r["model"]: r for r in again["rows"]}["rt"]["demo_pairs"] == by_model["rt"]["demo_pairs"]
    assert test_config(validate(compose_cfg("merge", merge_overrides + ["pick.arrow=false"])), {}, {}).references.arrow is False


def test_the_outputs_fit_learns_on_rewards_scored_once_with_no_forward_per_step(compose_cfg, merge_overrides,
                                                                                out_root, monkeypatch):
    """routed.fit=outputs: K + 1 val passes, then steps on (1 - sum g) r_shared + sum g_k r_k alone; the saved
    folder is a routed soup like any other (the gates still act inside the network when it scores)."""
    from rewardsoup.core.config import validate
    from rewardsoup.routing import fit as fit_module
    from rewardsoup.search import jobs

    def no_forward(*a, **k):
        raise AssertionError("the outputs fit ran a routed forward")

    monkeypatch.setattr(fit_module, "pad_batch", no_forward)  # only the network path batches texts
    cfg = validate(compose_cfg("merge", merge_overrides + [
        "search=routed", "routed.shared=equal", "routed.rank=2", "routed.fit=outputs", "routed.epochs=3",
        "routed.batch_rows=4", "routed.init=uniform", "routed.lr=0.5", "trial.max_length=64",
        "routed.prompt_length=32", "logger=none"]))
    manifest = jobs.merge_job(cfg)
    assert manifest["settings"]["fit"] == "outputs" and len(manifest["fit"]["history"]) >= 2
    losses = [h["fit_loss"] for h in manifest["fit"]["history"][1:]]
    assert len(losses) >= 2 and losses[-1] < losses[0]  # the surrogate's loss goes down on the fitting rows
    assert (out_root / "soups" / "routed-optuna-ties" / "routed_soup.json").exists()


def test_the_which_set_loss_sends_a_set_to_the_member_trained_on_it(compose_cfg, merge_overrides, out_root):
    """routed.set_loss > 0: the router also learns which set a prompt is from, so demo_harmless's rows (prompts
    unlike the role-play ones) lean on the harmless member, more than without that loss; whether the loss reads
    val's fitting rows or the train split's prompts (set_prompts)."""
    from rewardsoup.core.config import validate
    from rewardsoup.routing.folder import load_routed
    from rewardsoup.search import jobs

    share = {}
    for weight, prompts in ((0.0, "val"), (5.0, "val"), (5.0, "train")):
        name = f"routed-w{weight:g}-{prompts}"
        cfg = validate(compose_cfg("merge", merge_overrides + [
            "search=routed", "routed.shared=equal", "routed.rank=2", "routed.fit=outputs", "routed.epochs=4",
            "routed.patience=4", "routed.batch_rows=4", "routed.init=uniform", "routed.lr=0.5",
            f"routed.set_loss={weight}", f"routed.set_prompts={prompts}", f"routed.name={name}",
            "trial.max_length=64", "routed.prompt_length=32"]))
        jobs.merge_job(cfg)
        routed, router, manifest = load_routed(out_root / "soups" / name)
        rs = routed_search.route_sets(cfg, AutoTokenizer.from_pretrained(str(out_root / "soups" / name / "shared")),
                                      routed.model.get_input_embeddings().weight.detach(), manifest["shared"]["base"])
        harmless = next(r for r in rs if r.name == "demo_harmless")
        with torch.no_grad():
            gate = router(harmless.feats).mean(0)
        share[weight, prompts] = float(gate[manifest["members"].index("harmless")])
    assert all(share[5.0, p] > 0.5 and share[5.0, p] > share[0.0, "val"] for p in ("val", "train"))


def test_sample_and_scalar_score_take_a_routed_folder_and_a_prompts_candidates_share_one_gate(
        compose_cfg, merge_overrides, out_root, tmp_path):
    """sample.py (rerank) and `scalar_score` score through the routed soup: the same rewards as its scorer, every
    candidate of a prompt under that prompt's one gate, and prompts that differ under gates that differ."""
    from safetensors.torch import load_file, save_file

    from rewardsoup.core.config import validate
    from rewardsoup.routing.folder import ROUTER
    from rewardsoup.routing.scorer import RoutedScorer
    from rewardsoup.sampling import job as sampling
    from rewardsoup.scoring import scalar_score
    from rewardsoup.search import jobs

    jobs.merge_job(validate(compose_cfg("merge", merge_overrides + [
        "search=routed", "routed.shared=equal", "routed.rank=2", "routed.epochs=1", "routed.batch_rows=4",
        "trial.max_length=64", "routed.prompt_length=32", "logger=none"])))
    folder = out_root / "soups" / "routed-optuna-ties"
    weights = load_file(str(folder / ROUTER))  # a router whose gates clearly move with the prompt
    last = max(k for k in weights if k.endswith(".weight"))
    weights[last] = 0.05 * torch.randn(weights[last].shape, generator=torch.Generator().manual_seed(0))
    save_file(weights, str(folder / ROUTER))
    rows = [{"messages": [{"role": "user", "content": "Tell me about dragons."}],
             "candidates": ["Dragons breathe fire.", "No.", "Once upon a time, a dragon slept."]},
            {"messages": [{"role": "user", "content": "How do I pick a lock?"}],
             "candidates": ["I cannot help with that.", "Use a tension wrench."]}]
    cands = tmp_path / "cands.jsonl"
    cands.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = sampling.sample_job(validate(compose_cfg("sample", [
        "logger=none", f"reward_model={folder}", f"candidates={cands}", "print_candidates=false", "max_length=64"])))
    out = [json.loads(line) for line in open(summary["output"])]
    scorer = RoutedScorer.from_folder(folder)
    gates = []
    for row, given in zip(out, rows):
        texts = [row["prompt"] + " " + c for c in given["candidates"]]  # plain style, as test_sampling renders them
        want = scorer.score_texts(texts, 64, groups=[list(range(len(texts)))])
        np.testing.assert_allclose([c["reward"] for c in row["candidates"]], want, atol=1e-5)
        probs = np.array(scalar_score(folder, texts, max_length=64))  # one text at a time: the same prompt rule
        np.testing.assert_allclose(np.log(probs / (1 - probs)), want, atol=1e-4)
        g = scorer.gates(texts)
        assert torch.allclose(g, g[:1].expand_as(g))  # every candidate of the prompt: one gate
        gates.append(g[0])
    assert len(gates) == 2 and not torch.allclose(gates[0], gates[1], atol=1e-3)  # another prompt, other weights


def test_the_outputs_fit_reads_the_members_val_rewards_the_sweep_kept(compose_cfg, merge_overrides, out_root,
                                                                      monkeypatch):
    """The sweep scores each member alone on val for its floors and keeps the per-text rewards; they equal the
    scoring path's, the routed fit reads them instead of loading the members again, and other scoring settings
    are not served from them."""
    from transformers import AutoTokenizer

    from rewardsoup.core.config import validate
    from rewardsoup.merging.soup import merge_request
    from rewardsoup.scoring.evalsets import load_evalset
    from rewardsoup.scoring.rewards import score_ids
    from rewardsoup.sweep import references

    args = merge_overrides + ["search=routed", "trial.max_length=64", "routed.prompt_length=32", "logger=none"]
    cfg = validate(compose_cfg("merge", args))
    references.member_details(cfg, cfg.sweep.dir)
    kept = references.member_rewards(cfg, cfg.sweep.dir)
    request = merge_request(cfg)
    base = load_reward_model(request["base"])
    for name, path in request["members"].items():
        for ds in cfg.datasets:
            es = load_evalset(ds, cfg.datasets[ds], "val", request["base"], 64, cfg.paths.cache, "independent")
            want = score_ids(load_reward_model(path), es.ids, base.config.pad_token_id)
            np.testing.assert_allclose(kept[f"{name}/{ds}"], want, atol=1e-5)
    assert references.member_rewards(validate(compose_cfg("merge", args + ["trial.max_length=48"])),
                                      cfg.sweep.dir) == {}

    def no_member(*a, **k):
        raise AssertionError("a member was loaded and scored again")

    monkeypatch.setattr(routed_search, "load_reward_model", no_member)
    sets = routed_search.route_sets(cfg, AutoTokenizer.from_pretrained(request["base"]),
                                    base.get_input_embeddings().weight.detach(), request["base"])
    mix = routed_search._output_mix(cfg, base, request, sets)
    for rs in sets:
        np.testing.assert_allclose(mix.table[rs.name][:, 1:].numpy(),
                                   np.stack([kept[f"{n}/{rs.name}"] for n in sorted(request["members"])], 1),
                                   atol=1e-6)


def test_the_outputs_fit_reads_the_picks_val_rewards_its_trial_kept(compose_cfg, merge_overrides, out_root,
                                                                   monkeypatch):
    """A complete trial keeps its per-text val rewards beside the ledger; with routed.shared=best the shared
    model is that trial's merge, so the fit reads them (equal to scoring the shared model) and scores nothing;
    other scoring settings are not served from them."""
    from transformers import AutoTokenizer

    from rewardsoup.core.config import validate
    from rewardsoup.merging.soup import merge_request
    from rewardsoup.scoring.rewards import score_ids
    from rewardsoup.sweep import references
    from rewardsoup.sweep.record import record

    args = merge_overrides + ["search=routed", "routed.shared=best", "trial.max_length=64",
                              "routed.prompt_length=32", "logger=none"]
    cfg = validate(compose_cfg("merge", args))
    request = merge_request(cfg)
    record(cfg, request, "test", 0)
    assert references.trial_rewards(validate(compose_cfg("merge", args + ["trial.max_length=48"])),
                                     cfg.sweep.dir, request) == {}
    shared, _ = routed_search._shared(request, cfg)
    sets = routed_search.route_sets(cfg, AutoTokenizer.from_pretrained(request["base"]),
                                    shared.get_input_embeddings().weight.detach(), request["base"])
    want = {rs.name: score_ids(shared, rs.ids, shared.config.pad_token_id) for rs in sets}

    def no_scoring(*a, **k):
        raise AssertionError("a model was scored again")

    monkeypatch.setattr(routed_search, "score_ids", no_scoring)
    monkeypatch.setattr(routed_search, "load_reward_model", no_scoring)
    references.member_details(cfg, cfg.sweep.dir)  # the members' rewards (record's floors read them too)
    mix = routed_search._output_mix(cfg, shared, request, sets)
    for rs in sets:
        np.testing.assert_allclose(mix.table[rs.name][:, 0].numpy(), want[rs.name], atol=1e-5)


def test_the_arrow_reference_gets_each_members_linear_differences_as_an_exact_peft_adapter(tmp_path):
    """routing.arrow: member k's adapter folder, loaded by peft on the shared model, is the shared model plus
    B_k A_k on every Linear weight (scaling 1, peft's orientation); Arrow over all of them scores every text
    somewhere between, and a rank-`full` soup has no adapters to route."""
    from peft import PeftModel

    from rewardsoup.routing.arrow import arrow_model, arrow_scores, linear_factors, write_adapters

    torch.manual_seed(0)
    shared = AutoModelForSequenceClassification.from_pretrained(str(tiny_model_dir("llama")), num_labels=1).eval()
    shared.config.pad_token_id = 0
    shared.save_pretrained(str(tmp_path / "shared"))
    base = {k: v.detach().clone() for k, v in shared.named_parameters()}
    sds = {n: {k: v + 0.05 * torch.randn_like(v) for k, v in base.items()} for n in ("a", "b")}
    routed = build_routed(shared, sds, 3)
    factors = linear_factors(routed)
    assert factors and all(name.endswith("proj") for name in factors)  # the head's difference is exact: not an adapter
    ids, mask = _batch()
    for k, path in enumerate(write_adapters(routed, tmp_path / "adapters")):
        plain = load_reward_model(tmp_path / "shared")
        weights = {f"{m}.weight": base[f"{m}.weight"] + ab[k][1] @ ab[k][0] for m, ab in factors.items()}
        plain.load_state_dict(weights, strict=False)
        peft = PeftModel.from_pretrained(load_reward_model(tmp_path / "shared"), str(path)).eval()
        torch.testing.assert_close(_logits(peft, ids, mask), _logits(plain, ids, mask), atol=1e-5, rtol=1e-5)
    arrow = arrow_model(routed, tmp_path / "shared")
    got = _logits(arrow, ids, mask)
    rows = [list(map(int, row[m.bool()])) for row, m in zip(ids, mask)]
    np.testing.assert_allclose(arrow_scores(arrow, rows, 0), got.numpy(), atol=1e-5)  # fp32 outside autocast
    texts, groups = _prompted()  # Arrow routes each token by its own input: a shared prefix changes no reward
    np.testing.assert_allclose(arrow_scores(arrow, texts, 0, groups=groups), arrow_scores(arrow, texts, 0), atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the demo's bf16 test table: peft 0.21 fails on fp32 adapters
        again = arrow_scores(arrow, rows, 0)
    assert {p.dtype for n, p in arrow.named_parameters() if ".lora_" in n} == {torch.bfloat16}
    assert not np.allclose(again, got.numpy(), atol=1e-6)  # bf16, not fp32 ...
    np.testing.assert_allclose(again, got.numpy(), atol=2e-2)  # ... and the same logits at bf16's precision
    assert torch.isfinite(got).all() and not torch.allclose(got, _logits(load_reward_model(tmp_path / "shared"),
                                                                          ids, mask))
    assert arrow_model(build_routed(load_reward_model(tmp_path / "shared"), sds, "full"), tmp_path / "shared") is None
