"""norm-harness: a paired, statistically honest benchmark of normalization layers.

The engine lives in submodules that are imported on demand, so ``import harness`` and
``harness --help`` stay fast: ``harness.runner.run`` runs a suite, ``harness.registry``
holds the plugin registries, ``harness.stats`` and ``harness.metrics`` are pure numpy.
"""

import os as _os

__version__ = "0.1.0"


def _checkout_root() -> str | None:
    """The source checkout this package was imported from, or None when it is installed.

    In a checkout, reports/ and suites/ sit beside harness/ and become harness.reports and
    harness.suites only through pyproject.toml's package-dir, which an installed wheel or an editable
    install applies. When Python imports harness/ straight from the checkout instead (``python -m
    harness.cli`` run in the checkout's root puts it first on sys.path, shadowing an installed copy),
    nothing applies that mapping: this finds the checkout so the two names resolve there too.
    """
    here = _os.path.dirname(_os.path.abspath(__file__))
    root = _os.path.dirname(here)
    if _os.path.isdir(_os.path.join(here, "suites")):  # installed: the packages sit under harness/
        return None
    marks = ("pyproject.toml", _os.path.join("suites", "__init__.py"), _os.path.join("reports", "__init__.py"))
    return root if all(_os.path.isfile(_os.path.join(root, mark)) for mark in marks) else None


# harness.reports and harness.suites then resolve to <checkout>/reports and <checkout>/suites; the
# checkout's other top-level folders are not packages (no __init__.py), so no other name appears.
if (_root := _checkout_root()) is not None:
    __path__.append(_root)
