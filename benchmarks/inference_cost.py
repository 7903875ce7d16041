"""What folding BatchNorm saves at inference, per model, in one process.

For each registered image model with norm ``batch`` (and, for reference, ``layer``), built on the digits'
shape (1, 8, 8) with 10 classes and BatchNorm statistics set by a few training-mode passes, the model and its
folded copy (harness.folding.fold_batchnorm) are timed by harness.inference.measure: ``--repeats`` forward
passes at batch 1 and at ``--batch`` after a warm-up, the two models alternating in rounds (``--rounds``) so
that a slow spell of the machine falls on both. Printed per model: the layers folded, the median latency at
batch 1 and at the large batch with the min-max spread over every repeat of every round, and the median of
the per-round savings in %. One thread (``torch.set_num_threads(1)``) unless ``--threads``.

    python benchmarks/inference_cost.py [--models cnn,mlp] [--repeats 20] [--rounds 5] [--batch 256]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import nn


def prepared(name: str, norm: str) -> nn.Module:
    from harness.models import build_model

    g = torch.Generator().manual_seed(0)
    model = build_model(name, norm, (1, 8, 8), 10, {"channels": (16, 32)} if name == "cnn" else {}, None, g)
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model(torch.rand(64, 1, 8, 8, generator=g))
    return model.eval()


def main() -> None:
    from harness.folding import fold_batchnorm
    from harness.inference import batch_of, measure
    from harness.registry import models

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(n for n in models.names() if n != "torchvision-resnet"))
    parser.add_argument("--norms", default="batch,layer")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = batch_of(torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(1)), args.batch)
    print(f"{'model':<14}{'folded':>7}  {'batch 1, ms: unfolded':>30}  {'folded':>24}  {'saved':>7}  "
          f"{f'batch {args.batch}, ms: unfolded':>30}  {'folded':>24}  {'saved':>7}")
    for name in args.models.split(","):
        for norm in args.norms.split(","):
            model = prepared(name, norm)
            folded, n = fold_batchnorm(model, x[:64])
            b1: dict[str, list[np.ndarray]] = {"u": [], "f": []}
            big: dict[str, list[np.ndarray]] = {"u": [], "f": []}
            for _ in range(args.rounds):
                for key, m in (("u", model), ("f", folded)):
                    cost = measure(m, x, args.repeats)
                    b1[key].append(cost.latency_b1)
                    big[key].append(cost.latency_batch)

            def cells(d: dict[str, list[np.ndarray]]) -> str:
                u, f = np.concatenate(d["u"]) * 1e3, np.concatenate(d["f"]) * 1e3
                saved = np.median([100 * (1 - np.median(a) / np.median(b))
                                   for a, b in zip(d["f"], d["u"], strict=True)])
                return (f"{np.median(u):>10.3f} [{u.min():.3f}, {u.max():.3f}]".rjust(30) + "  "
                        + f"{np.median(f):>8.3f} [{f.min():.3f}, {f.max():.3f}]".rjust(24) + f"  {saved:>+6.1f}%")

            print(f"{name + '-' + norm:<14}{n:>7}  {cells(b1)}  {cells(big)}")


if __name__ == "__main__":
    main()
