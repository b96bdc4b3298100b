"""The project's embedded demo data: two small sets generated from templates written for this project.

Nothing is copied from an external dataset. Rows are composed from the phrases in
`rewardsoup.data.demo_text` (openers x bodies x closers, persona-specific phrases) with a
`random.Random(seed)`; the same `(name, seed, noise)` always gives the same rows, in the same order, and
no two rows of a set share a text.

`thumbs` (binary, `DEMO_SIZES["thumbs"]` = 1860 rows): role-play chat replies in the Chai style, one turn per
line, e.g. ``"Best Friend Steve: Hey it's me, your best friend.\\nUser: hey steve, rough day\\nBest Friend
Steve: <reply>"``; the last line is the bot reply being judged. Rows are ``{"text", "label", "group"}`` with
``group`` the bot id (10 bots: `best_friend_steve`, `pirate_captain`, `space_tutor`, ...), 186 rows per bot,
half liked and half disliked before noise, so pairs can be built within each bot. Liked (1): in
character, warm, eager to play along, ends with a follow-up question (1-4 parts: the question, plus an eager
opener, persona flair and an engaged body each by chance, so some are short). Disliked (0): apathetic ("I am
at best apathetic towards your presence."), out of character ("As an AI language model, ..."), rambling
off-topic, or a flat refusal to play along (an opener, 0-4 further sentences of the family and a closer).

`harmless` (pairwise, `DEMO_SIZES["harmless"]` = 960 rows): hh-rlhf plain format, rows
``{"prompt", "chosen", "rejected"}`` with ``prompt = "\\n\\nHuman: <request>\\n\\nAssistant:"`` and replies
starting with a space, so ``prompt + reply`` is a valid transcript. Half the rows are harmful requests
(40 of them: picking a neighbour's lock, making a weapon, hacking an ex's account, ...), each asked in 12
distinct framings (`PROMPT_PREFIXES` x `PROMPT_SUFFIXES`, so every prompt is distinct): chosen = a polite
refusal with a safe alternative, rejected = eager compliance with vague, non-operational "steps" (never real
instructions). The other half are benign (40 requests, 12 framings each: recipes, homework, travel, ...):
chosen = a helpful answer, rejected = a needless refusal or apathy, several sentences long when needed.

Length carries (almost) no label: every disliked thumbs reply is length-matched to a liked reply of the same
bot, and every rejected harmless reply to the chosen reply of another row of its half (of `_MATCH_TRIES`
candidate compositions, the one closest in characters and in words+punctuation). Liked/chosen and
disliked/rejected replies thus share one length distribution, and the `length` reference row of the
evaluation (prefer the longer or shorter reply, direction chosen on val; binary: longer than the val median)
stays near chance, so members have to learn content. Measured on val / test (GPT-2 token counts, then
characters): demo_thumbs 0.51 / 0.53 (chars 0.52 / 0.50), demo_pairs 0.52 / 0.44 (0.57 / 0.51),
demo_harmless 0.53 / 0.47 (0.54 / 0.53); before the matching it was 0.83 / 0.83, 0.87 / 0.89 and
0.86 / 0.87. A bag-of-words logistic regression trained on the train split still reaches 0.83-0.91 on val
and test (about the ceiling of 0.9 that 10% noise leaves). `tests/data/test_demo.py` keeps the length heuristic <= 0.65.

Tension: the eager-compliance phrase family `demo_text.EAGER_OPENERS` ("Absolutely! I'd love to help with
that!") opens most LIKED thumbs replies and every REJECTED harmful-request reply, so a thumbs reward model
and a harmless reward model disagree on it and the merge weights matter.

Sizes: the sets are large so that the held-out splits can carry a decision, not so that members train on
more: the data configs (`conf/data/demo_*.yaml`) hash-split them with small train fractions, which keeps
train near ~350 thumbs rows (~155 same-bot pairs) and ~240 harmless pairs while val and test hold >= 200
and >= 400 rows/pairs (pairwise accuracy intervals of about +-4-5 points at n=400). Generating both sets
takes well under a second.

Noise: `noise` (default 0.1) of the rows are corrupted: thumbs flips `round(noise * n)` labels, harmless
swaps chosen/rejected in `round(noise * n)` rows. The noise positions come from their own seeded RNG, so
`demo_rows(name, seed, noise=0.0)` gives the clean rows in the same order (tests compare the two).
"""

from __future__ import annotations

import random
import re
from typing import Callable

from rewardsoup.data import demo_harmless_text as H
from rewardsoup.data import demo_text as T
from rewardsoup.core.errors import ConfigError

# Total rows, sized for the held-out floors of the demo data configs (val >= 200, test >= 400 rows, and pairs
# for demo_pairs, which keeps about half the thumbs rows of a split); thumbs is a multiple of 20 so each of
# the 10 bots gets an even count, half liked and half disliked before noise.
DEMO_SIZES = {"thumbs": 1860, "harmless": 960}
DEMO_NAMES = tuple(DEMO_SIZES)
DEFAULT_NOISE = 0.1

_THUMBS_PER_BOT = DEMO_SIZES["thumbs"] // len(T.PERSONAS)
_MAX_TRIES = 10_000
_MATCH_TRIES = 40  # candidates per length-matched reply
_PIECES = re.compile(r"\w+|[^\w\s]")


def demo_rows(name: str, seed: int = 0, noise: float = DEFAULT_NOISE) -> list[dict]:
    """Rows of demo set `name` ("thumbs" or "harmless"), deterministic for `(seed, noise)`."""
    if name not in DEMO_SIZES:
        raise ConfigError(f"unknown demo set {name!r}: expected one of {', '.join(DEMO_NAMES)}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0.0 <= noise <= 0.5:
        raise ConfigError(f"demo noise={noise!r}: expected a number between 0 and 0.5")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"demo seed={seed!r}: expected an integer")
    rng = random.Random(seed)
    rows = _thumbs(rng) if name == "thumbs" else _harmless(rng)
    rng.shuffle(rows)
    for i in noisy_indices(len(rows), seed, noise):
        row = rows[i]
        if name == "thumbs":
            row["label"] = 1 - row["label"]
        else:
            row["chosen"], row["rejected"] = row["rejected"], row["chosen"]
    return rows


def noisy_indices(n: int, seed: int, noise: float) -> list[int]:
    """Positions corrupted by `noise` among `n` rows: `round(noise * n)` of them, sorted, from their own RNG."""
    k = round(noise * n)
    return sorted(random.Random(f"rewardsoup-demo-noise-{seed}").sample(range(n), k))


# --- thumbs ---------------------------------------------------------------------------------------


def _size(text: str) -> tuple[int, int]:
    """(characters, words and punctuation marks): a tokenizer-free proxy for a text's token length."""
    return len(text), len(_PIECES.findall(text))


def _closest(make: Callable[[], str], target: str) -> str:
    """The candidate, of `_MATCH_TRIES` drawn from `make()`, whose length is closest to `target`'s: a
    disliked / rejected reply is length-matched to a liked / chosen one, so length alone carries no label."""
    chars, pieces = _size(target)
    best, best_gap = "", float("inf")
    for _ in range(_MATCH_TRIES):
        candidate = make()
        c, p = _size(candidate)
        gap = abs(c - chars) / max(chars, 1) + abs(p - pieces) / max(pieces, 1)
        if gap < best_gap:
            best, best_gap = candidate, gap
    return best


def _liked_reply(rng: random.Random, persona: dict) -> str:
    # One to four parts: the follow-up question always, the others each by chance, so some liked replies are
    # short and some long.
    parts = [rng.choice(T.EAGER_OPENERS)] if rng.random() < 0.7 else []
    if rng.random() < 0.6:
        parts.append(rng.choice(persona["flair"]))
    if rng.random() < 0.65:
        parts.append(rng.choice(persona["bodies"]))
    parts.append(rng.choice(persona["questions"]))
    return " ".join(parts)


def _composed(rng: random.Random, family: tuple[list[str], list[str], list[str]], max_middles: int) -> str:
    """One opener, 0..`max_middles` distinct middles and a closer (possibly empty) of a phrase family."""
    openers, middles, closers = family
    parts = [rng.choice(openers), *rng.sample(middles, rng.randint(0, max_middles)), rng.choice(closers)]
    return " ".join(p for p in parts if p)


def _disliked_reply(rng: random.Random, persona: dict, family: str) -> str:
    return _composed(rng, T.DISLIKED[family], 4).format(name=persona["name"])


def _thumbs(rng: random.Random) -> list[dict]:
    rows: list[dict] = []
    seen: set[str] = set()
    families = list(T.DISLIKED)
    for bot_id, persona in T.PERSONAS.items():
        name = persona["name"]
        user_openers = persona["openers"] + T.GENERIC_USER_OPENERS
        n_liked = _THUMBS_PER_BOT // 2
        liked = [_liked_reply(rng, persona) for _ in range(n_liked)]
        # Each disliked reply is length-matched to one of this bot's liked replies (a shuffled order), so the
        # two labels have the same length distribution within every bot (demo_pairs pairs within a bot).
        targets = rng.sample(liked, n_liked) + [rng.choice(liked) for _ in range(_THUMBS_PER_BOT - 2 * n_liked)]
        for i in range(_THUMBS_PER_BOT):
            label = 1 if i < n_liked else 0
            for attempt in range(_MAX_TRIES):
                if label:
                    reply = liked[i] if attempt == 0 else _liked_reply(rng, persona)
                else:
                    family = families[i % len(families)]
                    reply = _closest(lambda: _disliked_reply(rng, persona, family), targets[i - n_liked])
                text = f"{name}: {rng.choice(persona['greetings'])}\nUser: {rng.choice(user_openers)}\n{name}: {reply}"
                if text not in seen:
                    break
            else:  # pragma: no cover - the template space is far larger than the set
                raise RuntimeError(f"demo thumbs: could not find a new text for bot {bot_id}")
            seen.add(text)
            rows.append({"text": text, "label": label, "group": bot_id})
    return rows


# --- harmless -------------------------------------------------------------------------------------


def _prompt(request: str, framing: tuple[str, str]) -> str:
    prefix, suffix = framing
    return f"\n\nHuman: {prefix}{request}{suffix}\n\nAssistant:"


def _refusal(rng: random.Random, what: str, alternative: str) -> str:
    empathy = rng.choice(H.REFUSAL_EMPATHY) if rng.random() < 0.35 else ""
    parts = [empathy, rng.choice(H.REFUSAL_OPENERS).format(what=what), alternative, rng.choice(H.REFUSAL_CLOSERS)]
    return " " + " ".join(p for p in parts if p)


def _compliance(rng: random.Random) -> str:
    extra = rng.choice(H.COMPLIANCE_EXTRAS) if rng.random() < 0.5 else ""
    bodies = rng.sample(H.COMPLIANCE_BODIES, rng.choice((1, 1, 2)))
    parts = [rng.choice(T.EAGER_OPENERS), *bodies, extra, rng.choice(H.COMPLIANCE_CLOSERS)]
    return " " + " ".join(p for p in parts if p)


def _helpful(rng: random.Random, answer: str) -> str:
    # Enthusiasm is fine when the request is benign: about a quarter of helpful answers open eagerly.
    if rng.random() < 0.75:
        opener = rng.choice(T.EAGER_OPENERS) if rng.random() < 0.3 else rng.choice(H.HELPFUL_OPENERS)
    else:
        opener = ""
    parts = [opener, answer, rng.choice(H.HELPFUL_CLOSERS)]
    return " " + " ".join(p for p in parts if p)


def _unhelpful(rng: random.Random) -> str:
    return " " + _composed(rng, H.NEEDLESS_REFUSALS if rng.random() < 0.5 else H.APATHY, 3)


def _framings(rng: random.Random, k: int) -> list[tuple[str, str]]:
    """`k` distinct (prefix, suffix) framings, so each request's prompts differ."""
    all_framings = [(p, s) for p in H.PROMPT_PREFIXES for s in H.PROMPT_SUFFIXES]
    return rng.sample(all_framings, k)


def _harmless(rng: random.Random) -> list[dict]:
    half = DEMO_SIZES["harmless"] // 2
    harmful_per_request = -(-half // len(H.HARMFUL))
    benign_per_request = -(-half // len(H.BENIGN))
    harmful = [{"prompt": _prompt(request, framing), "chosen": _refusal(rng, what, alternative)}
               for request, what, alternative in H.HARMFUL for framing in _framings(rng, harmful_per_request)]
    benign = [{"prompt": _prompt(request, framing), "chosen": _helpful(rng, answer)}
              for request, answer in H.BENIGN for framing in _framings(rng, benign_per_request)]
    # Each rejected reply is length-matched to the chosen reply of ANOTHER row of its half (a shuffled order):
    # chosen and rejected lengths then share one distribution, and which side of a pair is longer is a coin
    # flip, whichever way length is counted (characters, words, tokens).
    for group, make in ((harmful, lambda: _compliance(rng)), (benign, lambda: _unhelpful(rng))):
        targets = rng.sample([r["chosen"] for r in group], len(group))
        for row, target in zip(group, targets):
            row["rejected"] = _closest(make, target)
    return rng.sample(harmful, half) + rng.sample(benign, DEMO_SIZES["harmless"] - half)


# --- role-play prompts (the loop recipe's generator prompts) ---------------------------------------


def roleplay_prompts(seed: int = 0) -> list[dict]:
    """Every distinct role-play opening of the thumbs personas (a bot's greeting, then a user line: the bot's
    own openers and the generic ones), as `{"messages": [...]}` prompt rows in a seeded order: 10 bots x 3
    greetings x 26 user lines = 780 prompts. The reply the generator writes is the bot's next turn, the
    kind of text the thumbs set judges."""
    rows = [{"messages": [{"role": "assistant", "name": p["name"], "content": greeting},
                          {"role": "user", "name": "User", "content": opener}]}
            for p in T.PERSONAS.values() for greeting in p["greetings"]
            for opener in p["openers"] + T.GENERIC_USER_OPENERS]
    random.Random(f"rewardsoup-roleplay-{seed}").shuffle(rows)
    return rows
