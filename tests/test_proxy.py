"""Proxy screening (search=proxy) on the tiny members: the proxy is the logit ensemble credited like a trial,
run_proxy merges only the top-k for real, reruns recompute nothing, a distrusted proxy adds fallback trials."""

import numpy as np
import pytest

from rewardsoup.core.config import validate
from rewardsoup.core.errors import ConfigError
from rewardsoup.merging.soup import merge_request
from rewardsoup.models.loading import load_reward_model
from rewardsoup.scoring.metrics import Scored, ensemble, metrics, score_evalsets
from rewardsoup.search import proxy
from rewardsoup.sweep import ledger, trials
from rewardsoup.sweep import record as recording
from rewardsoup.search.config import MergeJobConfig
from rewardsoup.sweep.objective import dataset_score, objective_value

SETTINGS = {"candidates": 300, "top_k": 3, "seed": 0, "min_spearman": -1.0, "fallback_trials": 0, "densities": []}


@pytest.fixture
def proxy_cfg(compose_cfg, merge_overrides, out_root):
    def _cfg(*extra, **settings):
        cfg = compose_cfg("merge", merge_overrides + ["trial.max_length=64", "sweep.name=p", *extra])
        for key, value in {**SETTINGS, **settings}.items():  # the test's own proxy settings
            cfg.proxy[key] = value
        return cfg

    return _cfg


def _member_scored(cfg, path):
    model = load_reward_model(path)
    evalsets = list(proxy.val_evalsets(cfg, str(cfg.model.base_dir)).values())
    return score_evalsets(model, evalsets, model.config.pad_token_id, int(cfg.trial.batch_size))


def test_one_hot_proxy_is_the_members_own_val_metrics(proxy_cfg):
    cfg = proxy_cfg()
    p = proxy.build_proxy(cfg)
    objective = dict(cfg.sweep.objective)
    for i, name in enumerate(p.members):
        one_hot = np.eye(len(p.members))[i:i + 1]
        got, details = p.scores(one_hot), p.details(one_hot)
        for ds, scored in zip(p.evalsets, _member_scored(cfg, cfg.members[name])):
            m = metrics(scored, bootstrap=0)
            assert details[ds]["accuracy"][0] == m["accuracy"]  # exactly: same rewards, same credit
            assert got["val"][ds][0] == dataset_score(m, objective)
            if "auc" in m:
                assert details[ds]["auc"][0] == m["auc"]


def test_proxy_is_the_weighted_logit_ensemble(proxy_cfg):
    cfg = proxy_cfg("sweep.objective.binary_metric=auc")
    p = proxy.build_proxy(cfg)
    scored = {n: _member_scored(cfg, cfg.members[n]) for n in p.members}
    uniform = p.details(np.ones((1, len(p.members))))
    weights = np.array([0.2, 1.3, 0.5])
    got = p.scores(weights[None, :])
    per = {}
    for k, ds in enumerate(p.evalsets):
        mean = metrics(ensemble([scored[n][k] for n in p.members]), bootstrap=0)
        assert uniform[ds]["accuracy"][0] == pytest.approx(mean["accuracy"], abs=1e-12)
        rewards = sum(w * scored[n][k].rewards for w, n in zip(weights, p.members)) / weights.sum()
        m = metrics(Scored(scored[p.members[0]][k].evalset, rewards), bootstrap=0)
        per[ds] = dataset_score(m, dict(cfg.sweep.objective))
        assert got["val"][ds][0] == pytest.approx(per[ds], abs=1e-12)
    assert got["objective"][0] == pytest.approx(objective_value(per, dict(cfg.sweep.objective)), abs=1e-12)
    assert proxy.proxy_scores(p, np.tile(weights, (4, 1))).shape == (4,)


def test_run_proxy_merges_the_top_k_and_a_rerun_recomputes_nothing(proxy_cfg, monkeypatch):
    cfg = proxy_cfg(top_k=2, densities=[0.5, 1.0])
    best = proxy.run_proxy(cfg, recording.record)
    rows = ledger.read(cfg.sweep.dir)[1]
    assert len(rows) == 4 and {r["source"] for r in rows} == {"proxy"}  # top_k x densities
    assert sorted(r["request"]["density"] for r in rows) == [0.5, 0.5, 1.0, 1.0]
    assert best == max(r["objective"] for r in rows)
    assert trials.score_request(cfg, rows[0]["request"])["objective"] == rows[0]["objective"]
    cache = proxy.rewards_path(cfg, merge_request(cfg))
    stamp = cache.stat().st_mtime_ns
    monkeypatch.setattr(proxy, "load_reward_model", lambda p: pytest.fail("member rescored"))
    monkeypatch.setattr(recording, "score_request", lambda *a: pytest.fail("a known request was recomputed"))
    assert proxy.run_proxy(cfg, recording.record) == best
    assert ledger.read(cfg.sweep.dir)[1] == rows and cache.stat().st_mtime_ns == stamp


def test_a_distrusted_proxy_adds_fallback_trials(proxy_cfg, capsys):
    cfg = proxy_cfg("merge=linear", min_spearman=1.01, fallback_trials=2)
    proxy.run_proxy(cfg, recording.record)
    rows = ledger.read(cfg.sweep.dir)[1]
    assert [r["source"] for r in rows] == ["proxy"] * 3 + ["proxy-fallback"] * 2
    assert all(r["request"]["density"] is None for r in rows)  # linear has no density
    assert "PROXY RANKS BADLY" in capsys.readouterr().out


def test_settings_and_methods_are_checked(proxy_cfg):
    with pytest.raises(ConfigError, match="proxy.top_k=0"):
        proxy.settings(proxy_cfg(top_k=0))
    with pytest.raises(ConfigError, match="proxy.densities"):
        proxy.settings(proxy_cfg(densities=[1.5]))
    with pytest.raises(ConfigError, match="proxy.seed"):
        proxy.settings(proxy_cfg(seed="???"))
    with pytest.raises(ConfigError, match="merge.method=slerp"):
        proxy.distrust(merge_request(proxy_cfg("merge=slerp")))
    assert "scale" in proxy.distrust(merge_request(proxy_cfg("merge=task_arithmetic")))
    assert proxy.distrust(merge_request(proxy_cfg())) is None


@pytest.mark.skipif("proxy" not in MergeJobConfig.__dataclass_fields__, reason="proxy not wired into merge.yaml yet")
def test_search_proxy_composes_and_validates(compose_cfg, merge_overrides):
    cfg = validate(compose_cfg("merge", merge_overrides + ["search=proxy"]))
    assert cfg.mode == "proxy" and cfg.sweep.name == "proxy-ties" and proxy.settings(cfg).top_k >= 1
