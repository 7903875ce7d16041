"""An example third-party plugin package for norm-harness, one plugin of four kinds.

* ``scale`` (``harness.norms``): ScaleNorm, in :mod:`harness_plugin_example.norms`;
* ``occlusion`` (``harness.shifts``): a gray square over part of the image, in
  :mod:`harness_plugin_example.shifts`;
* ``neg-entropy`` (``harness.ood_scores``): negative predictive entropy, in
  :mod:`harness_plugin_example.ood`;
* ``scalenorm-digits`` (``harness.suites``): a suite that uses all three, in
  :mod:`harness_plugin_example.suite`.

Each is registered by one line of ``pyproject.toml`` and imported only when first used, so this
package imports nothing here: ``harness list`` stays free of torch.
"""
