"""A denoise suite's judge classifier: trained once per run directory before the workers start
(:func:`train_judge`, the task's setup, in the process that runs the suite), then loaded by every
worker that scores samples (:func:`load_judge`, the task's load_setup; :class:`harness.worker.Worker`
keeps it for its later units).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.specs import Suite
from harness.store import Store, cell_key, load_weights, save_weights

if TYPE_CHECKING:
    from harness.tasks.denoise.sampling import Judge
    from harness.worker import Context


def judge_spec(suite: Suite, device: str) -> dict[str, Any]:
    """Everything that determines a denoise suite's judge classifier (trained once per run)."""
    assert suite.task_options is not None
    return {"judge": suite.task_options.judge_params(), "dataset": suite.dataset,
            "split": suite.split_params(),
            "caps": [suite.max_train, suite.max_test], "device": device.split(":")[0]}


def _build_judge(ctx: Context) -> Any:
    from harness.models import build_model
    from harness.seeding import torch_generator

    d, split = ctx.suite.task_options, ctx.split
    assert d is not None
    return build_model(d.judge_model, d.judge_norm, split.train.shape, split.train.n_classes, dict(d.judge_options),
                       None, torch_generator(d.judge_seed, "init"))


def train_judge(ctx: Context, store: Store) -> dict[str, Any]:
    """Train a denoise suite's judge classifier once per run directory (skipped when its weights are
    there) on the suite's split, from the DiffusionSpec's seed, and record what it scores: its
    accuracy on the test images, and the reference values of the sample metrics for real images,
    ``reference_fid`` and ``reference_class_tv`` of as many training images as the samples (a
    fixed random subset) against the test images: what a perfect generator would score at that n."""
    import torch

    from harness.seeding import torch_generator
    from harness.store import weights_match
    from harness.tasks.classify.evaluation import features, predict
    from harness.tasks.denoise.sampling import class_tv, feature_distance
    from harness.training import train

    d, split = ctx.suite.task_options, ctx.split
    assert d is not None
    key = cell_key(judge_spec(ctx.suite, ctx.device))
    meta = store.get_meta("judge")
    if meta is not None and meta.get("key") == key and weights_match(ctx.store_dir, key):  # else trained again
        return dict(meta)
    model = _build_judge(ctx)
    result = train(model, split, d.judge_train, d.judge_seed, ctx.device)
    save_weights(ctx.store_dir, key, model.state_dict())
    store.record_weights(key)  # its checksum: a worker that loads it verifies it
    model.eval()
    dev = torch.device(ctx.device)
    x_test = torch.from_numpy(split.test.x).to(dev)
    bs = ctx.suite.evaluation.batch_size
    acc = float((predict(model, x_test, bs).argmax(1).cpu().numpy() == split.test.y).mean())
    n = min(d.samples, len(split.train.x))
    pick = torch.randperm(len(split.train.x), generator=torch_generator(d.judge_seed, "judge-reference"))[:n].numpy()
    x_ref = torch.from_numpy(split.train.x[pick]).to(dev)
    ref_pred = predict(model, x_ref, bs).argmax(1).cpu().numpy()
    meta = {"key": key, "model": d.judge_model, "norm": d.judge_norm, "seed": d.judge_seed,
            "test_accuracy": acc, "final_val_accuracy": result.final_val_accuracy, "n_test": len(split.test.x),
            "reference_n": n,
            "reference_fid": feature_distance(features(model, x_ref, bs).cpu().numpy(),
                                              features(model, x_test, bs).cpu().numpy()),
            "reference_class_tv": class_tv(ref_pred, split.test.y, split.train.n_classes)}
    store.put_meta("judge", meta)
    return meta


def load_judge(ctx: Context) -> Judge:
    """The judge classifier that :func:`train_judge` stored, with its features of the test images."""
    import torch

    from harness.tasks.classify.evaluation import features
    from harness.tasks.denoise.sampling import Judge

    model = _build_judge(ctx)
    model.load_state_dict(load_weights(ctx.store_dir, cell_key(judge_spec(ctx.suite, ctx.device))))
    model.to(ctx.device).eval()
    x_test = torch.from_numpy(ctx.split.test.x).to(ctx.device)
    return Judge(model, features(model, x_test, ctx.suite.evaluation.batch_size).cpu().numpy())
