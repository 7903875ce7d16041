"""Text contact sheets: one text under every text corruption at every severity, as plain text.

The text comes from a corpus of the data root (``harness data fetch text``): a SpamAssassin
message (the five groups in order, each sorted by id), a State of the Union passage
(:func:`harness.corpora.sotu_paragraphs`) or a Moby-Dick paragraph (:func:`moby_paragraphs`).
Each corrupted version is made exactly as an evaluation makes one (the registered text-shift
function, a numpy generator seeded from the sheet's seed, the corruption and the severity) and is
shown by its first characters, after a line that says how far it moved: the character edit
distance (Levenshtein: insertions, deletions and substitutions) to the original, absolute and as a
share of the original's length. The sheet is deterministic: the same corpus, index and seed give
the same text, byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from harness.corpora import edit_distance
from harness.errors import ConfigError, printable, unknown_name
from harness.specs import SEVERITIES

CORPORA = ("spam", "sotu", "moby")  # what --corpus names
EDIT_WINDOW = 8000  # longer texts: edits counted in this many leading characters (the distance costs length^2)
MIN_PARAGRAPH = 200  # characters of a Moby-Dick paragraph, as sotu_paragraphs' default passages
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True)
class SheetRow:
    """One corrupted version: ``text`` is the whole corrupted text; ``edits`` its edit distance to
    the original (in the original's first ``EDIT_WINDOW`` characters when it is longer)."""

    shift: str
    severity: int
    text: str
    edits: int


def moby_paragraphs(book: str, min_chars: int = MIN_PARAGRAPH) -> tuple[str, ...]:
    """The paragraphs of Moby-Dick (text between empty lines) of at least ``min_chars`` characters,
    in order (chapter titles and short lines are left out)."""
    return tuple(p for p in (part.strip("\n") for part in _BLANK_LINE.split(book)) if len(p) >= min_chars)


def corpus_text(corpus: str, index: int, root: Path | None = None) -> tuple[str, str]:
    """Text number ``index`` of ``corpus`` (one of :data:`CORPORA`) as ``(label, text)``; a
    ConfigError names the valid range when there is no such text."""
    from harness import corpora

    if corpus not in CORPORA:
        raise unknown_name("text corpus", corpus, list(CORPORA))
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ConfigError(f"text index {index!r} is not a non-negative integer", hint="use --index 0 or more")
    if corpus == "spam":
        seen = 0
        for group in corpora.SPAM_GROUPS:  # read group by group: most indices need the first group only
            messages = corpora.spam_messages(group, root)
            if index < seen + len(messages):
                m = messages[index - seen]
                return f"SpamAssassin {group}/{m.id} (spam text {index})", m.text
            seen += len(messages)
        return _missing(corpus, index, seen)
    texts = corpora.sotu_paragraphs(root) if corpus == "sotu" else moby_paragraphs(corpora.moby_dick(root))
    if index >= len(texts):
        return _missing(corpus, index, len(texts))
    what = "State of the Union passage" if corpus == "sotu" else "Moby-Dick paragraph"
    return f"{what} ({corpus} text {index} of {len(texts):,})", texts[index]


def _missing(corpus: str, index: int, count: int) -> NoReturn:
    raise ConfigError(f"{corpus} has no text {index}: it has {count:,}",
                      hint=f"use --index from 0 to {count - 1}" if count else "fetch the corpus again")


def sheet_rows(text: str, shifts: Sequence[str], seed: int = 0) -> tuple[SheetRow, ...]:
    """``text`` under every corruption of ``shifts`` at severities 1-5, each made with its own
    generator (``derive_seed(seed, "text-sheet", name, severity)``)."""
    import numpy as np

    from harness.registry import text_shifts
    from harness.seeding import derive_seed

    rows = []
    for name in shifts:
        fn = text_shifts.get(name)
        for s in SEVERITIES:
            out = fn(text, s, np.random.default_rng(derive_seed(seed, "text-sheet", name, s)))
            rows.append(SheetRow(name, s, out, _edits(text, out)))
    return tuple(rows)


def _edits(original: str, corrupted: str) -> int:
    if len(original) <= EDIT_WINDOW:
        return edit_distance(original, corrupted)
    # the original's first EDIT_WINDOW characters against the closest start of the corrupted text
    # (which may have grown: a corruption inserts at most a few characters in ten)
    return edit_distance(original[:EDIT_WINDOW], corrupted[:2 * EDIT_WINDOW], prefix=True)


def render_sheet(label: str, text: str, rows: Sequence[SheetRow], chars: int = 300, seed: int = 0) -> str:
    """The sheet as plain text: a title, the original's first ``chars`` characters, then one line
    per corruption and severity: name, severity, edits, share of the original, length change and
    the corrupted text's first ``chars`` characters. Line breaks and control characters are spelled
    out (``\\n``), so each version is one line."""
    window = "" if len(text) <= EDIT_WINDOW else f" (counted in the first {EDIT_WINDOW:,} characters)"
    width = max([len("original"), *(len(r.shift) for r in rows)])
    stats_width = len(_stats(0, 1, 0))
    lines = [f"{printable(label)}: {len(text):,} characters; seed {seed}",
             f"first {chars} characters of each version, line breaks shown as \\n; edits: character edit "
             f"distance to the original{window}",
             "",
             f"{'original':<{width}}    {'':{stats_width}}  {printable(text[:chars])}"]
    for r in rows:
        stats = _stats(r.edits, len(text), len(r.text) - len(text))
        lines.append(f"{r.shift:<{width}} {r.severity}  {stats}  {printable(r.text[:chars])}")
    return "\n".join(lines) + "\n"


def _stats(edits: int, length: int, grown: int) -> str:
    """'   123 edits   4.5%    +67': the edits, their share of the original's length, the length change."""
    return f"{edits:>6,} edits {edits / length if length else 0.0:6.1%} {grown:>+6,}"


def text_sheet(corpus: str = "spam", index: int = 0, shifts: Sequence[str] | None = None, seed: int = 0,
               chars: int = 300, root: Path | None = None) -> str:
    """The text contact sheet of ``corpus``'s text number ``index`` under every corruption in
    ``shifts`` (default: every registered text shift) at severities 1-5 (see :func:`render_sheet`)."""
    from harness.registry import text_shifts

    names = list(shifts) if shifts else text_shifts.names()
    for name in names:
        text_shifts.entry(name)  # an unknown name fails here, with "did you mean"
    if isinstance(chars, bool) or not isinstance(chars, int) or chars < 1:
        raise ConfigError(f"--chars {chars!r} is not a positive integer", hint="e.g. --chars 300")
    label, text = corpus_text(corpus, index, root)
    return render_sheet(label, text, sheet_rows(text, names, seed), chars, seed)
