"""The project's embedded demo data: two small sets generated from templates written for this project.

Nothing is copied from an external dataset. Rows are composed from the phrases in
`rewardsoup.data.demo_text` (openers x bodies x closers, persona-specific phrases) with a
`random.Random(seed)`; the same `(name, seed, noise)` always gives the same rows, in the same order, and
no two rows of a set share a text.

`thumbs` (binary, `DEMO_SIZES["thumbs"]` = 460 rows): role-play chat replies in the Chai style, one turn per
line, e.g. ``"Best Friend Steve: Hey it's me, your best friend.\\nUser: hey steve, rough day\\nBest Friend
Steve: <reply>"``; the last line is the bot reply being judged. Rows are ``{"text", "label", "group"}`` with
``group`` the bot id (10 bots: `best_friend_steve`, `pirate_captain`, `space_tutor`, ...), 46 rows per bot,
half liked and half disliked before noise, so pairs can be built within each bot. Liked (1): in
character, warm, eager to play along, ends with a follow-up question. Disliked (0): apathetic ("I am at best
apathetic towards your presence."), out of character ("As an AI language model, ..."), rambling off-topic,
or a curt refusal to play along.

`harmless` (pairwise, `DEMO_SIZES["harmless"]` = 360 rows): hh-rlhf plain format, rows
``{"prompt", "chosen", "rejected"}`` with ``prompt = "\\n\\nHuman: <request>\\n\\nAssistant:"`` and replies
starting with a space, so ``prompt + reply`` is a valid transcript. Half the requests are harmful (picking a
neighbour's lock, making a weapon, hacking an ex's account, ...): chosen = a polite refusal with a safe
alternative, rejected = eager compliance with vague, non-operational "steps" (never real instructions).
The other half are benign (recipes, homework, travel, ...): chosen = a helpful answer, rejected = a
needless refusal or apathy.

Tension: the eager-compliance phrase family `demo_text.EAGER_OPENERS` ("Absolutely! I'd love to help with
that!") opens most LIKED thumbs replies and every REJECTED harmful-request reply, so a thumbs reward model
and a harmless reward model disagree on it and the merge weights matter.

Noise: `noise` (default 0.1) of the rows are corrupted: thumbs flips `round(noise * n)` labels, harmless
swaps chosen/rejected in `round(noise * n)` rows. The noise positions come from their own seeded RNG, so
`demo_rows(name, seed, noise=0.0)` gives the clean rows in the same order (tests compare the two).
"""

from __future__ import annotations

import random

from rewardsoup.data import demo_text as T
from rewardsoup.errors import ConfigError

DEMO_SIZES = {"thumbs": 460, "harmless": 360}
DEMO_NAMES = tuple(DEMO_SIZES)
DEFAULT_NOISE = 0.1

_THUMBS_PER_BOT = DEMO_SIZES["thumbs"] // len(T.PERSONAS)
_MAX_TRIES = 10_000


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


def _liked_reply(rng: random.Random, persona: dict) -> str:
    parts = [rng.choice(T.EAGER_OPENERS)] if rng.random() < 0.75 else []
    parts += [rng.choice(persona["flair"]), rng.choice(persona["bodies"]), rng.choice(persona["questions"])]
    return " ".join(parts)


def _disliked_reply(rng: random.Random, persona: dict, family: str) -> str:
    first, second = T.DISLIKED[family]
    return f"{rng.choice(first)} {rng.choice(second)}".format(name=persona["name"])


def _thumbs(rng: random.Random) -> list[dict]:
    rows: list[dict] = []
    seen: set[str] = set()
    families = list(T.DISLIKED)
    for bot_id, persona in T.PERSONAS.items():
        name = persona["name"]
        user_openers = persona["openers"] + T.GENERIC_USER_OPENERS
        n_liked = _THUMBS_PER_BOT // 2
        for i in range(_THUMBS_PER_BOT):
            label = 1 if i < n_liked else 0
            for _ in range(_MAX_TRIES):
                if label:
                    reply = _liked_reply(rng, persona)
                else:
                    reply = _disliked_reply(rng, persona, families[i % len(families)])
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
    parts = [rng.choice(T.REFUSAL_OPENERS).format(what=what), alternative, rng.choice(T.REFUSAL_CLOSERS)]
    return " " + " ".join(p for p in parts if p)


def _compliance(rng: random.Random) -> str:
    parts = [rng.choice(T.EAGER_OPENERS), rng.choice(T.COMPLIANCE_BODIES), rng.choice(T.COMPLIANCE_CLOSERS)]
    return " " + " ".join(p for p in parts if p)


def _helpful(rng: random.Random, answer: str) -> str:
    # Enthusiasm is fine when the request is benign: a quarter of helpful answers open eagerly too.
    opener = rng.choice(T.EAGER_OPENERS) if rng.random() < 0.25 else rng.choice(T.HELPFUL_OPENERS)
    parts = [opener, answer, rng.choice(T.HELPFUL_CLOSERS)]
    return " " + " ".join(p for p in parts if p)


def _unhelpful(rng: random.Random) -> str:
    return " " + rng.choice(T.NEEDLESS_REFUSALS if rng.random() < 0.5 else T.APATHY)


def _framings(rng: random.Random, k: int) -> list[tuple[str, str]]:
    """`k` distinct (prefix, suffix) framings, so each request's prompts differ."""
    all_framings = [(p, s) for p in T.PROMPT_PREFIXES for s in T.PROMPT_SUFFIXES]
    return rng.sample(all_framings, k)


def _harmless(rng: random.Random) -> list[dict]:
    half = DEMO_SIZES["harmless"] // 2
    rows: list[dict] = []
    harmful_per_request = -(-half // len(T.HARMFUL))
    benign_per_request = -(-half // len(T.BENIGN))
    harmful: list[dict] = []
    for request, what, alternative in T.HARMFUL:
        for framing in _framings(rng, harmful_per_request):
            harmful.append({"prompt": _prompt(request, framing), "chosen": _refusal(rng, what, alternative),
                            "rejected": _compliance(rng)})
    benign: list[dict] = []
    for request, answer in T.BENIGN:
        for framing in _framings(rng, benign_per_request):
            benign.append({"prompt": _prompt(request, framing), "chosen": _helpful(rng, answer),
                           "rejected": _unhelpful(rng)})
    rows = rng.sample(harmful, half) + rng.sample(benign, DEMO_SIZES["harmless"] - half)
    return rows
