"""Corruption throughput: the harness's batched tensor corruptions against the
``imagecorruptions`` package (per-image numpy, the reference code of ImageNet-C), in one process.

``imagecorruptions`` refuses images below 32x32 and three of its corruptions no longer run on
current numpy / scikit-image (glass blur and gaussian blur pass ``multichannel=True`` to
``skimage.filters.gaussian``, removed in scikit-image 0.20; fog uses ``np.float_``, gone since
NumPy 2; tests/test_shifts.py runs them through shims), so the comparison is on the corruptions
it can still run, on the same real images (scikit-learn digits enlarged to 32x32,
as RGB), at every severity. A second ratio answers the question a user of 28x28 grayscale data
(MNIST) asks: the harness on the 28x28 images themselves against the peer on the closest input
it accepts (the same images at 32x32 RGB). Saturation is left out of that ratio: it is an
identity on grayscale. Needs ``pip install imagecorruptions "setuptools<82"`` (it imports pkg_resources), which
the 'test' extra installs.
Usage:

    python benchmarks/corruptions.py [--n-harness 2048] [--n-peer 48] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch


def main() -> None:
    from harness.data import digits, fit_to
    from harness.registry import shifts
    from harness.seeding import torch_generator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-harness", type=int, default=2048, help="images per batch for the harness")
    parser.add_argument("--n-peer", type=int, default=48, help="images for imagecorruptions (one call each)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from imagecorruptions import corrupt, get_corruption_names

    x = digits().x
    rgb32 = np.repeat(fit_to(x, (1, 32, 32)), 3, axis=1)[: args.n_harness]
    gray28 = fit_to(x, (1, 28, 28))[: args.n_harness]
    peer_images = (rgb32[: args.n_peer].transpose(0, 2, 3, 1) * 255).round().astype(np.uint8)

    def harness_rate(name: str, batch: np.ndarray) -> float:
        fn, t = shifts.get(name), torch.from_numpy(batch)
        fn(t[:8], 1, torch_generator(0, "warm-up"))
        t0 = time.perf_counter()
        for s in range(1, 6):
            fn(t, s, torch_generator(0, name, s))
        return 5 * len(t) / (time.perf_counter() - t0)

    def peer_rate(name: str) -> float | None:
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for s in range(1, 6):
                    for img in peer_images:
                        corrupt(img, corruption_name=name.replace("-", "_"), severity=s)
        except Exception:  # broken on current numpy / scikit-image
            return None
        return 5 * len(peer_images) / (time.perf_counter() - t0)

    print(f"images/s over severities 1-5; harness: one batch of {len(rgb32)} images, {torch.get_num_threads()} "
          f"threads; imagecorruptions: {len(peer_images)} images, one call each")
    print(f"{'corruption':20}{'peer 32x32 RGB':>16}{'harness 32x32 RGB':>19}{'ratio':>8}{'harness 28x28 gray':>20}"
          f"{'ratio':>8}")
    ratios, task_ratios = [], []
    peer_names = {n.replace("_", "-") for n in get_corruption_names("all")}
    for name in shifts.names():
        ours32, ours28 = harness_rate(name, rgb32), harness_rate(name, gray28)
        peer = peer_rate(name) if name in peer_names else None
        ratio = f"{ours32 / peer:7.0f}x" if peer else "    n/a"
        task = f"{ours28 / peer:7.0f}x" if peer and name != "saturate" else "    n/a"
        if peer:
            ratios.append(ours32 / peer)
            if name != "saturate":
                task_ratios.append(ours28 / peer)
        peer_text = f"{peer:16.0f}" if peer else f"{'fails' if name in peer_names else 'absent':>16}"
        print(f"{name:20}{peer_text}{ours32:19.0f}{ratio:>8}{ours28:20.0f}{task:>8}")
    for label, rs in (("same 32x32 RGB images", ratios), ("28x28 grayscale task", task_ratios)):
        print(f"median ratio, {label}, over the {len(rs)} corruptions both run: {statistics.median(rs):.0f}x "
              f"(min {min(rs):.0f}x, max {max(rs):.0f}x)")


if __name__ == "__main__":
    main()
