"""The text an ``lm`` suite reads, as windows of byte tokens (harness.corpora: id = byte + 1, 0 pads).

The book (``moby-dick``, the only set a suite can train on) is cut into three contiguous parts by
character position: the first ``1 - test_fraction - val_fraction`` of it trains, the next
``val_fraction`` validates (the held-out curve and the training target) and the last
``test_fraction`` tests. Each part is cut into consecutive, non-overlapping windows of ``length + 1``
characters (a window's last ``length`` tokens are the targets of its first ``length``), encoded to
``length + 1`` bytes: a window holding multi-byte characters (the book's curly quotes and dashes)
loses the bytes past ``length + 1``, and a window is never padded. No window of one part holds a
character of another, so no held-out byte is ever trained on.

The other text sets are read as the text task reads them (harness.tasks.text.data.load_set), each text
cut to its first ``length + 1`` bytes and padded: ``sotu`` (State of the Union passages: another register
and era) and ``spam`` (the mail of the spam suite, headers and body: another kind of text altogether).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.errors import ConfigError

BOOK = "moby-dick"  # the set a suite trains on
OTHER = ("sotu", "spam")  # natural shifts and OOD sets
MIN_TOKENS = 2  # a window scores at least one next byte


@dataclass(frozen=True, eq=False)
class Windows:
    """Windows of text and their byte tokens: ``texts`` (N,) str, ``x`` (N, length + 1) int64 tokens
    (harness.corpora.encode; 0 = padding, at the end of a short text only), ``starts`` (N,) int64 the
    character offset of each window in the book (None for a set that is not cut from the book)."""

    name: str
    texts: tuple[str, ...]
    x: np.ndarray
    starts: np.ndarray | None = None

    @property
    def length(self) -> int:
        """The model's input length: one less than a window's tokens."""
        return int(self.x.shape[1]) - 1

    def subset(self, idx: np.ndarray) -> Windows:
        return Windows(self.name, tuple(self.texts[i] for i in idx), self.x[idx],
                       None if self.starts is None else self.starts[idx])


@dataclass(frozen=True, eq=False)
class BookSplit:
    """The training, validation and test windows of the book, with the character range ``[start, end)`` of
    each part in ``bounds`` (part name -> (start, end))."""

    train: Windows
    val: Windows
    test: Windows
    bounds: dict[str, tuple[int, int]]


def part_bounds(n_chars: int, test_fraction: float, val_fraction: float) -> dict[str, tuple[int, int]]:
    """The character ranges ``[start, end)`` of the training, validation and test parts of a text of
    ``n_chars`` characters: contiguous, in that order, covering it once."""
    test_start = n_chars - int(round(n_chars * test_fraction))
    val_start = test_start - int(round(n_chars * val_fraction))
    return {"train": (0, val_start), "val": (val_start, test_start), "test": (test_start, n_chars)}


def cut(text: str, name: str, length: int, offset: int = 0) -> Windows:
    """``text`` as consecutive windows of ``length + 1`` characters (a shorter tail is dropped), each
    encoded to ``length + 1`` bytes; ``offset`` is ``text``'s position in the book (for ``starts``)."""
    from harness.corpora import encode

    size = length + 1
    starts = np.arange(0, len(text) - size + 1, size, dtype=np.int64)
    texts = tuple(text[s:s + size] for s in starts)
    return Windows(name, texts, encode(texts, size), starts + offset)


def draw(n: int, limit: int | None, seed: int) -> np.ndarray:
    """At most ``limit`` of ``n`` indices, drawn with ``seed``, in ascending order (all when ``limit`` is None)."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:limit])


def book_split(length: int, test_fraction: float, val_fraction: float, max_train: int | None = None,
               max_test: int | None = None, seed: int = 0) -> BookSplit:
    """The book's windows (see the module): ``max_train`` and ``max_test`` keep at most that many training
    and test windows, drawn with ``seed`` (the same for every variant and seed of a suite)."""
    from harness.corpora import moby_dick

    book = moby_dick()
    bounds = part_bounds(len(book), test_fraction, val_fraction)
    parts = {name: cut(book[a:b], f"{BOOK}-{name}", length, a) for name, (a, b) in bounds.items()}
    for name, (a, b) in bounds.items():
        if len(parts[name].texts) < 2:
            raise ConfigError(f"the {name} part of {BOOK} ({b - a:,} characters) holds fewer than two windows of "
                              f"{length + 1} characters", hint="give the part a larger fraction or a shorter length")
    train = parts["train"].subset(draw(len(parts["train"].texts), max_train, seed))
    test = parts["test"].subset(draw(len(parts["test"].texts), max_test, seed))
    return BookSplit(train, parts["val"], test, bounds)


def load_other(name: str, length: int, limit: int | None = None, seed: int = 0) -> Windows:
    """The text set ``name`` (one of :data:`OTHER`) as windows: each text's first ``length + 1`` bytes,
    padded; at most ``limit`` texts, drawn with ``seed``; texts shorter than two bytes are left out."""
    from harness.tasks.text.data import load_set

    if name not in OTHER:
        raise ConfigError(f"unknown text set {name!r} for a language model", hint=f"use one of {', '.join(OTHER)}")
    data = load_set(name, length + 1)
    keep = np.flatnonzero((data.x != 0).sum(1) >= MIN_TOKENS)
    keep = keep[draw(len(keep), limit, seed)]
    return Windows(name, tuple(data.texts[i] for i in keep), data.x[keep])
