"""A trained denoiser on every condition of a denoise suite's battery."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.data import as_tensor
from harness.errors import ConfigError
from harness.seeding import torch_generator
from harness.tasks.denoise.attack import DenoisePGD
from harness.tasks.denoise.objective import negative_elbo
from harness.tasks.denoise.sampling import Judge, sample_quality
from harness.tasks.denoise.schedule import NoiseSchedule


def _worse(x_a: torch.Tensor, loss_a: np.ndarray, x_b: torch.Tensor,
           loss_b: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """Per example, the input (N, C, H, W) with the higher loss (N,) of two, and that loss: both
    losses are on the same draws of (timestep, noise) per example (:func:`negative_elbo`), so the
    larger is the worse input for the model; ties keep ``a``."""
    take_b = loss_b > loss_a
    out = x_a.clone()
    out[torch.as_tensor(take_b, device=x_a.device)] = x_b[torch.as_tensor(take_b, device=x_b.device)]
    return out, np.where(take_b, loss_b, loss_a)


def _stronger(model: nn.Module, schedule: NoiseSchedule, x: torch.Tensor, eps: float,
              kept_at: dict[tuple[tuple[Any, ...], float], tuple[DenoisePGD, torch.Tensor, np.ndarray]],
              seed: int, key: str, batch_size: int, loss_of: Any) -> dict[str, np.ndarray]:
    """Evidence for "twice the steps change little": per example, the worst loss the suite's PGD
    sweeps found at ``eps`` (``denoise_loss_base``, (N,)), and the worst of that and of the most
    thorough of those attacks (steps x restarts) run again with twice its steps (``denoise_loss``):
    an attack that has converged gains little. {} where no sweep ran a non-zero ``eps``."""
    found = [v for (_, e), v in kept_at.items() if e == eps and eps > 0]
    if not found:
        return {}
    base = np.max([loss for _, _, loss in found], axis=0)
    top = max((atk for atk, _, _ in found), key=lambda a: a.steps * a.restarts)
    doubled = dataclasses.replace(top, steps=2 * top.steps)
    gen = torch_generator(seed, key, device=x.device.type)
    x_more = torch.cat([doubled.perturb(model, schedule, x[i:i + batch_size], gen)
                        for i in range(0, len(x), batch_size)])
    return {"denoise_loss_base": base, "denoise_loss": np.maximum(base, loss_of(x_more))}


def evaluate_denoiser(model: nn.Module, schedule: NoiseSchedule, x_test: np.ndarray, y_test: np.ndarray,
                      ood_sets: dict[str, np.ndarray], conditions: list[Any], seed: int, condition_seed: int,
                      batch_size: int = 512, device: str = "cpu", n_t: int = 10, judge: Judge | None = None,
                      n_samples: int = 256, x_train: np.ndarray | None = None) -> Any:
    """Yield (condition, per-example outcome) for each condition of a denoise suite, in order.

    * clean, shift: ``denoise_loss`` (N,), :func:`negative_elbo` of the (shifted) test images,
      lower is better; shifted images as the classifiers get them (generator keyed on the
      condition seed and the shift), so every model sees the same ones;
    * ood: ``score_in`` (N,) and ``score_out`` (M,), the ELBO score (higher = more
      in-distribution) of the test images and of the OOD set;
    * attack ``pgd-linf``: :class:`DenoisePGD` (its parameters from the condition, its random start and
      objective noise from ``torch_generator(seed, condition key)``), then ``denoise_loss`` of
      x_adv as for clean (so eps = 0 gives the clean values exactly), and ``linf`` / ``l2``. Per
      example, a sweep (the attack's parameters but eps, its eps ascending) keeps the worst input found
      at a smaller eps where it scores a higher loss: that input lies in the larger ball too, and both
      are scored on the same draws, so the loss never falls with eps (as a classifier's sweep keeps
      what a smaller eps broke);
    * check ``stronger``: :func:`_stronger`, after the sweeps it reads;
    * samples: :func:`sample_quality` with ``n_samples`` samples from the seed's
      ``torch_generator(seed, "samples")`` (every variant of a seed starts from the same noise);
    * membership (the loss-threshold attack, harness.membership): ``score_in`` (k,) the negative
      :func:`negative_elbo` of k training images ``x_train`` (harness.membership.member_sample, seeded by
      ``condition_seed``), ``score_out`` (N,) the test images', and ``member_index`` (k,). The loss is a
      Monte Carlo estimate, and every call draws the same noise per position: with k = N (members as
      many as test images, the usual case) member i and test image i get the same timesteps and noise, so
      the draws cancel out of the comparison.

    ``seed`` is the training seed; ``n_t`` the ELBO's timesteps; the model is used in eval mode.
    """
    from harness.registry import shifts
    from harness.specs import shift

    dev = torch.device(device)
    model.to(dev).eval()
    x = as_tensor(x_test, dev)
    clean_loss: np.ndarray | None = None

    def loss_of(images: torch.Tensor) -> np.ndarray:
        return negative_elbo(model, schedule, images, seed, n_t, batch_size)

    # per attack sweep (its parameters but eps): the worst input per example so far and its loss, and
    # what each eps of it found (the "stronger" check reruns the sweep's attack with twice its steps)
    kept: dict[tuple[Any, ...], tuple[torch.Tensor, np.ndarray]] = {}
    kept_at: dict[tuple[tuple[Any, ...], float], tuple[DenoisePGD, torch.Tensor, np.ndarray]] = {}

    for cond in conditions:
        if cond.kind == "clean":
            clean_loss = loss_of(x) if clean_loss is None else clean_loss
            yield cond, {"denoise_loss": clean_loss}
        elif cond.kind == "shift":
            gen = torch_generator(condition_seed, shift(cond.name, cond.param("severity")).key, device=dev.type)
            yield cond, {"denoise_loss": loss_of(shifts.get(cond.name)(x, cond.param("severity"), gen))}
        elif cond.kind == "ood":
            s_in = -(loss_of(x) if clean_loss is None else clean_loss)
            s_out = -loss_of(as_tensor(ood_sets[cond.name], dev))
            yield cond, {"score_in": s_in, "score_out": s_out}
        elif cond.kind == "attack":
            gen = torch_generator(seed, cond.key, device=dev.type)
            atk = DenoisePGD(**dict(cond.params))
            x_adv = torch.cat([atk.perturb(model, schedule, x[i:i + batch_size], gen)
                               for i in range(0, len(x), batch_size)])
            loss = loss_of(x_adv)
            sweep = tuple(p for p in cond.params if p[0] != "eps")
            if sweep in kept:  # the worst input found at a smaller eps lies in this ball too
                x_adv, loss = _worse(x_adv, loss, *kept[sweep])
            kept[sweep] = (x_adv, loss)
            kept_at[(sweep, cond.param("eps"))] = (atk, x_adv, loss)
            delta = (x_adv - x).flatten(1)
            yield cond, {"denoise_loss": loss, "linf": delta.abs().max(1).values.double().cpu().numpy(),
                         "l2": delta.norm(dim=1).double().cpu().numpy()}
        elif cond.kind == "check" and cond.name == "stronger":
            yield cond, _stronger(model, schedule, x, cond.param("eps"), kept_at, seed, cond.key, batch_size,
                                  loss_of)
        elif cond.kind == "samples":
            if judge is None:
                raise ConfigError("the samples condition needs the suite's judge classifier",
                                  hint="pass judge= to evaluate_denoiser (the runner trains it once per run)")
            gen = torch_generator(seed, "samples", device=dev.type)
            yield cond, sample_quality(model, schedule, judge, np.asarray(y_test), n_samples, gen, batch_size)
        elif cond.kind == "membership":
            if x_train is None:
                raise ValueError("a membership condition scores training images, and none were given")
            from harness.membership import member_sample

            idx = member_sample(len(x_train), len(x), condition_seed)
            clean_loss = loss_of(x) if clean_loss is None else clean_loss
            yield cond, {"score_in": -loss_of(as_tensor(x_train[idx], dev)), "score_out": -clean_loss,
                         "member_index": idx}
        else:
            raise ValueError(f"a denoise suite has no condition kind {cond.kind!r}")
