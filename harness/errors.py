"""Errors a user can act on.

Every error the harness raises on purpose carries a one-line message (what is wrong) and a
hint (what to do). The CLI prints them as ``Error:`` and ``Hint:`` lines; library users catch
:class:`HarnessError`. ``exit_code`` is 2 for usage and configuration problems and 1 for a run
that failed. :func:`unknown_name` builds the error of a failed lookup by name, with its "did you
mean".
"""

from __future__ import annotations

import difflib
import re

# What a terminal or a document would act on rather than show: C0 and C1 control characters
# (ESC starts ANSI and OSC sequences, CR overwrites a line), DEL, the line and paragraph
# separators, and the bidirectional overrides and isolates (they reorder the text around them).
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def unprintable(text: str) -> str | None:
    """The first character of ``text`` that :func:`printable` would spell out, or None."""
    found = _UNPRINTABLE.search(text)
    return found.group() if found else None


def printable(text: str) -> str:
    """``text`` with every control character, line break and bidirectional control spelled out
    as Python's repr does (ESC -> ``\\x1b``, a newline -> ``\\n``), so that text a user or a
    plugin gave reaches a terminal or a document as the characters it is made of."""
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)


class HarnessError(Exception):
    """Base class: a message for the user and a hint on what to do about it."""

    exit_code = 2

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class ConfigError(HarnessError):
    """Bad input: an unknown name, an invalid option, a malformed suite."""


class UnknownNameError(ConfigError):
    """A lookup by name failed (a registry's, a suite's variants or sizes); the hint carries 'did you
    mean' and the available names (see :func:`unknown_name`)."""


def unknown_name(kind: str, name: str, available: list[str]) -> UnknownNameError:
    """The error for ``name`` missing from ``available``: "unknown KIND 'NAME'", with a hint that
    suggests up to three close matches and lists every available name (or says none is registered)."""
    close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
    guess = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return UnknownNameError(
        f"unknown {kind} {name!r}",
        hint=f"{guess}available: {', '.join(available) if available else '(none registered)'}",
    )


class PluginError(ConfigError):
    """A plugin could not be imported or does not satisfy its contract."""


class RunError(HarnessError):
    """A run started but could not finish."""

    exit_code = 1
