"""Tests for harness.textshifts (the text corruptions) and harness.reports.text_sheet (their contact sheet).

A contract test runs over every registered text shift: deterministic for a generator state, severity
outside 1-5 refused, no input string makes one raise, and severity orders strength (edit distance on a
fixed e-mail here, on 50 real SpamAssassin messages in the slow tier). Each corruption is then checked
against its docstring: what it touches, and the changed share against the declared rate on a long text.
"""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from harness import textshifts as ts
from harness.cli import main
from harness.corpora import edit_distance
from harness.errors import ConfigError, UnknownNameError, printable
from harness.registry import text_shifts
from harness.reports.text_sheet import (
    EDIT_WINDOW,
    SheetRow,
    moby_paragraphs,
    render_sheet,
    sheet_rows,
    text_sheet,
)
from harness.seeding import derive_seed
from harness.specs import SEVERITIES

NAMES = ("case-flip", "header-noise", "typo-delete", "typo-insert", "typo-substitute", "typo-swap", "whitespace")
TYPOS = ("typo-delete", "typo-insert", "typo-substitute", "typo-swap")

PARAGRAPH = (
    "The harbour was quiet before dawn. Forty-two boats lay at anchor, their lamps still lit, and the "
    "harbour-master (a patient man of 61) counted them twice. \"Nothing moves until the tide turns,\" he said; "
    "nobody argued. At 5:40 the first gulls arrived over the café on the quay, where Zoë kept the kettle on "
    "for the night shift. A radio played something old and slow. Somewhere past the breakwater an engine "
    "coughed, caught, and settled into a steady rhythm, and one by one the crews woke, rolled up their "
    "blankets and stepped onto wet planks. By six the whole quay smelled of diesel, rope and strong tea. 🌊\n"
)

EMAIL = (
    "From alice@example.org  Mon Sep  2 10:15:00 2002\n"
    "Return-Path: <alice@example.org>\n"
    "Delivered-To: bob@example.net\n"
    "Received: from mail.example.org (mail.example.org [192.0.2.10])\n"
    "\tby mx.example.net (Postfix) with ESMTP id 4F1A2B3C\n"
    "\tfor <bob@example.net>; Mon, 2 Sep 2002 10:14:58 +0100 (BST)\n"
    "Received: from localhost (localhost [127.0.0.1]) by mail.example.org\n"
    "    (8.11.6/8.11.6) with SMTP id g82AEv012345; Mon, 2 Sep 2002 10:14:57 +0100\n"
    "Message-ID: <20020902101457.GA1234@example.org>\n"
    "Date: Mon, 2 Sep 2002 10:14:57 +0100\n"
    "From: Alice Example <alice@example.org>\n"
    "To: bob@example.net\n"
    "Subject: Re: the boat schedule\n"
    "Content-Type: text/plain; charset=us-ascii\n"
    "Precedence: bulk\n"
    "\n"
    "Bob,\n\n" + PARAGRAPH + "\nSee you Thursday.\n-- \nAlice\n"
)

HOSTILE = ["", " ", "\n", "\n\n", "\t \r\n\r\n", "a", "ab", "Ab", "Z", "😀", "naïve café — Zürich 😀🎉",
           "\ud800 lone surrogates \udfff", "\x00\x1b[31mred\x1b[0m\x7f", "From x\n\n", "Subject: hi\n\nbody",
           "Subject: hi", "X: y\r\n\r\nbody\r\n", " : \n\n", "From \n\n", "é" * 50, "ﬁﬂ ǅ ß İ", "a" * 5000,
           "word " * 400, "\u2028\u2029\x85\x0b\x0c"]


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _real_messages(count: int = 50) -> list[str]:
    """The first ``count`` messages of SpamAssassin's easy-ham-1 from the data root (a test that calls it asks
    for the ``text_corpora`` fixture)."""
    from harness.corpora import spam_messages

    return [m.text for m in spam_messages("easy-ham-1")[:count]]


# --- the contract, over every registered text shift --------------------------------------------


def test_the_registry_lists_the_seven_corruptions() -> None:
    assert tuple(text_shifts.names()) == NAMES
    assert all(callable(text_shifts.get(n)) for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_for_a_generator_state(name: str) -> None:
    fn = text_shifts.get(name)
    for s in SEVERITIES:
        assert fn(EMAIL, s, rng(3)) == fn(EMAIL, s, rng(3))
    # and random: other seeds give other texts at the strongest severity
    assert len({fn(EMAIL, 5, rng(seed)) for seed in range(5)}) == 5


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("severity", [0, 6, -1, 2.5, True, "3", None])
def test_severity_outside_1_to_5_is_refused(name: str, severity: object) -> None:
    with pytest.raises(ValueError) as info:
        text_shifts.get(name)("", severity, rng())
    assert isinstance(info.value, ConfigError)
    assert f"severity {severity!r} is outside 1-5" in info.value.message and "integer from 1 to 5" in info.value.hint


@pytest.mark.parametrize("name", NAMES)
def test_never_raises_on_any_string(name: str) -> None:
    fn = text_shifts.get(name)
    r = random.Random(7)
    alphabet = string.printable + "éÉßø€—…“”😀🎉\u200b\u202e\ud800\udfff\x00\x85\u2028"
    texts = HOSTILE + ["".join(r.choice(alphabet) for _ in range(r.randrange(60))) for _ in range(200)]
    for i, text in enumerate(texts):
        for s in SEVERITIES:
            out = fn(text, s, rng(i))
            assert isinstance(out, str)
    for text in ("", " \n\t", "😀 — ü", "1234 5678"):  # nothing a typo or case flip may touch
        if name in (*TYPOS, "case-flip", "header-noise"):
            assert fn(text, 5, rng()) == text


@pytest.mark.parametrize("name", NAMES)
def test_non_ascii_characters_survive_in_order(name: str) -> None:
    text = PARAGRAPH * 3 + "Ünïcödé ŝtrïñg, ǅ ﬁ ß İ ℌ 😀\ud800"
    out = text_shifts.get(name)(text, 5, rng())
    assert [c for c in out if ord(c) > 127] == [c for c in text if ord(c) > 127]


def _mean_edits(name: str, texts: list[str], seeds: range) -> np.ndarray:
    """(5,) mean edit distance to the original, as a share of its length, per severity."""
    fn = text_shifts.get(name)
    return np.array([np.mean([edit_distance(t, fn(t, s, rng(seed))) / len(t) for t in texts for seed in seeds])
                     for s in SEVERITIES])


@pytest.mark.parametrize("name", NAMES)
def test_severity_orders_strength_on_a_fixed_email(name: str) -> None:
    share = _mean_edits(name, [EMAIL], range(30))
    assert np.all(np.diff(share) >= 0), share
    assert share[4] > 2 * share[0] > 0, share


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_severity_orders_strength_on_real_messages(name: str, text_corpora: Path) -> None:
    messages = _real_messages(50)
    share = _mean_edits(name, messages, range(1))
    assert np.all(np.diff(share) >= 0), share
    assert share[4] > 2 * share[0] > 0, share


# --- what each corruption touches ---------------------------------------------------------------

WORD = re.compile(r"[A-Za-z]+")


@pytest.mark.parametrize("name", TYPOS)
def test_typos_touch_letters_inside_words_only(name: str) -> None:
    fn = text_shifts.get(name)
    for seed in range(5):
        out = fn(EMAIL, 5, rng(seed))
        # everything but the words is unchanged, and no word appears, disappears or merges with another
        assert WORD.sub("#", out) == WORD.sub("#", EMAIL)
        before, after = WORD.findall(EMAIL), WORD.findall(out)
        assert len(before) == len(after) and before != after
        for a, b in zip(before, after, strict=True):
            if name == "typo-delete":  # a subsequence that keeps the first letter
                assert b[0] == a[0] and _is_subsequence(b, a)
            elif name == "typo-insert":  # the original letters in order, the first one first
                assert b[0] == a[0] and _is_subsequence(a, b)
            elif name == "typo-substitute":
                assert len(a) == len(b)
                for x, y in zip(a, b, strict=True):
                    assert x == y or (y.lower() in ts.keyboard_neighbours(x) and x.isupper() == y.isupper())
            else:  # typo-swap: disjoint adjacent pairs exchanged
                assert sorted(a) == sorted(b)
                i = 0
                while i < len(a):
                    if a[i] == b[i]:
                        i += 1
                    else:
                        assert (b[i], b[i + 1]) == (a[i + 1], a[i]) and a[i] != a[i + 1]
                        i += 2


def test_an_inserted_letter_has_the_case_of_the_letter_before_it() -> None:
    upper, lower = PARAGRAPH.upper() * 20, PARAGRAPH.lower() * 20
    assert not any(c.islower() for c in ts.typo_insert(upper, 5, rng()) if c in string.ascii_letters)
    assert not any(c.isupper() for c in ts.typo_insert(lower, 5, rng()) if c in string.ascii_letters)


def _is_subsequence(short: str, long: str) -> bool:
    it = iter(long)
    return all(ch in it for ch in short)


def test_keyboard_neighbours_are_qwerty_and_symmetric() -> None:
    assert sorted(ts.keyboard_neighbours("g")) == sorted("fhtybv")
    assert sorted(ts.keyboard_neighbours("Q")) == sorted("wa")
    assert sorted(ts.keyboard_neighbours("m")) == sorted("njk")
    assert sorted(ts.keyboard_neighbours("p")) == sorted("ol")
    assert sorted(ts.keyboard_neighbours("s")) == sorted("adwezx")
    for a in string.ascii_lowercase:
        near = ts.keyboard_neighbours(a)
        assert near and a not in near
        assert all(a in ts.keyboard_neighbours(b) for b in near)


def test_case_flip_changes_the_case_of_letters_only() -> None:
    out = ts.case_flip(EMAIL, 5, rng())
    assert len(out) == len(EMAIL) and out != EMAIL
    for x, y in zip(EMAIL, out, strict=True):
        assert x == y or (x in string.ascii_letters and y == x.swapcase())


def test_whitespace_changes_whitespace_only() -> None:
    ws = re.compile(f"[{re.escape(string.whitespace)}]")
    for s in SEVERITIES:
        out = ts.whitespace(EMAIL, s, rng(s))
        assert out != EMAIL and ws.sub("", out) == ws.sub("", EMAIL)


# --- changed share against the declared rates, on a long text ----------------------------------

LONG = PARAGRAPH * 300  # about 190,000 characters, 140,000 letters


def _close(measured: float, rate: float, n: int) -> bool:
    """Whether a share measured over ``n`` independent draws is within 5 standard errors of ``rate``
    (two-sided; the draws are seeded, so this is a fixed check, not a flaky one)."""
    return abs(measured - rate) <= 5 * (rate * (1 - rate) / n) ** 0.5


def _hamming(a: str, b: str) -> int:
    assert len(a) == len(b)
    return sum(x != y for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("severity", SEVERITIES)
def test_typo_rates(severity: int) -> None:
    rate = ts.TYPO_RATE[severity - 1]
    letters = sum(c in string.ascii_letters for c in LONG)
    words = WORD.findall(LONG)
    inner = letters - len(words)  # every letter but the first of its word
    in_long_words = sum(len(w) for w in words if len(w) > 1)
    out = ts.typo_insert(LONG, severity, rng())
    assert _close((len(out) - len(LONG)) / letters, rate, letters)
    out = ts.typo_delete(LONG, severity, rng())
    assert _close((len(LONG) - len(out)) / inner, rate, inner)
    out = ts.typo_substitute(LONG, severity, rng())
    assert _close(_hamming(LONG, out) / letters, rate, letters)
    out = ts.typo_swap(LONG, severity, rng())  # every swap changes two letters
    assert _close(_hamming(LONG, out) / 2 / in_long_words, rate, in_long_words)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_case_flip_rate(severity: int) -> None:
    letters = sum(c in string.ascii_letters for c in LONG)
    out = ts.case_flip(LONG, severity, rng())
    assert _close(_hamming(LONG, out) / letters, ts.CASE_FLIP_RATE[severity - 1], letters)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_whitespace_rates(severity: int) -> None:
    remove, add = ts.WHITESPACE_RATE[severity - 1]
    solid = re.sub(r"\s", "", LONG)  # insertions only: nothing to remove
    out = ts.whitespace(solid, severity, rng())
    assert _close((len(out) - len(solid)) / len(solid), add, len(solid))
    added = Counter(c for c in out if c in string.whitespace)
    total = sum(added.values())
    for ch, share in ts.INSERTED_WHITESPACE:
        assert _close(added[ch] / total, share, total)
    blank = " \n\t \r\n" * 20000  # removals only: nothing to insert after
    out = ts.whitespace(blank, severity, rng())
    assert _close((len(blank) - len(out)) / len(blank), remove, len(blank))


# --- header noise -------------------------------------------------------------------------------


def _fields(text: str) -> list[str]:
    """A header block's fields, each as 'name: value' with the name lowercased and whitespace collapsed."""
    parts = ts.split_headers(text)
    assert parts is not None
    out = []
    for field in parts[1]:
        name, _, value = "\n".join(field).partition(":")
        out.append(name.strip().lower() + ": " + " ".join(value.split()))
    return out


@pytest.mark.parametrize("severity", SEVERITIES)
def test_header_noise_changes_the_headers_only(severity: int) -> None:
    body = EMAIL[EMAIL.index("\n\n"):]
    extra_names = {n.lower() for n, _ in ts.EXTRA_HEADERS}
    for seed in range(10):
        out = ts.header_noise(EMAIL, severity, rng(seed))
        assert out != EMAIL
        assert out.startswith("From alice@example.org  Mon Sep  2 10:15:00 2002\n")  # the envelope stays first
        assert out[out.index("\n\n"):] == body
        before, after = _fields(EMAIL), _fields(out)
        added = Counter(after) - Counter(before)
        assert not Counter(before) - Counter(after)  # every field is still there, name case and blanks aside
        assert sum(added.values()) == ts.HEADER_NOISE[severity - 1][2]
        assert {f.partition(":")[0] for f in added} <= extra_names
        assert not {f.partition(":")[0] for f in added} & {f.partition(":")[0] for f in before}


def _key(line: str) -> str:
    name, _, value = line.partition(":")
    return name.strip().lower() + ": " + " ".join(value.split())


def test_header_noise_restyles_and_moves_the_declared_share_of_fields() -> None:
    parts = ts.split_headers(EMAIL)
    assert parts is not None
    first = {_key(f[0]): f[0] for f in parts[1]}
    order = [_key(f[0]) for f in parts[1]]
    n = 200 * len(first)
    for s, (move, restyle, _) in enumerate(ts.HEADER_NOISE, 1):
        restyled = displaced = 0
        for seed in range(200):
            out = ts.split_headers(ts.header_noise(EMAIL, s, rng(seed)))
            assert out is not None
            lines = [f[0] for f in out[1] if _key(f[0]) in first]
            restyled += sum(line != first[_key(line)] for line in lines)
            # fields out of their original order: those off the longest run kept in order
            displaced += len(order) - _longest_increasing([order.index(_key(line)) for line in lines])
        assert _close(restyled / n, restyle, n), (s, restyled / n)
        # a moved field can land where it was, or shift the others: displaced is at most the moved share
        assert 0.5 * move <= displaced / n <= move + 5 * (move * (1 - move) / n) ** 0.5, (s, displaced / n)


def _longest_increasing(seq: list[int]) -> int:
    import bisect

    tails: list[int] = []
    for x in seq:
        i = bisect.bisect_left(tails, x)
        tails[i:i + 1] = [x]
    return len(tails)


@pytest.mark.parametrize("text", [
    PARAGRAPH,  # no header block
    "Subject: hello\nthere is no empty line, so no body",
    "Dear Bob:\n\nthe first line is no field",
    "Subject: hi\nnot a field\n\nbody",
    "\n\nSubject: after the empty line",
    " indented: first\n\nbody",
])
def test_header_noise_leaves_a_text_without_headers_unchanged(text: str) -> None:
    for s in SEVERITIES:
        assert ts.header_noise(text, s, rng(s)) == text


def test_header_noise_keeps_crlf_line_ends_and_stays_parseable() -> None:
    crlf = EMAIL.replace("\n", "\r\n")
    out = ts.header_noise(crlf, 5, rng(1))
    head = out[:out.index("\r\n\r\n")]
    assert all(line.endswith("\r") for line in head.split("\n")[:-1]) and "\n" not in head.replace("\r\n", "")
    twice = ts.header_noise(out, 5, rng(2))  # still an e-mail to the next corruption
    assert ts.split_headers(twice) is not None and twice != out


# --- the contact sheet --------------------------------------------------------------------------


def _levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def test_edit_distance_is_levenshtein() -> None:
    r = random.Random(0)
    for _ in range(400):
        a = "".join(r.choice("abcé😀") for _ in range(r.randrange(25)))
        b = "".join(r.choice("abcé😀") for _ in range(r.randrange(25)))
        assert edit_distance(a, b) == _levenshtein(a, b), (a, b)
        assert edit_distance(a, b, prefix=True) == min(_levenshtein(a, b[:j]) for j in range(len(b) + 1)), (a, b)
    assert edit_distance("kitten", "sitting") == 3 and edit_distance("", "abc") == 3 and edit_distance("abc", "") == 3
    long_a = PARAGRAPH * 2  # beyond one machine word of bits
    assert edit_distance(long_a, long_a[1:] + "x") == 2


def test_sheet_rows_are_the_registered_shifts_with_the_sheets_generators() -> None:
    rows = sheet_rows(EMAIL, ["typo-insert", "typo-delete", "header-noise"], seed=4)
    assert [(r.shift, r.severity) for r in rows] == [(n, s) for n in ("typo-insert", "typo-delete", "header-noise")
                                                     for s in SEVERITIES]
    for r in rows:
        expected = text_shifts.get(r.shift)(EMAIL, r.severity, rng(derive_seed(4, "text-sheet", r.shift, r.severity)))
        assert r.text == expected
        if r.shift != "header-noise":  # insertions only or deletions only: the distance is the length change
            assert r.edits == abs(len(r.text) - len(EMAIL)) > 0


def test_rendered_sheet_is_one_line_per_version_and_deterministic() -> None:
    rows = sheet_rows(EMAIL, NAMES, seed=0)
    sheet = render_sheet("an e-mail", EMAIL, rows, chars=80)
    assert sheet == render_sheet("an e-mail", EMAIL, sheet_rows(EMAIL, NAMES, seed=0), chars=80)
    lines = sheet.splitlines()
    assert len(lines) == 4 + len(NAMES) * 5
    assert lines[0] == f"an e-mail: {len(EMAIL):,} characters; seed 0"
    assert lines[3].startswith("original") and lines[3].endswith(printable(EMAIL[:80]))
    start = lines[3].index("From alice")  # every version's excerpt starts in the same column
    for line, r in zip(lines[4:], rows, strict=True):
        assert line.startswith(f"{r.shift:<15} {r.severity} ")
        assert f" {r.edits:,} edits " in line and f" {r.edits / len(EMAIL):.1%} " in line
        assert line[start - 2:start] == "  " and line[start:] == printable(r.text[:80])
        assert "\n" not in line[start:] and "\t" not in line[start:]


def test_a_long_text_counts_edits_in_its_first_characters() -> None:
    text = ("x" * 100 + "\n") * (2 * EDIT_WINDOW // 101)  # twice the window, nothing but letters and line breaks
    row = sheet_rows(text, ["typo-substitute"])[2]  # severity 3: substitutions only, so Hamming counts them
    assert row.severity == 3 and len(row.text) == len(text)
    in_window, in_all = _hamming(text[:EDIT_WINDOW], row.text[:EDIT_WINDOW]), _hamming(text, row.text)
    assert in_window * 0.9 <= row.edits <= in_window < 0.6 * in_all
    assert "counted in the first 8,000 characters" in render_sheet("long", text, [row])


def test_moby_paragraphs_skip_titles_and_short_lines() -> None:
    book = "CHAPTER 1. Loomings.\n\n" + "Call me Ishmael. " * 20 + "\n\n  \n\nShort.\n\n" + "x" * 200 + "\n"
    assert moby_paragraphs(book) == (("Call me Ishmael. " * 20).rstrip("\n"), "x" * 200)


def test_sheet_rows_are_frozen() -> None:
    row = SheetRow("case-flip", 1, "x", 0)
    with pytest.raises(AttributeError):
        row.edits = 1  # type: ignore[misc]


def test_unknown_shift_or_corpus_is_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UnknownNameError) as info:
        text_sheet("spam", 0, ["typo-swapp"])
    assert "did you mean 'typo-swap'" in info.value.hint
    with pytest.raises(UnknownNameError):
        text_sheet("tweets", 0)
    with pytest.raises(SystemExit) as code:  # argparse's choices
        main(["data", "text-sheet", "--corpus", "tweets"])
    assert code.value.code == 2 and "Error: argument --corpus: invalid choice: 'tweets'" in capsys.readouterr().err
    assert main(["data", "text-sheet", "--shifts", "typo-swapp"]) == 2
    err = capsys.readouterr().err
    assert "Error: unknown text-shift 'typo-swapp'" in err and "did you mean 'typo-swap'" in err


@pytest.mark.parametrize("corpus", ["spam", "sotu", "moby"])
def test_sheet_of_each_corpus(corpus: str, text_corpora: Path) -> None:
    root = text_corpora.parent
    sheet = text_sheet(corpus, 2, ["case-flip", "typo-swap"], seed=1, chars=60, root=root)
    assert sheet == text_sheet(corpus, 2, ["case-flip", "typo-swap"], seed=1, chars=60, root=root)
    lines = sheet.splitlines()
    assert len(lines) == 4 + 10 and "text 2" in lines[0]
    edits = [int(line.split(" edits")[0].split()[-1].replace(",", "")) for line in lines[4:]]
    assert edits[4] > edits[0] and edits[9] > edits[5]


def test_cli_prints_the_sheet(capsys: pytest.CaptureFixture[str], text_corpora: Path) -> None:
    root = text_corpora.parent
    assert main(["data", "text-sheet", "--index", "1", "--shifts", "header-noise", "--chars", "40"]) == 0
    out = capsys.readouterr().out
    assert out == text_sheet("spam", 1, ["header-noise"], 0, 40, root)
    assert out.startswith("SpamAssassin easy-ham-1/00002 (spam text 1): ")
    assert main(["data", "text-sheet", "--corpus", "moby", "--index", "999999"]) == 2
    err = capsys.readouterr().err
    assert "Error: moby has no text 999999: it has " in err and "Hint: use --index from 0 to " in err
