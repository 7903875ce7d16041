"""Text corruptions: typos, case, whitespace and e-mail header noise, at severities 1-5.

Contract of a text-shift plugin (registry kind ``text-shifts``, entry-point group
``harness.text_shifts``): ``shift(text: str, severity: int, rng: numpy.random.Generator) -> str``.
``severity`` is an integer from 1 to 5 (higher = stronger; anything else raises
:class:`SeverityError`, a ``ConfigError`` that is also a ``ValueError``); the output is the same
for the same generator state; any ``str`` is accepted (empty, whitespace only, non-ASCII, lone
surrogates) and none raises. The text's characters are Unicode code points; the models read the
text's UTF-8 bytes afterwards (``harness.corpora.encode``).

What each corruption touches. A *letter* is an ASCII letter (A-Z, a-z); a *word* is a maximal run
of letters (so ``café`` holds the word ``caf``, and digits, punctuation, non-ASCII characters and
whitespace are never touched by a typo). Every typo decision is an independent draw per
eligible letter with the severity's rate from :data:`TYPO_RATE`:

* ``typo-insert``: after each letter, with probability ``rate``, a random letter (uniform over the
  26, in the case of the letter before it); the new letter extends the same word.
* ``typo-delete``: each letter but the first of its word, with probability ``rate``, is deleted;
  a word never disappears, so words never join.
* ``typo-substitute``: each letter, with probability ``rate``, becomes one of its neighbours on a
  QWERTY keyboard (uniform over the letter keys that touch it, :data:`QWERTY_ROWS`; case kept),
  as NL-Augmenter's butter-fingers perturbation does, rather than a uniform letter: a keyboard
  slip is the common typo.
* ``typo-swap``: swaps two adjacent, different letters of one word; the number of swaps is
  binomial with ``rate`` per letter of the words of two or more letters, the pairs disjoint and
  chosen at random (each swap moves two letters, so the share of letters moved is ``2 * rate``).
* ``case-flip``: each letter, with probability :data:`CASE_FLIP_RATE`, changes case.
* ``whitespace``: each whitespace character (``string.whitespace``) is removed with probability
  ``remove`` (joining words or lines) and after each other character one whitespace character is
  inserted with probability ``add`` (a space, a newline or a tab, :data:`INSERTED_WHITESPACE`),
  rates from :data:`WHITESPACE_RATE`.
* ``header-noise``: for an e-mail (a header block before the first empty line: an optional mbox
  ``From`` line, then only ``Name: value`` fields and their indented continuation lines) the
  headers alone change: fields move, extra plausible fields appear, field names change case or
  the whitespace around their colon (RFC 5322 reads names case-insensitively). The body is
  untouched. A text without such a header block is returned unchanged.

Where the levels come from. They are anchored at published settings and grow roughly
geometrically between them: severity 3 of ``typo-*`` (0.05 per letter) is the default rate of
NL-Augmenter's butter-fingers perturbation (Dhole et al. 2021, ``prob=0.05``), and severity 5 (0.2
per letter) is about one typo per word, the density of the ``Key`` and ``Swap`` noise of Belinkov &
Bisk (2018), "Synthetic and natural noise both break neural machine translation", which put one
typo in every word (``Key`` replaces one letter by a keyboard neighbour, ``Swap`` exchanges two
adjacent inner letters of each word of four or more letters; words of ASCII letters in Moby-Dick
average 4.4 letters). Severity 3 of ``case-flip`` is NL-Augmenter's ``change_char_case`` rate
(0.1) and severity 3 of ``whitespace`` its ``whitespace_perturbation`` defaults (remove 0.1, add
0.05). ``header-noise`` has levels of its own.

Severity orders strength: the expected share of characters changed grows at every step
(tests/test_textshifts.py checks it on real messages and checks the changed share against the
declared rates on long texts).
"""

from __future__ import annotations

import numbers
import re
import string
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

from harness.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

T = TypeVar("T")

# per-severity parameters (index severity - 1)
TYPO_RATE = (0.01, 0.02, 0.05, 0.1, 0.2)  # typos per eligible letter (insert, delete, substitute, swap)
CASE_FLIP_RATE = (0.02, 0.05, 0.1, 0.2, 0.35)  # share of letters whose case flips
WHITESPACE_RATE = ((0.02, 0.01), (0.05, 0.02), (0.1, 0.05), (0.2, 0.1), (0.3, 0.15))  # (remove, add)
# header-noise: (share of fields moved, share of field names restyled, extra fields added)
HEADER_NOISE = ((0.05, 0.05, 1), (0.1, 0.1, 2), (0.2, 0.2, 3), (0.3, 0.3, 4), (0.5, 0.5, 6))

QWERTY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")  # each row sits half a key right of the one above
INSERTED_WHITESPACE = ((" ", 0.8), ("\n", 0.1), ("\t", 0.1))  # what ``whitespace`` inserts, and how often
_WHITESPACE_CODES = tuple(ord(c) for c in string.whitespace)

# Fields that mail of the corpus's era carries, none of them saying anything about spam (no
# X-Spam-*): (name, values). A message that already has a field of that name gets no second one.
EXTRA_HEADERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("X-Mailer", ("Microsoft Outlook Express 6.00.2600.0000", "Ximian Evolution 1.0.8",
                  "Mozilla 4.79 [en] (X11; U; Linux 2.4.18 i686)", "QUALCOMM Windows Eudora Version 5.1",
                  "Apple Mail (2.482)")),
    ("X-Priority", ("3", "3 (Normal)")),
    ("X-MSMail-Priority", ("Normal",)),
    ("Importance", ("Normal",)),
    ("X-MimeOLE", ("Produced By Microsoft MimeOLE V6.00.2600.0000",)),
    ("X-Accept-Language", ("en-us, en", "en")),
    ("User-Agent", ("Mutt/1.4i", "Gnus/5.0808 (Gnus v5.8.8) Emacs/21.2")),
    ("X-Originating-IP", ("[{ip}]",)),
)

# a header field's name (printable ASCII but the colon), optional blanks (RFC 5322's obsolete syntax), its colon
_FIELD = re.compile(r"[!-9;-~]+[ \t]*:")
_BODY_BREAK = re.compile(r"\n\r?\n")  # the end of the header block: the first empty line


class SeverityError(ConfigError, ValueError):
    """A severity outside 1-5 (a ``ValueError`` too, as Python code that validates numbers expects)."""


def _level(params: Sequence[T], severity: int) -> T:
    if isinstance(severity, bool) or not isinstance(severity, numbers.Integral) or not 1 <= severity <= len(params):
        raise SeverityError(f"severity {severity!r} is outside 1-{len(params)}", hint="use an integer from 1 to 5")
    return params[int(severity) - 1]


# --- code points as a numpy array -------------------------------------------------------------


def _codes(text: str) -> np.ndarray:
    """The text's code points, (len(text),) uint32; 'surrogatepass' keeps lone surrogates."""
    import numpy as np

    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").copy()


def _text(codes: np.ndarray) -> str:
    import numpy as np

    return np.ascontiguousarray(codes, dtype="<u4").tobytes().decode("utf-32-le", "surrogatepass")


def _letters(c: np.ndarray) -> np.ndarray:
    """(n,) bool: ASCII letters."""
    low = c | 0x20  # a letter's lowercase; setting bit 5 lands in a-z for the 52 letters only
    return (low >= ord("a")) & (low <= ord("z"))


def _keyboard() -> tuple[np.ndarray, np.ndarray]:
    """QWERTY neighbours of each letter: (26, 8) uint32 codes of lowercase letters (padded) and (26,)
    counts. Key j of a row touches keys j +- 1 of its row, keys j and j + 1 of the row above and
    j - 1 and j of the row below (each row is shifted half a key to the right)."""
    import numpy as np

    table = np.zeros((26, 8), dtype=np.uint32)
    counts = np.zeros(26, dtype=np.int64)
    for r, row in enumerate(QWERTY_ROWS):
        for j, key in enumerate(row):
            near = [(r, j - 1), (r, j + 1), (r - 1, j), (r - 1, j + 1), (r + 1, j - 1), (r + 1, j)]
            keys = [QWERTY_ROWS[rr][jj] for rr, jj in near if 0 <= rr < len(QWERTY_ROWS)
                    and 0 <= jj < len(QWERTY_ROWS[rr])]
            i = ord(key) - ord("a")
            counts[i] = len(keys)
            table[i, :len(keys)] = [ord(k) for k in keys]
    return table, counts


def keyboard_neighbours(letter: str) -> str:
    """The lowercase letters next to ``letter`` (either case) on a QWERTY keyboard, e.g. 'g' -> 'fhtyvb'."""
    table, counts = _keyboard()
    i = ord(letter.lower()) - ord("a")
    return "".join(chr(c) for c in table[i, :counts[i]])


# --- typos ------------------------------------------------------------------------------------


def typo_insert(text: str, severity: int, rng: np.random.Generator) -> str:
    """Typo insertion: a random letter after 1 / 2 / 5 / 10 / 20 % of the letters (``TYPO_RATE``).

    Each letter draws independently; the new letter (uniform over the 26) takes the case of the
    letter before it, so it extends that word; nothing else changes."""
    import numpy as np

    rate = _level(TYPO_RATE, severity)
    c = _codes(text)
    where = np.flatnonzero(_letters(c) & (rng.random(c.size) < rate))
    new = rng.integers(0, 26, where.size).astype(np.uint32) + ord("a")
    new -= np.where(c[where] < ord("a"), 0x20, 0).astype(np.uint32)  # uppercase after an uppercase letter
    return _text(np.insert(c, where + 1, new))


def typo_delete(text: str, severity: int, rng: np.random.Generator) -> str:
    """Typo deletion: 1 / 2 / 5 / 10 / 20 % of the letters after a word's first go (``TYPO_RATE``).

    Each letter that follows a letter draws independently; a word's first letter always stays, so
    no word disappears and no two words join."""
    import numpy as np

    rate = _level(TYPO_RATE, severity)
    c = _codes(text)
    letters = _letters(c)
    inner = letters & np.concatenate([[False], letters[:-1]])
    return _text(c[~(inner & (rng.random(c.size) < rate))])


def typo_substitute(text: str, severity: int, rng: np.random.Generator) -> str:
    """Keyboard typos: 1 / 2 / 5 / 10 / 20 % of the letters become a QWERTY neighbour (``TYPO_RATE``).

    Each letter draws independently; the new letter is uniform over the letter keys that touch it
    (:func:`keyboard_neighbours`) in the old letter's case; the length never changes."""
    import numpy as np

    rate = _level(TYPO_RATE, severity)
    c = _codes(text)
    where = np.flatnonzero(_letters(c) & (rng.random(c.size) < rate))
    table, counts = _keyboard()
    key = (c[where] | 0x20) - ord("a")
    pick = (rng.random(where.size) * counts[key]).astype(np.int64)
    c[where] = table[key, pick] - np.where(c[where] < ord("a"), 0x20, 0).astype(np.uint32)
    return _text(c)


def typo_swap(text: str, severity: int, rng: np.random.Generator) -> str:
    """Letter swaps: 1 / 2 / 5 / 10 / 20 swaps per 100 letters of adjacent letters in a word (``TYPO_RATE``).

    Binomial(n, rate) swaps, n the number of letters in words of two or more letters, each of two
    adjacent different letters of one word, on disjoint pairs taken in random order (fewer when a
    text has no room for more)."""
    import numpy as np

    rate = _level(TYPO_RATE, severity)
    c = _codes(text)
    letters = _letters(c)
    # pair (i, i + 1): both letters, so in one word; equal letters would swap to no change
    pairs = np.flatnonzero(letters[:-1] & letters[1:] & (c[:-1] != c[1:])) if c.size > 1 else np.zeros(0, int)
    in_words = int(np.count_nonzero(letters & (np.concatenate([[False], letters[:-1]])
                                               | np.concatenate([letters[1:], [False]]))))
    want = int(rng.binomial(in_words, rate))
    used = np.zeros(c.size + 1, dtype=bool)
    done = 0
    for i in rng.permutation(pairs):
        if done == want:
            break
        if not (used[i] or used[i + 1]):
            used[i] = used[i + 1] = True
            c[i], c[i + 1] = c[i + 1], c[i]
            done += 1
    return _text(c)


# --- case and whitespace ----------------------------------------------------------------------


def case_flip(text: str, severity: int, rng: np.random.Generator) -> str:
    """Case flips: 2 / 5 / 10 / 20 / 35 % of the letters change case (``CASE_FLIP_RATE``), independently."""
    rate = _level(CASE_FLIP_RATE, severity)
    c = _codes(text)
    c[_letters(c) & (rng.random(c.size) < rate)] ^= 0x20
    return _text(c)


def whitespace(text: str, severity: int, rng: np.random.Generator) -> str:
    """Whitespace noise: 2 / 5 / 10 / 20 / 30 % of whitespace removed, 1 / 2 / 5 / 10 / 15 % inserted.

    Each whitespace character is removed with probability ``remove`` and after each other character
    a whitespace character (:data:`INSERTED_WHITESPACE`) is inserted with probability ``add``,
    ``(remove, add) = WHITESPACE_RATE[severity - 1]``, as NL-Augmenter's whitespace perturbation
    does (which inserts spaces only)."""
    import numpy as np

    remove, add = _level(WHITESPACE_RATE, severity)
    c = _codes(text)
    space = np.isin(c, _WHITESPACE_CODES)
    u = rng.random(c.size)
    after = np.flatnonzero(~space & (u < add))
    chars = np.array([ord(ch) for ch, _ in INSERTED_WHITESPACE], dtype=np.uint32)
    new = chars[rng.choice(len(chars), size=after.size, p=[p for _, p in INSERTED_WHITESPACE])]
    kept = ~(space & (u < remove))
    # insert into the full array first (positions refer to it), then drop the removed characters
    out = np.insert(c, after + 1, new)
    keep = np.insert(kept, after + 1, np.ones(after.size, dtype=bool))
    return _text(out[keep])


# --- e-mail headers ---------------------------------------------------------------------------


def split_headers(text: str) -> tuple[str, list[list[str]], str] | None:
    """An e-mail's header block as ``(envelope, fields, rest)``: ``envelope`` is the mbox ``From ``
    line ('' when absent), ``fields`` each field's lines (its ``Name: value`` line, then its
    continuation lines; line breaks removed, a trailing CR kept), ``rest`` the text from the line
    break that ends the last header line on (the empty line and the body). None when ``text`` has
    no empty line or a line before it is neither a field nor a continuation."""
    end = _BODY_BREAK.search(text)
    if end is None:
        return None
    lines = text[:end.start()].split("\n")
    envelope = lines.pop(0) if lines[0].startswith("From ") else ""
    fields: list[list[str]] = []
    for line in lines:
        if _FIELD.match(line):
            fields.append([line])
        elif line[:1] in (" ", "\t") and fields:
            fields[-1].append(line)
        else:
            return None
    if not fields:
        return None
    return envelope, fields, text[end.start():]


def _restyle(line: str, rng: np.random.Generator) -> str:
    """``line`` (a ``Name: value`` line) with its name's case or the whitespace at its colon changed."""
    name, _, value = line.partition(":")
    variants = [name.upper() + ":" + value, name.lower() + ":" + value,
                name + " :" + value,  # RFC 822's obsolete syntax allowed space before the colon
                name + ":" + (value[1:] if value.startswith(" ") else "  " + value)]
    changed = [v for v in variants if v != line]
    return changed[int(rng.integers(len(changed)))]


def header_noise(text: str, severity: int, rng: np.random.Generator) -> str:
    """E-mail header noise: fields moved, names restyled, 1 / 2 / 3 / 4 / 6 extra fields; body untouched.

    In the header block (see :func:`split_headers`) each field moves to a random place with
    probability ``move`` and has its name's case or the whitespace at its colon changed with
    probability ``restyle``, and ``extra`` plausible fields (:data:`EXTRA_HEADERS`) are added,
    ``(move, restyle, extra) = HEADER_NOISE[severity - 1]``. The mbox ``From`` line stays first and
    the body is untouched; a text without headers comes back unchanged."""
    move, restyle, extra = _level(HEADER_NOISE, severity)
    parts = split_headers(text)
    if parts is None:
        return text
    envelope, fields, rest = parts
    cr = "\r" if fields[0][0].endswith("\r") else ""  # new lines follow the block's line endings
    for field in fields:
        if rng.random() < restyle:
            field[0] = _restyle(field[0], rng)
    moving = rng.random(len(fields)) < move
    staying = [f for f, m in zip(fields, moving, strict=True) if not m]
    for field in (f for f, m in zip(fields, moving, strict=True) if m):
        staying.insert(int(rng.integers(len(staying) + 1)), field)
    present = {f[0].partition(":")[0].strip().lower() for f in fields}
    candidates = [h for h in EXTRA_HEADERS if h[0].lower() not in present]
    for k in rng.permutation(len(candidates))[:extra]:
        name, values = candidates[int(k)]
        value = values[int(rng.integers(len(values)))]
        if "{ip}" in value:
            value = value.format(ip=".".join(str(int(b)) for b in rng.integers(1, 255, 4)))
        staying.insert(int(rng.integers(len(staying) + 1)), [f"{name}: {value}{cr}"])
    lines = ([envelope] if envelope else []) + [line for f in staying for line in f]
    return "\n".join(lines) + rest
