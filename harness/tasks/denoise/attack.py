"""PGD on a denoiser's ELBO-style loss (the denoise task's one attack)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from harness.attacks import check_alpha, pgd_step_size
from harness.errors import ConfigError
from harness.tasks.denoise.objective import elbo_timesteps, weighted_error
from harness.tasks.denoise.schedule import NoiseSchedule


@dataclass(frozen=True)
class DenoisePGD:
    """PGD (Madry et al., 2018) in the L-inf ball that *maximises* a denoiser's ELBO-style loss
    (the negative of :func:`elbo_score`) with its (timestep, noise) draws fixed for the whole run:
    ``n_t`` stratified timesteps (:func:`elbo_timesteps`) and, per timestep, noise (N, C, H, W)
    drawn once from the generator, after the random start. A fixed objective gives the
    iterations a consistent direction; the evaluation then scores ``x_adv`` with its own,
    independent draws (:func:`evaluate_denoiser`), so the attack is not fitted to the noise it is
    judged with.

    Defaults as for the classifiers' PGD: ``steps`` 10, step size ``alpha`` = 2.5 * eps / steps,
    a uniform random start, ``restarts`` 1; per example the iterate with the highest objective over
    every step and restart is returned (worst case). ``perturb(model, schedule, x, generator)``:
    x (N, C, H, W) in [0, 1] -> x_adv like x, within eps of x and in [0, 1], x not mutated; the
    model runs in eval mode and its mode is restored; no parameter gradients. At eps = 0 it
    returns a copy of x without running anything.
    """

    eps: float
    steps: int = 10
    alpha: float | None = None
    restarts: int = 1
    random_start: bool = True
    n_t: int = 4
    norm: str = "linf"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.eps) and 0 <= self.eps <= 1):
            raise ConfigError(f"eps {self.eps} is outside [0, 1]", hint="eps is in [0, 1] input units, e.g. 0.05")
        if self.steps < 1 or self.restarts < 1 or self.n_t < 1:
            raise ConfigError(f"steps, restarts and n_t must be at least 1, got {self.steps}, {self.restarts}, "
                              f"{self.n_t}", hint="use e.g. steps=10, restarts=1, n_t=4")
        if self.norm != "linf":
            raise ConfigError(f"the denoising-loss PGD is L-inf only, got norm {self.norm!r}", hint="use norm='linf'")
        check_alpha(self.alpha)

    @property
    def step_size(self) -> float:
        return pgd_step_size(self.alpha, self.eps, self.steps)

    def perturb(self, model: nn.Module, schedule: NoiseSchedule, x: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        from harness.attacks import project

        x = x.detach()
        if self.eps == 0 or len(x) == 0:
            return x.clone()
        ts = elbo_timesteps(schedule, min(self.n_t, schedule.steps)).tolist()
        was_training = model.training
        model.eval()
        try:
            best, best_loss = x.clone(), torch.full((len(x),), -math.inf, dtype=torch.float64, device=x.device)
            for _ in range(self.restarts):
                if self.random_start:
                    start = 2 * torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) - 1
                    x_cur = project(x, x + self.eps * start, self.eps, "linf")
                else:
                    x_cur = x.clone()
                noises = [torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) for _ in ts]
                for step in range(self.steps + 1):
                    x_cur = x_cur.detach().requires_grad_(step < self.steps)
                    with torch.set_grad_enabled(step < self.steps):
                        loss = weighted_error(model, schedule, x_cur, ts, noises)
                    better = loss.detach() > best_loss
                    best[better], best_loss[better] = x_cur.detach()[better], loss.detach()[better]
                    if step < self.steps:
                        (grad,) = torch.autograd.grad(loss.sum(), x_cur)
                        x_cur = project(x, x_cur.detach() + self.step_size * grad.sign(), self.eps, "linf")
        finally:
            model.train(was_training)
        return best


def denoise_attack_settings(cond: Any) -> dict[str, Any]:
    """The denoising-loss PGD a condition runs, with every default resolved (for the record)."""
    atk = DenoisePGD(**dict(cond.params))
    return {"attack": type(atk).__name__, "norm": atk.norm, "settings": dataclasses.asdict(atk),
            "step_size": atk.step_size}
