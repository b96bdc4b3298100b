"""Model cards: a tiny soup and member get README.md cards whose hub metadata (`model-index` results read back
with huggingface_hub), load snippet, numbers and test table match what was trained and evaluated; an upload
without the hub fails at once, naming the repo."""

import json
import re
import shutil
import socket
import time

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_dir

from conftest import CONF
from rewardsoup.core.errors import RewardSoupError
from rewardsoup.core.hub import hub_reachable
from rewardsoup.models import cards
from rewardsoup.models.base import MEMBER_META

SWEEP = {"name": "demo", "dir": "outputs/sweeps/demo", "objective": {"kind": "mean", "binary_metric": "accuracy"},
         "trial": 7, "val": {"demo_thumbs": 0.61, "demo_pairs": 0.55}, "n_trials": 12}
CELL = re.compile(r"^(\d\.\d{3}) \[(\d\.\d{3}), (\d\.\d{3})\] n=(\d+)$")


def _compose(root, overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=root, overrides=overrides)


@pytest.fixture(scope="module")
def carded_soup(tmp_path_factory, tiny_members, tiny_base_dir):
    """A ties soup of the tiny members, evaluated on the test splits, with its card written from results.json."""
    from rewardsoup.evaluation.job import evaluate_models
    from rewardsoup.merging.soup import export, merge_request

    root = tmp_path_factory.mktemp("cards")
    common = ["logger=none", "model=tiny_gpt2", f"model.base_dir={tiny_base_dir}", f"paths.root={root}"]
    members = [f"members.{n}={p}" for n, p in tiny_members.items()]
    request = merge_request(_compose("merge", common + members + ["merge=ties"]))
    folder = export(request, root / "soups" / "picked")
    models = [f"+models.{n}={p}" for n, p in tiny_members.items()] + [f"+models.picked={folder}"]
    result = evaluate_models(_compose("evaluate", common + models + ["bootstrap=50", "max_length=64"]))
    evaluation = json.loads((root / "reports" / "evaluate-test" / "results.json").read_text())
    assert evaluation["rows"] == json.loads(json.dumps(result["rows"]))  # the file is what the job returned
    cards.write_soup_card(folder, request, name="picked", evaluation=evaluation, sweep=SWEEP)
    return folder, request, evaluation


def _front(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def _section(text: str, title: str) -> str:
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _tables(section: str) -> list[list[list[str]]]:
    """Every markdown table of a section as rows of cells (header first, separator dropped)."""
    out, current = [], []
    for line in section.splitlines() + [""]:
        if line.startswith("|"):
            if not line.startswith("|---"):
                current.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif current:
            out.append(current)
            current = []
    return out


def test_soup_card_front_matter_and_sections(carded_soup, tiny_base_dir):
    from rewardsoup.merging.on_disk import SOUP_CONFIG

    folder, request, evaluation = carded_soup
    text = (folder / "README.md").read_text()
    front = _front(text)
    assert front["library_name"] == "transformers" and front["pipeline_tag"] == "text-classification"
    assert front["tags"] == ["reward-model", "merge", "mergekit", "rewardsoup"]
    assert front["base_model"] == str(tiny_base_dir)  # tiny:gpt2 has no hub original: the base folder
    assert front["datasets"] == ["demo_thumbs", "demo_pairs", "demo_harmless"]
    assert cards.SOUP_CONFIG == SOUP_CONFIG
    mergekit_yaml = _section(text, "Mergekit configuration").split("```yaml\n")[1].split("```")[0]
    assert yaml.safe_load(mergekit_yaml) == yaml.safe_load((folder / SOUP_CONFIG).read_text())
    members = {r[0]: r for r in _tables(_section(text, "Members"))[0][1:]}
    assert set(members) == set(request["members"])
    for name, row in members.items():
        assert row[1] == f"`{request['members'][name]}`"
        assert float(row[2]) == pytest.approx(request["weights"][name], rel=1e-3)
        assert float(row[3]) == pytest.approx(request["density"], rel=1e-3)
    sweep = _section(text, "The sweep that chose it")
    assert "- trial: 7" in sweep and "- n_trials: 12" in sweep and "demo_thumbs 0.61" in sweep
    assert f'model="{folder}"' in text and 'function_to_apply="none"' in text


def test_soup_card_test_table_is_the_evaluation_json(carded_soup):
    folder, _, evaluation = carded_soup
    main, diffs, versus = _tables(_section((folder / "README.md").read_text(), "Test results"))
    datasets = main[0][2:-1]
    assert datasets == ["demo_thumbs", "demo_pairs", "demo_harmless"] and main[0][-1] == "mean"
    by_model = {r["model"]: r for r in evaluation["rows"]}
    assert [r[0] for r in main[1:]] == [r["model"] for r in evaluation["rows"]]
    for cells in main[1:]:
        row = by_model[cells[0]]
        assert cells[1] == row["kind"] + (" (this model)" if cells[0] == "picked" else "")
        for ds, cell in zip(datasets, cells[2:-1]):
            acc, lo, hi, n = CELL.match(cell).groups()
            assert (acc, lo, hi) == tuple(f"{row[k]:.3f}" for k in (ds, f"{ds}_lo", f"{ds}_hi"))
            assert int(n) == row[f"{ds}_n"] > 0
        assert cells[-1] == f"{row['mean']:.3f}"
    compared = [r["model"] for r in evaluation["rows"] if "demo_thumbs_vs_best_member" in r]
    assert [r[0] for r in diffs[1:]] == compared and "picked" in compared
    for cells in diffs[1:]:
        for ds, cell in zip(datasets, cells[1:]):
            row = by_model[cells[0]]
            assert cell.endswith(f"vs {row[f'{ds}_best_member']}: {row[f'{ds}_bar']}")
            assert cell.startswith(f"{100 * row[f'{ds}_vs_best_member']:+.1f} ")
    mine = [v for v in evaluation["verdicts"] if v["model"] == "picked"]  # the soup against the alternatives
    assert [(c[0], c[1], c[3]) for c in versus[1:]] == [(v["against"], v["dataset"], v["verdict"]) for v in mine]
    assert {v["against"] for v in mine} == {"logit_ensemble"}


def test_pipeline_loads_the_carded_soup_and_scores_like_rewardsoup(carded_soup):
    from transformers import pipeline

    from rewardsoup.models.loading import load_scorer
    from rewardsoup.scoring.rewards import scalar_score, score_texts

    folder, _, _ = carded_soup
    assert (folder / "README.md").exists()
    texts = ["\n\nHuman: Any tips for a rainy day?\n\nAssistant: Read a book by the window.",
             "\n\nHuman: hi\n\nAssistant: go away"]
    pipe = pipeline("text-classification", model=str(folder), function_to_apply="none")
    logits = [pipe(t)[0]["score"] for t in texts]
    model, tokenizer = load_scorer(folder)
    ours = score_texts(model, tokenizer, texts, max_length=64)
    assert logits == pytest.approx(ours.tolist(), abs=1e-4)
    assert scalar_score(folder, texts, max_length=64) == pytest.approx((1 / (1 + np.exp(-ours))).tolist(), abs=1e-6)
    assert abs(logits[0] - logits[1]) > 1e-6  # a trained soup, not a constant


def test_member_card_from_a_real_member(tiny_members, tiny_base_dir, tmp_path):
    folder = tmp_path / "thumbs"
    shutil.copytree(tiny_members["thumbs"], folder)  # the session's member folders stay untouched
    meta = json.loads((folder / MEMBER_META).read_text())
    cards.write_member_card(folder, load_from=str(folder))
    text = (folder / "README.md").read_text()
    front = _front(text)
    assert front["base_model"] == meta["base"] == str(tiny_base_dir)
    assert front["library_name"] == "transformers" and front["tags"] == ["reward-model", "rewardsoup"]
    assert front["datasets"] == [meta["data"]["name"]] == ["demo_thumbs"]
    acc, n = re.search(r"- val accuracy: (\d\.\d{4}) \(n=(\d+)\)", text).groups()
    assert acc == f"{meta['val']['accuracy']:.4f}" and int(n) == meta["val"]["n"] > 0
    sizes = meta["split_sizes"]
    assert f"train {sizes['train']}, val {sizes['val']}, test {sizes['test']}" in text
    tok = meta["tokenization"]
    assert f"{tok['left_truncated']} of {tok['texts']} train texts left-truncated to {meta['max_length']}" in text
    assert "thumbs-up" in text and f'model="{folder}"' in text  # binary: sigmoid(score) is P(liked)
    pairs = cards.member_card(json.loads((tiny_members["pairs"] / MEMBER_META).read_text()))
    assert "Only differences are meaningful" in pairs and "thumbs-up" not in pairs


@pytest.fixture
def no_network(monkeypatch):
    """Hub offline, and any socket connect fails: writing and reading cards must stay on this machine."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a card tried to reach the network: {args}")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _results(path) -> tuple[str | None, list[tuple]]:
    """The card's model name and `model-index` results as (dataset, type, split, metric, value), read back
    from the local file with huggingface_hub."""
    from huggingface_hub import ModelCard

    data = ModelCard.load(path).data
    return data.model_name, [(r.dataset_name, r.dataset_type, r.dataset_split, r.metric_type, r.metric_value)
                             for r in data.eval_results or []]


def test_member_card_model_index_is_its_val_accuracy(tiny_members, tmp_path, no_network):
    from huggingface_hub import ModelCard

    folder = tmp_path / "pairs"
    shutil.copytree(tiny_members["pairs"], folder)
    meta = json.loads((folder / MEMBER_META).read_text())
    cards.write_member_card(folder)
    name, results = _results(folder / "README.md")
    assert name == meta["name"]
    assert results == [("demo_pairs", "demo_pairs", "validation", "accuracy", pytest.approx(meta["val"]["accuracy"]))]
    assert ModelCard.load(folder / "README.md").data.eval_results[0].task_type == "text-classification"
    mix = {**meta, "data": {"name": "mix", "source": "parts",
                            "parts": {"hh": {"source": "Anthropic/hh-rlhf"}, "mine": {"source": "x.jsonl"}}},
           "val": {"accuracy": 0.7, "n": 9, "hh/accuracy": np.float64(0.6), "mine/accuracy": float("nan")}}
    cards.write_card(tmp_path, cards.member_card(mix))  # a mix: each part's val accuracy, NaN left out
    assert _results(tmp_path / "README.md")[1] == [("hh", "Anthropic/hh-rlhf", "validation", "accuracy", 0.6)]


def test_soup_card_model_index_is_its_test_row(carded_soup, no_network):
    folder, _, evaluation = carded_soup
    name, results = _results(folder / "README.md")
    mine = next(r for r in evaluation["rows"] if r["model"] == "picked")
    assert name == "picked"
    assert results == [(ds, ds, "test", "accuracy", pytest.approx(mine[ds]))
                       for ds in ("demo_thumbs", "demo_pairs", "demo_harmless")]
    assert all(0 <= r[-1] <= 1 for r in results)
    rows = [{**r, "demo_pairs": float("nan")} if r["model"] == "picked" else r for r in evaluation["rows"]]
    broken = dict(evaluation, rows=rows)  # a NaN accuracy stays out of the model-index
    assert "demo_pairs" in cards.eval_datasets(broken)
    assert [r.dataset_name for r in cards._soup_results("picked", broken, [])] == ["demo_thumbs", "demo_harmless"]


def test_cards_without_results_keep_their_metadata(carded_soup, tiny_members, tmp_path, no_network):
    from huggingface_hub import ModelCard

    from rewardsoup.merging.on_disk import SOUP_CONFIG

    folder, request, _ = carded_soup
    meta = json.loads((tiny_members["thumbs"] / MEMBER_META).read_text())
    texts = {"member": cards.member_card({**meta, "val": {"accuracy": float("nan"), "n": 0}}),
             "soup": cards.soup_card(name="picked", request=request, merge_yaml=(folder / SOUP_CONFIG).read_text(),
                                     evaluation=None, sweep=None, base_meta=None)}
    assert "No test evaluation was given" in texts["soup"]
    for kind, title in (("member", meta["name"]), ("soup", "picked")):
        assert "model-index" not in texts[kind]
        (tmp_path / kind).mkdir()
        card = ModelCard.load(cards.write_card(tmp_path / kind, texts[kind]))
        assert card.data.eval_results is None and card.data.model_name is None
        assert card.data.base_model == meta["base"] and card.data.pipeline_tag == "text-classification"
        assert card.data.library_name == "transformers" and "reward-model" in card.data.tags
        assert card.text.lstrip("\n").startswith(f"# {title}\n")  # the markdown body follows the metadata


def test_base_model_and_dataset_names():
    assert cards.base_model({"source": "embedded:smollm2-135m-instruct"}, "/b") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert cards.base_model({"source": "openai-community/gpt2"}, "/b") == "openai-community/gpt2"
    assert cards.base_model({"source": "tiny:gpt2"}, "/b") == cards.base_model({"source": "/models/gpt2"}, "/b") == "/b"
    found = cards.dataset_ids([{"name": "hh_rlhf", "source": "Anthropic/hh-rlhf"},
                               {"name": "mine", "source": "/data/pairs.jsonl"}, {"name": "mine", "source": "x.jsonl"},
                               {"name": "demo_thumbs", "source": "thumbs"}])
    assert found == ["Anthropic/hh-rlhf", "mine", "demo_thumbs"]


@pytest.fixture
def folder(tmp_path):
    """A folder that looks like a model folder to push_folder (the upload never gets that far)."""
    (tmp_path / "soup").mkdir()
    (tmp_path / "soup" / "config.json").write_text("{}")
    return tmp_path / "soup"


@pytest.fixture
def fresh_probe():
    hub_reachable.cache_clear()
    yield
    hub_reachable.cache_clear()


def test_push_fails_at_once_when_offline(folder, monkeypatch, fresh_probe):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(RewardSoupError, match=r"hub repo 'someone/picked-soup'.*unreachable.*HF_HUB_OFFLINE"):
        cards.push_folder(folder, "someone/picked-soup")
    assert time.monotonic() - start < 5


def test_push_fails_at_once_when_the_endpoint_is_closed(folder, monkeypatch, fresh_probe):
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    start = time.monotonic()
    with pytest.raises(cards.HubError, match=r"hub repo 'someone/picked-soup'.*unreachable"):
        cards.push_folder(folder, "someone/picked-soup")
    assert time.monotonic() - start < 5


def test_hub_client_errors_become_one_line(folder, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(cards, "hub_reachable", lambda: True)  # past the probe: the client itself fails
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    start = time.monotonic()
    with pytest.raises(cards.HubError, match=r"hub repo 'someone/picked-soup'") as info:
        cards.push_folder(folder, "someone/picked-soup", token="hf_fake")
    assert "\n" not in str(info.value) and time.monotonic() - start < 5
    with pytest.raises(cards.HubError, match="not a model folder"):
        cards.push_folder(folder.parent, "someone/picked-soup")
