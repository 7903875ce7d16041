"""Ancestral sampling and the quality of a set of samples as the suite's judge classifier sees it:
the Frechet distance of its features and the total-variation distance of the class mix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from harness.errors import ConfigError
from harness.tasks.denoise.schedule import NoiseSchedule, to_unit


def sample(model: nn.Module, schedule: NoiseSchedule, n: int, generator: torch.Generator,
           shape: tuple[int, int, int] | None = None, clip_denoised: bool = True) -> torch.Tensor:
    """Ancestral DDPM sampling (the paper's Algorithm 2): (n, C, H, W) float32 images in [0, 1].

    ``x_T ~ N(0, I)``; for t = T-1 .. 0: ``x_{t-1} = mu(x_t, t) + sigma_t z`` with
    ``sigma_t^2 = beta_t`` (the variance the ELBO weights assume) and no noise at t = 0. The mean
    is the posterior mean of q(x_{t-1} | x_t, x0_hat) for the model's estimate
    ``x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_bar_t)``; with ``clip_denoised``
    (default, as in the paper's code) x0_hat is clipped to [-1, 1] first, and without it the mean
    is the paper's ``(x_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_t)`` exactly.

    ``shape`` is (C, H, W), by default the model's ``in_shape``. Draws x_T, then one z per step
    with t > 0, from ``generator`` (on the model's device). Runs without gradients in eval mode and
    restores the model's mode."""
    shape = shape if shape is not None else getattr(model, "in_shape", None)
    if shape is None:
        raise ConfigError("sample() needs the image shape: the model has no in_shape",
                          hint="pass shape=(C, H, W)")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"sample() needs a positive number of images, got {n!r}", hint="use e.g. n=64")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    s = schedule
    coef_x0 = torch.tensor(s.betas * np.sqrt(s.alphas_bar_prev) / (1 - s.alphas_bar), device=device)
    coef_xt = torch.tensor((1 - s.alphas_bar_prev) * np.sqrt(s.alphas) / (1 - s.alphas_bar), device=device)
    ab = torch.tensor(s.alphas_bar, device=device)
    sigma = torch.tensor(np.sqrt(s.betas), device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = torch.randn((n, *shape), generator=generator, device=device)
            for step in reversed(range(s.steps)):
                t = torch.full((n,), step, dtype=torch.int64, device=device)
                eps = model(x, t)
                x0_hat = (x - (1 - ab[step]).sqrt().float() * eps) / ab[step].sqrt().float()
                if clip_denoised:
                    x0_hat = x0_hat.clamp(-1, 1)
                x = coef_x0[step].float() * x0_hat + coef_xt[step].float() * x
                if step > 0:
                    x = x + sigma[step].float() * torch.randn(x.shape, generator=generator, device=device)
    finally:
        model.train(was_training)
    return to_unit(x)




def feature_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two sets of feature vectors, (n, D) and
    (m, D) -> float >= 0; lower is better (0 for identical sets). The FID's formula:

        ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))

    with sample means and covariances (ddof = 1); it grows with the squared distance of the means.
    The trace of the matrix square root is computed as ``Tr((S_a^(1/2) S_b S_a^(1/2))^(1/2))``,
    which has the same eigenvalues but is symmetric positive semi-definite, so both roots come
    from ``eigh`` with eigenvalues clipped at 0: a singular covariance (fewer vectors than
    dimensions, constant features) gives a finite real value without the complex parts and
    warnings of ``scipy.linalg.sqrtm`` on the non-symmetric product, and the same value where
    that is well defined. Numpy in, no randomness.
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    for name, f in (("features_a", a), ("features_b", b)):
        if f.ndim != 2 or len(f) < 2:
            raise ValueError(f"{name} must be (n, D) with n >= 2; got shape {f.shape}")
        if not np.isfinite(f).all():
            raise ValueError(f"{name} has non-finite values")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature widths differ: {a.shape[1]} and {b.shape[1]}")
    mean_term = float(np.sum((a.mean(0) - b.mean(0)) ** 2))
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    eig_a, vec_a = np.linalg.eigh(cov_a)
    root_a = (vec_a * np.sqrt(np.clip(eig_a, 0, None))) @ vec_a.T
    inner = root_a @ cov_b @ root_a
    trace_root = float(np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None))))
    return max(0.0, mean_term + float(np.trace(cov_a) + np.trace(cov_b)) - 2 * trace_root)


def class_tv(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    """Total-variation distance between the class histogram of predictions ``pred`` (n,) and of
    reference labels ``labels`` (m,), both integers in 0 .. n_classes - 1: half the L1 distance
    of the two class frequency vectors, in [0, 1], lower is better (0: the same class mix)."""
    p = np.bincount(np.asarray(pred, dtype=np.int64), minlength=n_classes)[:n_classes] / max(len(pred), 1)
    q = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes)[:n_classes] / max(len(labels), 1)
    return float(0.5 * np.abs(p - q).sum())


@dataclass(frozen=True, eq=False)
class Judge:
    """The suite's own trained classifier, which judges generated samples: ``model`` (eval mode,
    with ``features(x)``), and its features (n, D) of the real test images."""

    model: nn.Module
    test_features: np.ndarray


def sample_quality(model: nn.Module, schedule: NoiseSchedule, judge: Judge, y_test: np.ndarray, n: int,
                   generator: torch.Generator, batch_size: int) -> dict[str, np.ndarray]:
    """Generate ``n`` samples (:func:`sample`, in batches of ``batch_size`` from one generator) and
    judge them: ``pred`` (n,) int64 and ``confidence`` (n,) the judge's class and its softmax
    probability; ``class_counts`` (K,) the histogram of ``pred``; ``class_tv`` (1,) the
    total-variation distance of that histogram from the test labels' (:func:`class_tv`) and
    ``fid`` (1,) the Frechet distance (:func:`feature_distance`) between the judge's penultimate
    features of the samples and of the test images; both lower is better."""
    from harness.tasks.classify.evaluation import features, predict

    xs = torch.cat([sample(model, schedule, min(batch_size, n - i), generator) for i in range(0, n, batch_size)])
    logits = predict(judge.model, xs, batch_size)
    probs = logits.double().softmax(1)
    pred = probs.argmax(1).cpu().numpy().astype(np.int64)
    k = logits.shape[1]
    fid = feature_distance(features(judge.model, xs, batch_size).cpu().numpy(), judge.test_features)
    return {"pred": pred, "confidence": probs.max(1).values.cpu().numpy(),
            "class_counts": np.bincount(pred, minlength=k).astype(np.int64),
            "class_tv": np.array([class_tv(pred, y_test, k)]), "fid": np.array([fid])}
