"""norm-harness: a paired, statistically honest benchmark of normalization layers.

The engine lives in submodules that are imported on demand, so ``import harness`` and
``harness --help`` stay fast: ``harness.runner.run`` runs a suite, ``harness.registry``
holds the plugin registries, ``harness.stats`` and ``harness.metrics`` are pure numpy.
"""

__version__ = "0.1.0"
