"""Make the run directories tests/data/compat holds (tests/test_compat.py), with the code of an
earlier commit: from a worktree of that commit, with this repository's environment,

    git worktree add /tmp/old 98d40f0 && cd /tmp/old
    PYTHONPATH=/tmp/old HARNESS_DATA_ROOT=... python /path/to/tests/data/compat/make.py OUT

then copy each OUT/<suite>/store.sqlite and weights/ here, and OUT/<suite>/report/results.json as
results-<commit>.json. One torch thread, as the tests run, so re-evaluated cells match bit for bit.
"""

import importlib
import sys
from pathlib import Path

import torch

import harness
from harness import registry
from harness.runner import run
from harness.specs import AttackSpec, DiffusionSpec, EvalSpec, Suite, TrainSpec, Variant
from reports.build import build_report
from reports.render import write_reports

torch.set_num_threads(1)
print("harness from", harness.__file__)
out = Path(sys.argv[1])
# the installed entry point of the denoiser names where it lives today; point it at the old class
registry.denoisers.names()  # discover the entry points first
registry.denoisers.unregister("unet")
registry.denoisers.register("unet", importlib.import_module("harness.diffusion").UNet)  # where it lived then

classify = Suite(
    "compat-classify", "1.0.0", "a run made before the redesign of issue 14", "digits",
    tuple(Variant(f"mlp-{n}", "mlp", n, options=(("hidden", (32,)),)) for n in ("none", "batch")), (0, 1),
    TrainSpec(epochs=2, batch_size=64, lr=0.01, target_accuracy=0.5),
    EvalSpec(shifts=("gaussian-noise",), severities=(2,), ood_sets=("uniform-noise",), ood_scores=("msp", "energy"),
             attacks=(AttackSpec("fgsm", (0.0, 0.1)), AttackSpec("pgd-linf", (0.0, 0.1), (("steps", 3),))),
             batch_size=128, large_eps=0.5),
    max_train=300, max_test=80)
denoise = Suite(
    "compat-denoise", "1.0.0", "a denoise run made before the redesign of issue 14", "digits",
    tuple(Variant(f"unet-{n}", "unet", n, options=(("channels", (8, 16)),)) for n in ("none", "group")), (0, 1),
    TrainSpec(epochs=1, batch_size=64, lr=2e-3, optimizer="adam", eval_every=5), task="denoise",
    diffusion=DiffusionSpec(target_loss=0.5, steps=30, val_draws=1, n_t=2, samples=8,
                            judge_train=TrainSpec(epochs=1, batch_size=64, lr=1e-3)),
    evaluation=EvalSpec(shifts=("gaussian-noise",), severities=(2,), ood_sets=("uniform-noise",), ood_scores=(),
                        attacks=(AttackSpec("pgd-linf", (0.0, 0.05), (("steps", 2),)),), checks=False,
                        batch_size=64),
    max_train=200, max_test=40)
for suite in (classify, denoise):
    d = out / suite.name
    print(suite.name, run(suite, d, device="cpu", executor="serial", progress=False))
    write_reports(build_report(d, n_resamples=300), d / "report")
