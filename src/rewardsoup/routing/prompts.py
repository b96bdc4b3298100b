"""Where a scored text's prompt ends: the router reads the text before the reply being judged, nothing after.

A text is what every stage scores (prompt + reply, rendered). Its prompt is everything up to and including the
LAST speaker marker (`PROMPT_END`, a regex configurable per routed soup): hh-rlhf's "\\n\\nAssistant:", the
demo's "\\nBest Friend Steve:", a chat template's rendered role header. A text without a marker (a binary row
that is a reply alone) has the empty prompt. The rule reads the text alone, so `scalar_score`, evaluation and
best-of-N give one text one set of weights; a pair's two texts (prompt + chosen, prompt + rejected) split at the
same place unless a reply itself contains a marker line, in which case the two prompts are cut to their common
part (`shared_prompt`), so a pair's texts still share one gate.
"""

from __future__ import annotations

import re
from typing import Sequence

PROMPT_END = r"\n[^\n:]{1,40}:"  # a line that opens with a speaker's name and a colon ("\n\nAssistant:" too)


def split_prompt(text: str, pattern: str = PROMPT_END) -> str:
    """The text up to and including its last marker ('' without one)."""
    last = None
    for last in re.finditer(pattern, text):
        pass
    return text[: last.end()] if last else ""


def shared_prompt(texts: Sequence[str], pattern: str = PROMPT_END) -> str:
    """One prompt for texts that share it (a pair, best-of-N's candidates): their prompts' common prefix."""
    prompts = [split_prompt(t, pattern) for t in texts]
    common = prompts[0]
    for p in prompts[1:]:
        n = 0
        while n < min(len(common), len(p)) and common[n] == p[n]:
            n += 1
        common = common[:n]
    return common
