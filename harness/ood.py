"""Out-of-distribution scores, from logits or from penultimate features.

Contract of an ood-score plugin: scores a float tensor (N,) where **higher means more
in-distribution**, and either

* a logit score: ``score(logits) -> scores`` with logits a float tensor (N, K); or
* a feature score: a class with ``needs = "features"`` whose ``Score().fit(features, labels)``
  takes the training split's penultimate features (N, D) (the model's ``features(x)``) and
  labels (N,), and returns ``score(features (M, D)) -> (M,)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def msp(logits: torch.Tensor) -> torch.Tensor:
    """Maximum softmax probability (Hendrycks & Gimpel, 2017); higher = more in-distribution."""
    return logits.softmax(dim=1).max(dim=1).values


def max_logit(logits: torch.Tensor) -> torch.Tensor:
    """Maximum logit (Hendrycks et al., 2022); higher = more in-distribution."""
    return logits.max(dim=1).values


def energy(logits: torch.Tensor) -> torch.Tensor:
    """Negative free energy, logsumexp of the logits (Liu et al., 2020); higher = more in-distribution."""
    return torch.logsumexp(logits, dim=1)


class Mahalanobis:
    """Mahalanobis distance on penultimate features (Lee et al., 2018); higher = more in-distribution.

    The score is minus the squared Mahalanobis distance of an input's features to the nearest
    class mean, under one covariance shared by the classes, both fitted on the training split.

    A feature-based score (``needs = "features"``): ``Mahalanobis().fit(features, labels)``
    with training features (N, D) and labels (N,) returns ``score(features (M, D)) -> (M,)``.
    ``ridge`` (relative to the mean variance) keeps the covariance invertible when D is large
    or features are degenerate (ReLU units that never fire).
    """

    needs = "features"

    def __init__(self, ridge: float = 1e-6) -> None:
        self.ridge = ridge

    def fit(self, features: torch.Tensor, labels: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        f = features.detach().double()
        classes = labels.unique()
        means = torch.stack([f[labels == c].mean(0) for c in classes])  # (C, D)
        centred = f - means[torch.searchsorted(classes, labels)]
        cov = centred.T @ centred / len(f)
        eye = torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
        precision = torch.linalg.pinv(cov + self.ridge * max(float(cov.diagonal().mean()), 1e-12) * eye,
                                      hermitian=True)

        def score(x: torch.Tensor) -> torch.Tensor:
            x = x.detach().double()
            dist = torch.stack([((x - m) @ precision * (x - m)).sum(1) for m in means], 1)  # (M, C)
            return -dist.min(1).values.to(features.dtype)

        return score
