"""Evaluation of one trained model on every condition of a suite's battery.

The model runs in eval mode throughout, and BatchNorm uses its running statistics (the
``frozen`` test-time mode) unless a clean or shift condition names another mode (``batch``,
``adapt``: see :func:`predict_bn`). Every condition is predicted with the same batch
boundaries, so attack conditions at eps = 0 reproduce the clean predictions bit for bit.

Per-example outcomes per condition (all arrays of length N = test examples unless noted):

* clean, shift, natural, attack: ``pred`` (int64), ``correct`` (bool), ``confidence`` (max softmax),
  ``loss`` (cross-entropy, the NLL in nats), ``brier`` (squared distance of the softmax from the
  one-hot label, in [0, 2]), ``label``; attacks add ``linf`` and ``l2``, the size of each perturbation;
  an attack at eps counts an example as broken when it was broken at eps or at any smaller
  eps of the same sweep (worst case: that input lies in the larger ball too);
* check: the evidence of one adversarial sanity check (see ``_check``);
* ood: ``score_in`` (N,) on the test split and ``score_out`` (M,) on the OOD set, higher =
  more in-distribution;
* membership (the loss-threshold attack): ``score_in`` (k,) on members (training examples) and
  ``score_out`` (N,) on the test split, the negative loss (higher = more likely a member), and
  ``member_index`` (:func:`membership_scores`);
* cost (``cost``, ``cost:fold=True``): the model's inference cost on the test images (harness.inference.cost_arrays:
  per-repeat latency, throughput, peak memory, parameters and FLOPs, each (R,) for R repeats; ``folded`` and
  ``threads`` (1,)).

A model whose logits or features hold NaN or inf for any input raises a ValueError at that condition
(:func:`finite`): nothing computed from them would mean anything, and the worker stores the failure
as that condition's cell.

Shifted inputs depend only on the shift and severity, so every variant, seed and BatchNorm
mode sees the same shifted images; an attack's random start depends on the seed and the condition, so the two variants
of a paired comparison start from the same points.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.data import as_tensor
from harness.seeding import torch_generator
from harness.specs import Condition, shift

Outcome = dict[str, np.ndarray]


def finite(out: torch.Tensor, what: str) -> torch.Tensor:
    """``out`` (N, ...), one row per input, when every value is finite; else a ValueError saying for
    how many of the N inputs the model gave NaN or inf. Nothing computed from such outputs means
    anything (the argmax of a row of NaN is still a class), so the condition fails instead of
    storing it (harness.worker stores the failure as that condition's cell)."""
    bad = int((~torch.isfinite(out.reshape(len(out), -1)).all(1)).sum()) if out.numel() else 0
    if bad:
        raise ValueError(f"the model's {what} hold NaN or inf for {bad} of {len(out)} inputs (NaN or inf "
                         "weights or inputs, or an overflow)")
    return out


def predict(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Logits (N, K) for inputs (N, C, H, W), in eval mode, in fixed batches; a ValueError when
    any is NaN or inf (:func:`finite`)."""
    if model.training:
        raise RuntimeError("predict() needs the model in eval mode; call model.eval() first")
    with torch.no_grad():
        return finite(torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]), "logits")


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def predict_bn(model: nn.Module, x: torch.Tensor, batch_size: int, bn_mode: str) -> torch.Tensor:
    """Logits (N, K) with BatchNorm's statistics used as ``bn_mode`` says; the model stays in
    eval mode otherwise and is left as it was found.

    * ``frozen``: the running statistics from training (plain :func:`predict`);
    * ``batch``: each batch's own statistics (batches of ``batch_size``, the last one merged
      into the one before when it would hold a single example); running statistics untouched;
    * ``adapt``: statistics re-estimated on ``x`` (a cumulative average over its batches, on a
      copy of the model), then used frozen: test-time adaptation of BatchNorm alone.

    A model without BatchNorm gives the frozen logits in every mode.
    """
    bns = _batchnorms(model)
    if bn_mode == "frozen" or not bns:
        return predict(model, x, batch_size)
    bounds = list(range(0, len(x), batch_size)) + [len(x)]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        del bounds[-2]
    if bn_mode == "batch":
        saved = [(m.training, m.track_running_stats) for m in bns]
        try:
            for m in bns:  # training-mode normalisation without touching the running statistics
                m.train()
                m.track_running_stats = False
            with torch.no_grad():
                return finite(torch.cat([model(x[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]), "logits")
        finally:
            for m, (training, track) in zip(bns, saved, strict=True):
                m.train(training)
                m.track_running_stats = track
    if bn_mode == "adapt":
        adapted = copy.deepcopy(model)
        for m in _batchnorms(adapted):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batches
            m.train()
        with torch.no_grad():
            for a, b in zip(bounds, bounds[1:], strict=False):
                adapted(x[a:b])
        return predict(adapted.eval(), x, batch_size)
    raise ValueError(f"unknown BatchNorm test-time mode {bn_mode!r}")


def outcomes(logits: torch.Tensor, y: torch.Tensor) -> Outcome:
    pred = logits.argmax(1)
    probs = logits.double().softmax(1)
    return {
        "pred": pred.cpu().numpy().astype(np.int64),
        "correct": (pred == y).cpu().numpy(),
        "confidence": probs.max(1).values.cpu().numpy(),
        "loss": F.cross_entropy(logits, y, reduction="none").double().cpu().numpy(),
        "brier": (probs - F.one_hot(y, probs.shape[1]).double()).pow(2).sum(1).cpu().numpy(),
        "label": y.cpu().numpy().astype(np.int64),
    }


def attack_settings(cond: Condition) -> dict[str, Any]:
    """The attack a condition runs, with every default resolved (written into each record, so a
    report states the step size, steps, restarts and loss that were used)."""
    from harness.registry import attacks

    atk = attacks.get(cond.name)(eps=cond.param("eps"), **{k: v for k, v in cond.params if k != "eps"})
    settings = dataclasses.asdict(atk) if dataclasses.is_dataclass(atk) and not isinstance(atk, type) else {}
    step = getattr(atk, "step_size", None)
    return {"attack": type(atk).__name__, "norm": getattr(atk, "norm", "linf"), "settings": settings,
            **({"step_size": step} if step is not None else {})}


SweepKey = tuple[str, tuple[tuple[str, Any], ...]]  # (attack name, every parameter but eps)


@dataclass(eq=False)
class _Sweeps:
    """What every attack sweep of one model found so far, reused at larger eps.

    ``last[key]`` is the largest eps done and, per example, whether it was broken (N,) bool and
    the adversarial input; ``correct[(key, eps)]`` is the per-example outcome at each eps."""

    last: dict[SweepKey, tuple[float, torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    correct: dict[tuple[SweepKey, float], torch.Tensor] = field(default_factory=dict)
    attacks: dict[SweepKey, Any] = field(default_factory=dict)  # an instance of each sweep's attack


def _sweep_key(name: str, params: dict[str, Any]) -> SweepKey:
    return name, tuple(sorted(params.items()))


def _batched(fn: Any, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([fn(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def _attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str, eps: float, params: dict[str, Any],
            gen: torch.Generator, batch_size: int, sweeps: _Sweeps, given: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Adversarial inputs and their logits for one attack at one eps.

    An example broken at a smaller eps of the same sweep stays broken (its adversarial input
    lies in this larger ball too), so only the examples still classified correctly are attacked.
    At eps = 0 the ball is the input itself, so nothing is run. ``given``: the adversarial inputs
    (N, C, H, W) this computation gives, computed elsewhere (harness.batched.battery_many attacks
    the seeds of a variant at once, the same way); the model only predicts them.
    """
    from harness.registry import attacks

    atk = attacks.get(name)(eps=eps, **params)
    key = _sweep_key(name, params)
    if given is not None:
        if given.shape != x.shape:
            raise ValueError(f"adversarial inputs of shape {tuple(given.shape)} given for inputs {tuple(x.shape)}")
        x_adv = given
    else:
        x_adv = x.clone()
        todo = torch.ones(len(x), dtype=torch.bool, device=x.device)
        prev = sweeps.last.get(key)
        if prev is not None and prev[0] <= eps:
            _, broken, prev_adv = prev
            x_adv[broken] = prev_adv[broken]
            todo = ~broken
        idx = todo.nonzero().squeeze(1)
        if len(idx) and eps > 0:
            x_adv[idx] = _batched(lambda a, b: atk.perturb(model, a, b, generator=gen), x[idx], y[idx], batch_size)
    logits = predict(model, x_adv, batch_size)
    ok = logits.argmax(1) == y
    sweeps.last[key] = (eps, ~ok, x_adv)
    sweeps.correct[(key, eps)] = ok
    sweeps.attacks[key] = atk
    return x_adv, logits


def _pgd_params(cond: Condition) -> dict[str, Any]:
    """The suite's PGD parameters a check condition carries (eps aside)."""
    return {k: v for k, v in cond.params if k != "eps"}


def _check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cond: Condition, gen: torch.Generator,
           batch_size: int, clean_logits: torch.Tensor, source: nn.Module | None, sweeps: _Sweeps) -> Outcome:
    """Per-example evidence for one sanity check of the adversarial battery (see CHECKS)."""
    from harness.attacks import PGD, loss_grad

    def pgd_correct(params: dict[str, Any], attacked: nn.Module) -> torch.Tensor:
        """Whether ``model`` still classifies each example correctly after PGD computed on ``attacked``."""
        atk = PGD(eps=cond.param("eps"), **params)
        x_adv = _batched(lambda a, b: atk.perturb(attacked, a, b, generator=gen), x, y, batch_size)
        return predict(model, x_adv, batch_size).argmax(1) == y

    def np_(t: torch.Tensor) -> np.ndarray:
        return t.cpu().numpy()

    name = cond.name
    if name == "gradients":
        grads = _batched(lambda a, b: loss_grad(model, a, b, "ce")[1], x, y, batch_size)
        return {"grad_l1": grads.flatten(1).abs().sum(1).double().cpu().numpy()}
    if name == "repeat":
        again = predict(model, x, batch_size)
        return {"max_abs_diff": np.array([float((again - clean_logits).abs().max())])}
    if name == "batch-composition":
        # the same examples in another order and other batch sizes, and one at a time
        perm = torch.randperm(len(x), generator=gen, device=x.device)
        shuffled = torch.empty_like(clean_logits)
        shuffled[perm] = predict(model, x[perm], max(2, batch_size // 3))
        diff = (shuffled - clean_logits).abs().amax(1)
        n_single = min(32, len(x))
        single = predict(model, x[:n_single], 1)
        diff[:n_single] = torch.maximum(diff[:n_single], (single - clean_logits[:n_single]).abs().amax(1))
        same = shuffled.argmax(1) == clean_logits.argmax(1)
        same[:n_single] &= single.argmax(1) == clean_logits[:n_single].argmax(1)
        scale = clean_logits.abs().amax(1).clamp_min(1.0)  # float rounding grows with the logits
        return {"max_abs_diff": diff.double().cpu().numpy(), "logit_scale": scale.double().cpu().numpy(),
                "pred_same": np_(same)}
    if name == "noise":
        signs = torch.randint(0, 2, x.shape, generator=gen, device=x.device).to(x.dtype) * 2 - 1
        return {"correct": np_(predict(model, (x + cond.param("eps") * signs).clamp(0, 1), batch_size).argmax(1) == y)}
    if name == "stronger":
        return _stronger(model, x, y, cond.param("eps"), gen, batch_size, sweeps)
    if name == "large-eps":
        _, logits = _attack(model, x, y, "pgd-linf", cond.param("eps"), _pgd_params(cond), gen, batch_size, sweeps)
        return {"correct": np_(logits.argmax(1) == y)}
    if name == "transfer":
        if source is None:
            return {}  # no paired variant to transfer from (the baseline itself, or it diverged)
        source.eval()
        return {"correct": np_(pgd_correct(_pgd_params(cond), source))}
    raise ValueError(f"unknown check {name!r}")


def _effort(atk: Any) -> int:
    return int(getattr(atk, "steps", 0)) * int(getattr(atk, "restarts", 1))


def _stronger(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, gen: torch.Generator,
              batch_size: int, sweeps: _Sweeps) -> Outcome:
    """Evidence for "more effort changes little": per example, robust under the worst case of
    every L-inf attack the suite ran at ``eps`` (``correct_base``), and still robust after the
    suite's most thorough L-inf attack (most steps x restarts) is run again with twice its steps
    on the examples left standing (``correct``): an attack that has converged gains little.
    Needs the suite's attack conditions evaluated first, in the same call (the runner
    guarantees it)."""
    linf = {k: a for k, a in sweeps.attacks.items() if getattr(a, "norm", "linf") == "linf"}
    base = [sweeps.correct[(k, eps)] for k in linf if (k, eps) in sweeps.correct]
    iterative = [a for a in linf.values() if _effort(a) > 0]
    if not base or not iterative:
        return {}  # the suite ran no iterative L-inf attack at this eps: not applicable
    ok = torch.stack(base).all(0)
    top = max(iterative, key=_effort)
    doubled = dataclasses.replace(top, eps=eps, steps=2 * top.steps)
    more = ok.clone()
    idx = ok.nonzero().squeeze(1)
    if len(idx):
        x_adv = _batched(lambda a, b: doubled.perturb(model, a, b, generator=gen), x[idx], y[idx], batch_size)
        more[idx] = predict(model, x_adv, batch_size).argmax(1) == y[idx]
    return {"correct_base": ok.cpu().numpy(), "correct": more.cpu().numpy()}


CHECKS = ("gradients", "repeat", "batch-composition", "noise", "stronger", "large-eps", "transfer")


def features(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Penultimate features (N, D) of inputs (N, C, H, W): the model's ``features(x)``, in eval
    mode, in fixed batches; a ValueError when any is NaN or inf (:func:`finite`)."""
    if model.training:
        raise RuntimeError("features() needs the model in eval mode; call model.eval() first")
    extract: Any = model.features  # part of the model plugin contract (harness.models)
    with torch.no_grad():
        return finite(torch.cat([extract(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]), "features")


def fit_feature_score(model: nn.Module, name: str, fit_data: tuple[np.ndarray, np.ndarray] | None,
                       batch_size: int, dev: torch.device) -> Any:
    from harness.errors import ConfigError
    from harness.registry import ood_scores

    if fit_data is None:
        raise ConfigError(f"the OOD score {name!r} is fitted on training features, and no training data was given",
                          hint="pass fit_data=(x_train, y_train) to evaluate()")
    x_fit, y_fit = as_tensor(fit_data[0], dev), as_tensor(fit_data[1], dev)
    return ood_scores.get(name)().fit(features(model, x_fit, batch_size), y_fit)


class OodScorer:
    """The OOD scores of one model (eval mode) on its test inputs ``x`` (whose ``clean_logits`` are
    known) against OOD inputs: a logit score (MSP, energy, ...) from the logits, a feature score
    (Mahalanobis) fitted once on the training ``fit_data`` features. Higher = more in-distribution."""

    def __init__(self, model: nn.Module, x: torch.Tensor, clean_logits: torch.Tensor,
                 fit_data: tuple[np.ndarray, np.ndarray] | None, batch_size: int, dev: torch.device) -> None:
        self.model, self.x, self.clean_logits = model, x, clean_logits
        self.fit_data, self.batch_size, self.dev = fit_data, batch_size, dev
        self._fitted: dict[str, Any] = {}  # feature-based scores, fitted once per model
        self._test_features: list[torch.Tensor] = []  # the test inputs' features, once computed

    def arrays(self, name: str, x_out: torch.Tensor) -> dict[str, np.ndarray]:
        """``score_in`` (N,) of the test inputs and ``score_out`` (M,) of ``x_out`` by the score ``name``."""
        from harness.registry import ood_scores

        model, bs = self.model, self.batch_size
        if getattr(ood_scores.get(name), "needs", "logits") == "features":
            if name not in self._fitted:
                self._fitted[name] = fit_feature_score(model, name, self.fit_data, bs, self.dev)
            if not self._test_features:
                self._test_features.append(features(model, self.x, bs))
            s_in, s_out = self._fitted[name](self._test_features[0]), self._fitted[name](features(model, x_out, bs))
        else:
            score = ood_scores.get(name)
            s_in, s_out = score(self.clean_logits), score(predict(model, x_out, bs))
        return {"score_in": s_in.double().cpu().numpy(), "score_out": s_out.double().cpu().numpy()}


def membership_scores(model: nn.Module, train: tuple[np.ndarray, np.ndarray], test_logits: torch.Tensor,
                      y_test: torch.Tensor, split_seed: int, batch_size: int, dev: torch.device,
                      design_seed: int | None = None) -> Outcome:
    """The loss-threshold attack's arrays (harness.membership): ``score_in`` (k,) the negative cross-entropy
    of the members (harness.membership.member_sample of the training examples ``train``, (x, y)),
    ``score_out`` (N,) that of the test examples (their logits ``test_logits`` (N, K), labels ``y_test``),
    and ``member_index`` (k,) which training examples the members are. The loss is computed in float64 from
    the logits, so a model that fits its members almost perfectly still ranks them (float32 rounds such
    losses to 0, which would tie them).

    ``design_seed``: the model trained on that seed's half of ``train`` (the membership design), so the
    members are drawn from the half, and every training example (the pool, P of them) is scored as well:
    ``phi`` (P,) the logit-scaled confidence in the true class (harness.membership.logit_confidence) and
    ``in_mask`` (P,) the half, what LiRA reads across seeds."""
    from harness.membership import half, logit_confidence, member_sample

    n_train = len(train[1])
    pool = np.arange(n_train) if design_seed is None else half(n_train, design_seed).nonzero()[0]
    idx = pool[member_sample(len(pool), len(y_test), split_seed)]
    out: Outcome = {}
    if design_seed is not None:
        logits = predict(model, as_tensor(train[0], dev), batch_size)
        out = {"phi": logit_confidence(logits.double().cpu().numpy(), train[1]), "in_mask": half(n_train, design_seed)}
        in_logits = logits[torch.as_tensor(idx, device=logits.device)]
    else:
        in_logits = predict(model, as_tensor(train[0][idx], dev), batch_size)
    loss_in = F.cross_entropy(in_logits.double(), as_tensor(train[1][idx], dev), reduction="none")
    loss_out = F.cross_entropy(test_logits.double(), y_test, reduction="none")
    return {"score_in": -loss_in.cpu().numpy(), "score_out": -loss_out.cpu().numpy(), "member_index": idx, **out}


def evaluate(model: nn.Module, x_test: np.ndarray, y_test: np.ndarray, ood_sets: Mapping[str, np.ndarray],
             conditions: list[Condition], seed: int, condition_seed: int, batch_size: int = 512,
             device: str = "cpu", transfer_source: nn.Module | None = None,
             fit_data: tuple[np.ndarray, np.ndarray] | None = None,
             natural_sets: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
             adversarial: Mapping[str, torch.Tensor] | None = None, cost: tuple[int, int] = (256, 20),
             membership_design: bool = False) -> Iterator[tuple[Condition, Outcome]]:
    """Yield (condition, per-example outcome) for each condition, in order.

    ``x_test`` (N, C, H, W) float32 in [0, 1], ``y_test`` (N,) int64; ``ood_sets`` maps a set
    name to images already fitted to the test shape; ``seed`` is the training seed (attack
    starts); ``condition_seed`` fixes the shifted images for every model; ``transfer_source``
    is the paired variant's model of the same seed, for the transfer check; ``fit_data`` (the
    training images and labels) fits feature-based OOD scores such as Mahalanobis;
    ``natural_sets`` maps a natural shift's condition key to its images (fitted to the test
    shape) and labels; ``adversarial`` maps an attack condition's key to its adversarial inputs
    (like ``x_test``) where they were computed for this model already (harness.batched.battery_many,
    which attacks the seeds of a variant as one computation, equal to this one up to float rounding),
    so only the model's predictions of them are computed here; ``cost`` is the large batch and the timed
    repeats of the cost conditions (EvalSpec.cost_batch_size, cost_repeats); ``membership_design``: the model
    trained on its seed's half of ``fit_data`` (harness.membership.half), which its membership condition scores.
    """
    from harness.registry import shifts

    dev = torch.device(device)
    model.to(dev).eval()
    x, y = as_tensor(x_test, dev), as_tensor(y_test, dev)
    clean_logits = predict(model, x, batch_size)
    sweeps = _Sweeps()
    scorer = OodScorer(model, x, clean_logits, fit_data, batch_size, dev)
    measured: dict[str, Outcome] = {}  # the cost conditions' arrays (harness.inference.cost_outcome)
    for cond in conditions:
        if cond.kind == "clean":
            logits = clean_logits if cond.bn_mode == "frozen" else predict_bn(model, x, batch_size, cond.bn_mode)
            yield cond, outcomes(logits, y)
        elif cond.kind == "shift":
            # keyed on the shift alone: every BatchNorm mode sees the same shifted images
            gen = torch_generator(condition_seed, shift(cond.name, cond.param("severity")).key, device=dev.type)
            x_shift = shifts.get(cond.name)(x, cond.param("severity"), gen)
            yield cond, outcomes(predict_bn(model, x_shift, batch_size, cond.bn_mode), y)
        elif cond.kind == "natural":
            if natural_sets is None or cond.key not in natural_sets:
                raise ValueError(f"no images were given for the natural shift {cond.key!r}")
            x_nat, y_nat = (as_tensor(a, dev) for a in natural_sets[cond.key])
            yield cond, outcomes(predict(model, x_nat, batch_size), y_nat)
        elif cond.kind == "ood":
            yield cond, scorer.arrays(cond.param("score"), as_tensor(ood_sets[cond.name], dev))
        elif cond.kind == "attack":
            gen = torch_generator(seed, cond.key, device=dev.type)
            x_adv, logits = _attack(model, x, y, cond.name, cond.param("eps"),
                                    {k: v for k, v in cond.params if k != "eps"}, gen, batch_size, sweeps,
                                    (adversarial or {}).get(cond.key))
            out = outcomes(logits, y)
            delta = (x_adv - x).flatten(1)
            out["linf"] = delta.abs().max(1).values.double().cpu().numpy()
            out["l2"] = delta.norm(dim=1).double().cpu().numpy()
            yield cond, out
        elif cond.kind == "check":
            gen = torch_generator(seed, cond.key, device=dev.type)
            yield cond, _check(model, x, y, cond, gen, batch_size, clean_logits, transfer_source, sweeps)
        elif cond.kind == "membership":
            if fit_data is None:
                raise ValueError("a membership condition scores training examples, and no training data was given")
            yield cond, membership_scores(model, fit_data, clean_logits, y, condition_seed, batch_size, dev,
                                          seed if membership_design else None)
        elif cond.kind == "cost":
            from harness.inference import cost_outcome

            yield cond, cost_outcome(model, x, cond, cost, device, measured)
        else:  # pragma: no cover - Condition's type forbids it
            raise ValueError(f"unknown condition kind {cond.kind!r}")
