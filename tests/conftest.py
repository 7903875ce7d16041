"""Shared test setup: no network, caches in temporary folders, colour off, few threads."""

from __future__ import annotations

import os
import tempfile

# Set before anything imports datasets/huggingface_hub or rich: tests never download and
# never depend on the caller's caches or terminal.
_CACHE = tempfile.mkdtemp(prefix="harness-tests-")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["HF_HOME"] = os.path.join(_CACHE, "hf")
os.environ["NO_COLOR"] = "1"
os.environ.setdefault("COLUMNS", "200")
