"""What the earlier run directories of tests/data/compat lack by design: the conditions added to every battery
since they were made (tests/test_compat.py, tests/test_rebuild_identical.py)."""

from __future__ import annotations

ADDED = ("membership", "cost")  # condition kinds added to every battery since (EvalSpec switches, on by default)


def without_added(excluded: list[str]) -> list[str]:
    """A report's ``excluded`` lines less those of cells missing only conditions of the ``ADDED`` kinds
    ("mlp-none seed 0: not evaluated on membership:loss, cost"): an earlier run has none of them, and its
    report rebuilt today says so; every other line must be what that version wrote."""
    def only_added(line: str) -> bool:
        _, said, keys = line.partition("not evaluated on ")
        return bool(said) and all(k.split(":")[0] in ADDED for k in keys.split(", "))

    return [line for line in excluded if not only_added(line)]
