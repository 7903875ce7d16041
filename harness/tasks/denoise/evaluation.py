"""A trained denoiser on every condition of a denoise suite's battery."""

from __future__ import annotations

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


def evaluate_denoiser(model: nn.Module, schedule: NoiseSchedule, x_test: np.ndarray, y_test: np.ndarray,
                      ood_sets: dict[str, np.ndarray], conditions: list[Any], seed: int, condition_seed: int,
                      batch_size: int = 512, device: str = "cpu", n_t: int = 10, judge: Judge | None = None,
                      n_samples: int = 256) -> Any:
    """Yield (condition, per-example outcome) for each condition of a denoise suite, in order.

    * clean, shift: ``denoise_loss`` (N,), :func:`negative_elbo` of the (shifted) test images,
      lower is better; shifted images as the classifiers get them (generator keyed on the
      condition seed and the shift), so every model sees the same ones;
    * ood: ``score_in`` (N,) and ``score_out`` (M,), the ELBO score (higher = more
      in-distribution) of the test images and of the OOD set;
    * attack ``pgd-linf``: :class:`DenoisePGD` (its parameters from the condition, its random start and
      objective noise from ``torch_generator(seed, condition key)``), then ``denoise_loss`` of
      x_adv as for clean (so eps = 0 gives the clean values exactly), and ``linf`` / ``l2``;
    * samples: :func:`sample_quality` with ``n_samples`` samples from the seed's
      ``torch_generator(seed, "samples")`` (every variant of a seed starts from the same noise).

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
            delta = (x_adv - x).flatten(1)
            yield cond, {"denoise_loss": loss_of(x_adv), "linf": delta.abs().max(1).values.double().cpu().numpy(),
                         "l2": delta.norm(dim=1).double().cpu().numpy()}
        elif cond.kind == "samples":
            if judge is None:
                raise ConfigError("the samples condition needs the suite's judge classifier",
                                  hint="pass judge= to evaluate_denoiser (the runner trains it once per run)")
            gen = torch_generator(seed, "samples", device=dev.type)
            yield cond, sample_quality(model, schedule, judge, np.asarray(y_test), n_samples, gen, batch_size)
        else:
            raise ValueError(f"a denoise suite has no condition kind {cond.kind!r}")
