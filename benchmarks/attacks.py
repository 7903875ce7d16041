"""PGD-10 throughput and strength: the harness against torchattacks, in one process.

Trains a CNN with BatchNorm on the digits with the harness (the same model and data for both
libraries), then runs PGD-10 (L-inf, random start, step size 2.5 * eps / 10) at each eps of a
sweep with each library, and prints examples per second, the ratio, and both robust
accuracies. Two harness figures: each eps attacked on its own (``PGD.perturb``), and the sweep
as an evaluation runs it (an eps reuses what smaller ones broke, and eps = 0 costs nothing).
Needs torchattacks (``pip install torchattacks``). Usage:

    python benchmarks/attacks.py [--repeat 3] [--device cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

EPS = (0.0, 0.02, 0.05, 0.1, 0.2)


def main() -> None:
    import torchattacks

    from harness.attacks import PGD
    from harness.data import as_tensor, digits, stratified_split
    from harness.models import build_model
    from harness.seeding import torch_generator
    from harness.specs import TrainSpec
    from harness.tasks.classify.evaluation import _attack, _Sweeps
    from harness.training import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions (the median is printed)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    split = stratified_split(digits(), 0.25, 0.1, 0)
    model = build_model("cnn", "batch", split.train.shape, 10, {}, None, torch_generator(0, "init"))
    train(model, split, TrainSpec(epochs=6), 0, args.device)
    model.to(dev).eval()
    x, y = as_tensor(split.test.x, dev), as_tensor(split.test.y, dev)
    n = len(x)

    def accuracy(x_adv: torch.Tensor) -> float:
        with torch.no_grad():
            return float((model(x_adv).argmax(1) == y).float().mean())

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def timed(fn, eps):  # type: ignore[no-untyped-def]
        """Median seconds over the repeats, and robust accuracy per eps averaged over them (each
        repeat draws other random starts, so the accuracies compare the attacks, not one draw)."""
        times, accs = [], []
        for r in range(args.repeat):
            sync()
            t0 = time.perf_counter()
            accs.append(fn(eps, r))
            sync()
            times.append(time.perf_counter() - t0)
        return statistics.median(times), [statistics.mean(a) for a in zip(*accs, strict=True)]

    def harness_each(eps, r):  # type: ignore[no-untyped-def]
        return [accuracy(PGD(eps=e, steps=10).perturb(model, x, y, generator=torch_generator(r, f"b{e}")))
                for e in eps]

    def harness_sweep(eps, r):  # type: ignore[no-untyped-def]
        sweeps, accs = _Sweeps(), []
        for e in eps:
            _, logits = _attack(model, x, y, "pgd-linf", e, {"steps": 10}, torch_generator(r, f"b{e}"), 512, sweeps)
            accs.append(float((logits.argmax(1) == y).float().mean()))
        return accs

    def peer(eps, r):  # type: ignore[no-untyped-def]
        torch.manual_seed(r)  # torchattacks draws its random start from the global generator
        return [accuracy(torchattacks.PGD(model, eps=e, alpha=2.5 * e / 10, steps=10)(x, y)) for e in eps]

    print(f"model: CNN (32, 64 channels) + BatchNorm, clean accuracy {accuracy(x):.3f}; {n} test digits; "
          f"device {args.device}, {torch.get_num_threads()} threads; time: median of {args.repeat} repeats, "
          f"accuracy: mean over them (other random starts each)")
    for eps in (EPS, EPS[1:]):
        total = n * len(eps)
        t_peer, a_peer = timed(peer, eps)
        print(f"\nPGD-10 L-inf, eps {', '.join(f'{e:g}' for e in eps)} ({total} attacked examples per sweep)")
        print(f"{'':20}{'examples/s':>11}{'vs torchattacks':>17}  robust accuracy per eps")
        for name, (t, accs) in (("torchattacks", (t_peer, a_peer)), ("harness, each eps", timed(harness_each, eps)),
                                ("harness, sweep", timed(harness_sweep, eps))):
            print(f"{name:20}{total / t:11.0f}{t_peer / t:16.2f}x  " + "  ".join(f"{a:.3f}" for a in accs))


if __name__ == "__main__":
    main()
