"""harness.tasks.lm: bits per character against hand-computed values, the book's split, the perplexity OOD
score's direction, the corrupted-text condition, the task's checks and per-variant warm-up, the missing-corpora
message, and the ``moby-lm`` suite's reduced size end to end (slow)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness.corpora import VOCAB, encode
from harness.errors import ConfigError
from harness.specs import AttackSpec, EvalSpec, Suite, TrainSpec, Variant, clean, natural, ood, shift
from harness.tasks.lm import TASK, LMOptions
from harness.tasks.lm.data import BookSplit, Windows, book_split, part_bounds
from harness.tasks.lm.evaluation import bits_per_char, corrupt, evaluate


class FixedLogits(nn.Module):
    """A causal model whose logits at every position are ``row`` (V,), or, with ``p_next``, put probability
    ``p_next`` on the true next byte of ``targets`` and spread the rest evenly over the other V - 1 ids."""

    def __init__(self, row: torch.Tensor | None = None, p_next: float | None = None,
                 targets: torch.Tensor | None = None) -> None:
        super().__init__()
        self.row, self.p_next, self.targets = row, p_next, targets

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n, length = tokens.shape
        if self.p_next is None:
            assert self.row is not None
            return self.row.expand(n, length, VOCAB).clone()
        assert self.targets is not None
        # e^a / (e^a + V - 1) = p  <=>  a = log(p (V - 1) / (1 - p))
        out = torch.zeros(n, length, VOCAB, dtype=torch.float64)
        out.scatter_(2, self.targets[:n, :, None], math.log(self.p_next * (VOCAB - 1) / (1 - self.p_next)))
        return out


def test_uniform_logits_score_log2_of_the_vocabulary_per_byte_and_more_per_multibyte_character() -> None:
    texts = ["Call me Ishmael. Some years ago", "Ahab\u2014and the whale\u2019s wake"]  # 31 bytes; 3-byte chars
    x = torch.from_numpy(encode(texts, 32))
    bpc = bits_per_char(FixedLogits(torch.zeros(VOCAB)), x)
    per_byte = math.log2(VOCAB)  # 8.0056 bits: every byte (and padding id) equally likely
    assert 8.005 < bpc[0] < 8.006 and bpc[0] == pytest.approx(per_byte, abs=1e-12)  # 30 real targets, 30 chars
    data = texts[1].encode()
    n_bytes = min(len(data), 32) - 1  # targets: every byte but the first
    n_chars = sum(1 for b in data[1:32] if b & 0xC0 != 0x80)
    assert n_chars < n_bytes  # the dash and the quote are three bytes each
    assert bpc[1] == pytest.approx(per_byte * n_bytes / n_chars, abs=1e-12)


@pytest.mark.parametrize("p", [0.5, 0.9])
def test_a_model_that_gives_the_next_byte_probability_p_scores_minus_log2_p(p: float) -> None:
    x = torch.from_numpy(encode(["the whiteness of the whale", "short"], 16))  # the second is padded
    bpc = bits_per_char(FixedLogits(p_next=p, targets=x[:, 1:]), x)
    # padding is never scored: the short text's 4 targets give the same per-character value
    assert bpc == pytest.approx([-math.log2(p)] * 2, abs=1e-9)
    assert bpc[0] < math.log2(VOCAB)  # below the uniform model's


def test_the_book_is_split_into_contiguous_disjoint_parts_with_the_held_out_parts_last(text_corpora: Path) -> None:
    from harness.corpora import moby_dick

    book = moby_dick()
    split = book_split(64, 0.1, 0.05, max_train=3000, max_test=200, seed=4)
    bounds = split.bounds
    assert bounds == part_bounds(len(book), 0.1, 0.05)
    assert bounds["train"][0] == 0 and bounds["test"][1] == len(book)
    assert bounds["train"][1] == bounds["val"][0] and bounds["val"][1] == bounds["test"][0]  # contiguous
    assert bounds["test"][0] == len(book) - round(0.1 * len(book))  # the last 10% tests
    assert bounds["val"][1] - bounds["val"][0] == round(0.05 * len(book))  # the 5% before it validates
    for name in ("train", "val", "test"):
        part: Windows = getattr(split, name)
        start, end = bounds[name]
        assert part.starts is not None and part.x.shape == (len(part.texts), 65) and (part.x != 0).all()
        assert start <= part.starts.min() and part.starts.max() + 65 <= end  # every character inside its part
        assert all(book[s:s + 65] == t for s, t in zip(part.starts, part.texts, strict=True))
        assert (part.x == encode(list(part.texts), 65)).all()
    assert len(split.train.texts) == 3000 and len(split.test.texts) == 200 and len(split.val.texts) > 800
    # no held-out character was trained on: the training windows' characters end before the first held-out one
    trained = np.zeros(len(book), dtype=bool)
    for s in split.train.starts:
        trained[s:s + 65] = True
    for part in (split.val, split.test):
        assert not any(trained[s:s + 65].any() for s in part.starts)
    assert split.train.texts == book_split(64, 0.1, 0.05, max_train=3000, max_test=200, seed=4).train.texts


def _windows(texts: list[str], length: int, name: str = "w") -> Windows:
    return Windows(name, tuple(texts), encode(texts, length + 1))


def test_a_model_trained_a_little_on_the_book_scores_its_windows_more_in_distribution_than_random_bytes(
        text_corpora: Path) -> None:
    from harness.registry import norms, text_models
    from harness.tasks.lm.training import train_lm

    torch.manual_seed(0)
    split = book_split(32, 0.1, 0.05, max_train=960, max_test=100)
    model = text_models.get("text-transformer")(VOCAB, 0, norms.get("layer"), dim=32, heads=2, depth=1,
                                                causal=True)
    result = train_lm(model, split, TrainSpec(epochs=1, batch_size=32, lr=1e-2, eval_every=10), 0, target_bpc=5.0)
    assert result.curve_val_loss[-1] < result.curve_val_loss[0] - 2  # it learned something in 30 steps
    rng = np.random.default_rng(0)
    noise = Windows("noise", ("",) * 100, rng.integers(1, 257, (100, 33)))  # random bytes
    conds = [clean(), ood("noise", "perplexity")]
    (_, c), (_, o) = list(evaluate(model, split, {"noise": noise}, conds, 0))
    assert (o["score_in"] == -c["bpc"]).all()  # perplexity: higher = more in-distribution
    assert o["score_in"].min() > o["score_out"].max()  # every book window above every random one
    summary = TASK.eval_summary(conds[1], o)
    assert summary["auroc"] == 1.0 and summary["fpr95"] == 0.0


def test_the_corrupted_text_condition_corrupts_the_test_windows_the_same_way_for_every_model() -> None:
    texts = ["It was the Bachelor, a Nantucket ship, which I thought", "Stubb was the second mate. He was a "
             "native of Cape Cod"]
    test = _windows(texts, 48)
    split = BookSplit(test, test, test, {})
    model = FixedLogits(p_next=0.5, targets=torch.from_numpy(test.x[:, 1:]))  # knows the clean text only
    cond = shift("typo-swap", 5)
    (_, clean_arrays), (_, arrays) = list(evaluate(model, split, {}, [clean(), cond], 7))
    from harness.seeding import derive_seed

    changed = corrupt(test.texts, "typo-swap", 5, derive_seed(7, cond.key))
    assert all(a != b for a, b in zip(changed, texts, strict=True))  # the condition changes the text
    assert changed == corrupt(test.texts, "typo-swap", 5, derive_seed(7, cond.key))  # the same for every model
    assert clean_arrays["bpc"] == pytest.approx([1.0, 1.0])
    assert (arrays["bpc"] > 1.0).all()  # where the text was swapped, the clean text's bytes are no longer next
    assert TASK.eval_summary(cond, arrays) == {"bpc": float(arrays["bpc"].mean())}


def _suite(**change: object) -> Suite:
    base = dict(name="tiny-lm", version="1", description="two byte models", dataset="moby-dick", task="lm",
                task_options=LMOptions(length=32, target_bpc=4.0),
                variants=(Variant("tf-none", "text-transformer", "none", options=(("dim", 16), ("heads", 2))),
                          Variant("tf-layer", "text-transformer", "layer",
                                  options=(("dim", 16), ("heads", 2), ("warmup_steps", 5)))),
                seeds=(0,), train=TrainSpec(epochs=1, batch_size=16),
                evaluation=EvalSpec(shifts=("case-flip",), severities=(2,), natural_shifts=("sotu",),
                                    ood_sets=("spam",), ood_scores=("perplexity",), checks=False),
                test_fraction=0.1, val_fraction=0.05)
    return Suite(**{**base, **change})  # type: ignore[arg-type]


def test_the_battery_and_per_variant_warm_up_of_a_language_model_suite() -> None:
    suite = _suite()
    assert [c.key for c in TASK.conditions(suite)] == ["clean", "shift:case-flip:severity=2", "natural:sotu",
                                                      "ood:spam:score=perplexity", "membership:loss", "cost"]  # no fold
    assert TASK.metrics(natural("sotu")) == ("bpc",) and TASK.metrics(ood("spam", "perplexity"))[0] == "auroc"
    none, layer = suite.variants
    assert (TASK.warmup(suite, none), TASK.warmup(suite, layer)) == (0, 5)
    model = TASK.build(suite, layer, None, 0)  # warmup_steps is the task's, not the model's keyword
    assert model(torch.ones(2, 8, dtype=torch.int64)).shape == (2, 8, VOCAB)  # causal: a prediction per byte
    assert TASK.report_target(suite.to_dict()) == {"target_bpc": 4.0}


@pytest.mark.parametrize(("change", "message"), [
    ({"dataset": "spam"}, "trains on 'spam'"),
    ({"evaluation": EvalSpec(attacks=(AttackSpec("fgsm", (0.1,)),), ood_scores=("perplexity",))},
     "declares attacks"),
    ({"evaluation": EvalSpec(ood_sets=("mnist",), ood_scores=("perplexity",))}, "unknown text sets mnist"),
    ({"evaluation": EvalSpec(ood_sets=("sotu",))}, "scores OOD text by msp"),
    ({"variants": (Variant("tf", "text-transformer", "none", options=(("causal", False),)),)}, "sets causal"),
    ({"variants": (Variant("tf", "text-transformer", "none", options=(("warmup_steps", -1),)),)},
     "sets warmup_steps -1"),
])
def test_a_language_model_suite_is_refused_where_it_does_not_fit(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _suite(**change)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("target_bpc", 0.0, "target_bpc must be a positive number, got 0.0"),
    ("length", 4, "language-model length 4 is not in 8..4096"),
    ("warmup_steps", -2, "warmup_steps -2 is not a whole number"),
])
def test_bad_language_model_options_are_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LMOptions(**{field: value})  # type: ignore[arg-type]


def test_a_run_without_the_corpora_fails_with_the_fetch_hint_before_making_its_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.runner import run

    monkeypatch.setenv("HARNESS_DATA_ROOT", str(tmp_path / "empty"))
    with pytest.raises(ConfigError) as info:
        run("moby-lm", tmp_path / "run", device="cpu", progress=False)
    assert info.value.message.startswith("text corpora not found")
    assert info.value.hint == "run 'harness data fetch text'"
    assert not (tmp_path / "run").exists()


# --- the suite's reduced size, end to end ---------------------------------------------------------


@pytest.fixture(scope="module")
def reduced_report(text_corpora: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from harness import registry as reg
    from harness.reports.build import build_report
    from harness.reports.render import write_reports
    from harness.runner import run

    suite = reg.suites.get("moby-lm").with_size("reduced")
    summary = run(suite, tmp_path_factory.mktemp("moby-lm") / "run", device="cpu", progress=False)
    assert summary.ok, summary.failures
    report = build_report(summary.run_dir, n_resamples=200)
    return suite, report, write_reports(report, summary.run_dir)


@pytest.mark.slow
def test_the_reduced_moby_lm_suite_reports_bits_per_character_ood_sweeps_and_claims(
        reduced_report) -> None:  # type: ignore[no-untyped-def]
    suite, report, paths = reduced_report
    assert paths["html"].exists() and paths["results"].exists()
    names = [v.name for v in suite.variants]
    est = {(r.variant, r.condition.key, r.metric): r.estimate for r in report.estimates}
    for v in names:
        for key in ("clean", "shift:typo-swap:severity=3", "shift:all", "natural:sotu"):
            e = est[(v, key, "bpc")]
            assert 0 < e.ci_low <= e.value <= e.ci_high < 8.1
            assert e.n_examples == 100 or key == "natural:sotu"  # the test windows (capped at 100)
        assert 0 <= est[(v, "ood:sotu:score=perplexity", "auroc")].value <= 1
        # the book's held-out windows are easier than a corrupted copy of them and than another register
        assert est[(v, "clean", "bpc")].value < est[(v, "shift:typo-swap:severity=3", "bpc")].value
    # bits per character, OOD by perplexity, the membership attack on windows, the inference cost
    assert {r.metric for r in report.estimates} == {
        "bpc", "auroc", "fpr95", "aupr_in", "aupr_out", "membership_auroc", "membership_tpr_1pct",
        "membership_tpr_01pct", "latency_b1", "latency_batch", "throughput", "inference_memory", "parameters",
        "flops"}
    for t in report.training_summary:
        assert t.final_val_bpc is not None and t.mean_val_bpc is not None and t.aulc is None, t.variant
        assert t.seconds_per_step is not None and t.peak_memory_bytes is not None
    assert {(w.family, w.setting) for w in report.sweeps} == {(f, "lr") for f in ("tf-pre", "tf-post",
                                                                                  "tf-post-warmup")}
    assert {(r.variant, r.baseline) for r in report.comparisons if r.metric == "converged_fraction"} == {
        ("tf-pre", "tf-post"), ("tf-post", "tf-post-warmup")}
    assert any(r.metric == "mean_val_bpc" and r.variant == "lstm-layer" for r in report.comparisons)
    verdicts = {v.claim.text: v.verdict for v in report.claims}  # type: ignore[union-attr]
    assert len(verdicts) == 3 and "not evaluated" not in verdicts.values(), verdicts
    text = paths["report"].read_text(encoding="utf-8")
    assert "Held-out target 4.5 bits per character" in text and "bits per character" in text
    assert "denoising" not in text and "Natural shifts: other text" in text  # a section of per-set bpc
    assert not [c for c in report.checks if c.status != "n/a"]  # no attack, no adversarial sanity check


def test_the_lm_options_survive_a_json_round_trip_and_a_size_override() -> None:
    import json

    suite = _suite()
    back = Suite.from_dict(json.loads(json.dumps(suite.to_dict())))
    assert back.task_options == suite.task_options and back.variants == suite.variants
    from harness import registry as reg

    small = reg.suites.get("moby-lm").with_size("reduced")
    assert small.task_options == dataclasses.replace(reg.suites.get("moby-lm").task_options, length=32,
                                                     target_bpc=4.5)
