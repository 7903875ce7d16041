"""Out-of-distribution scores computed from logits.

Contract of an ood-score plugin: ``score(logits) -> scores`` with logits a float tensor
(N, K) and scores a float tensor (N,) where **higher means more in-distribution**.
"""

from __future__ import annotations

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
