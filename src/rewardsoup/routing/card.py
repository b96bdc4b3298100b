"""The model card (README.md) of a routed soup folder: what it is, how to use it, how the router splits each set.

Written when the soup is fitted (with the router's split of each val set) and again by the pick (with the test
table, its paired verdicts, and the router's split of each test set). The hub metadata comes from
`models.cards.card_text`, the test table from `models.cards.results_table`, so the card reads as a soup's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from rewardsoup.models.cards import SOUP_TAGS, card_text, eval_datasets, results_table, write_card

ROUTED_TAGS = [*SOUP_TAGS, "routed"]


def share_table(shares: Mapping[str, Mapping[str, float]]) -> list[str]:
    """{set: {who: mean gate}} as a markdown table: one row per set, one column per member and the shared model."""
    if not shares:
        return ["(not measured yet)"]
    who = list(next(iter(shares.values())))
    return ["| set | " + " | ".join(who) + " |", "|---|" + "---|" * len(who),
            *[f"| {ds} | " + " | ".join(f"{by.get(w, float('nan')):.2f}" for w in who) + " |"
              for ds, by in shares.items()]]


def routed_card(name: str, manifest: Mapping[str, Any], shares: Mapping[str, Mapping[str, float]], split: str,
                evaluation: Mapping[str, Any] | None = None) -> str:
    shared, fit = manifest["shared"], manifest["fit"]
    members = ", ".join(f"`{m}` ({shared['members'].get(m)})" for m in manifest["members"])
    start, kept = fit["history"][0]["stop"], fit["best_stop"]
    lines = [f"# {name}", "",
             "A rewardsoup **routed soup**: one shared merged model (the sweep's pick) plus each member's difference "
             f"from it, kept at rank {manifest['rank']} ({manifest['kept_fraction']:.3f} of the differences' "
             "energy), weighted per prompt by a router that reads only the prompt (the text before the reply being "
             "judged). A text costs one forward; a pair's two texts, or best-of-N's candidates, share one set of "
             "weights.", "",
             "## Use", "",
             "By path, like any rewardsoup reward model:", "",
             "```python", "from rewardsoup.scoring import scalar_score",
             f"scalar_score({str(manifest.get('folder', name))!r}, [\"User: hi\\nBot: hello!\"])", "```", "",
             "`python evaluate.py models.NAME=FOLDER`, `python sample.py reward_model=FOLDER` and the pipeline's "
             "test table take the folder too. `mergekit-yaml` cannot export it (its weights change with every "
             "prompt); its `shared/` folder is the static soup it routes from and exports as one.", "",
             "## Members (gate order)", "", members, "",
             "## The router", "",
             f"Mean-pooled input embeddings of the prompt's last {manifest['prompt_length']} tokens -> "
             f"{'a linear map' if not manifest['router'].get('hidden') else 'one tanh layer'} -> softmax over "
             "[shared, members]. Fitted on val with the members' own losses"
             + (f" and the which-set loss (weight {manifest['settings'].get('set_loss')})"
                if float(manifest["settings"].get("set_loss") or 0) > 0 else "")
             + f", fit `{manifest['settings'].get('fit')}`; kept epoch {fit['best_epoch']} of the stopping rows "
             f"({', '.join(f'{k} {v}' for k, v in fit['rows'].items())}): stopping accuracy "
             + ", ".join(f"{ds} {start[ds]:.3f} -> {kept[ds]:.3f}" for ds in kept) + ".", "",
             f"## How the router splits each {split} set (mean weight per member)", "", *share_table(shares), ""]
    if evaluation is not None:
        lines += ["## Test results", "", results_table(evaluation, highlight=name).rstrip("\n"), ""]
    return card_text("\n".join(lines), base=str(shared.get("base")), tags=ROUTED_TAGS, name=name,
                     datasets=eval_datasets(evaluation) if evaluation else list(shares), results=[])


def write_routed_card(folder: str | Path, manifest: Mapping[str, Any], shares: Mapping[str, Mapping[str, float]],
                      split: str, evaluation: Mapping[str, Any] | None = None, name: str | None = None) -> Path:
    """`<folder>/README.md`, atomically."""
    folder = Path(folder)
    return write_card(folder, routed_card(name or folder.name, {**manifest, "folder": str(folder)}, shares, split,
                                          evaluation))
