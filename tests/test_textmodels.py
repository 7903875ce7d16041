"""Tests for harness.textmodels: shapes, padding never changing a classifier, causality of the
language models, the recurrent cells against PyTorch's, the paired init across norms, gradients
through the embeddings, option errors, and a real language model learning Moby-Dick."""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn

from harness.corpora import PAD, VOCAB, encode, moby_dick
from harness.errors import ConfigError
from harness.models import TransformerBlock
from harness.registry import norms, text_models
from harness.seeding import torch_generator
from harness.textmodels import (
    TextGRU,
    TextLSTM,
    TextTransformer,
    attention_mask,
    build_text_model,
    masked_mean,
)

MODELS = ("text-transformer", "text-lstm", "text-gru")
SMALL = {  # small widths keep every test fast; the defaults are exercised by the shapes test
    "text-transformer": {"dim": 16, "heads": 2, "max_len": 64},
    "text-lstm": {"embed_dim": 8, "hidden": 12},
    "text-gru": {"embed_dim": 8, "hidden": 12},
}


def _build(model: str, norm: str = "layer", seed: int = 0, n_out: int = 3, **options: object) -> nn.Module:
    return build_text_model(model, norm, VOCAB, n_out, {**SMALL[model], **options}, torch_generator(seed, "init"))


def _tokens(n: int, length: int, seed: int = 0) -> torch.Tensor:
    """Random real tokens (1..256) (n, length)."""
    return torch.randint(1, VOCAB, (n, length), generator=torch.Generator().manual_seed(seed))


def _with_lengths(tokens: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """tokens with everything after each row's length set to padding."""
    out = tokens.clone()
    for i, k in enumerate(lengths):
        out[i, k:] = PAD
    return out


def _norm_free(net: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter that does not belong to a norm module, by name."""
    return {k: v for k, v in net.named_parameters() if "norm" not in k}


# --- shapes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("model, width", [("text-transformer", 64), ("text-lstm", 128), ("text-gru", 128)])
@pytest.mark.parametrize("causal", [False, True])
def test_default_models_give_the_contract_shapes(model: str, width: int, causal: bool) -> None:
    net = build_text_model(model, "layer", VOCAB, 2, {"causal": causal}, torch_generator(0, "init"))
    tokens = _with_lengths(_tokens(3, 10), [10, 4, 0])
    e = net.embed(tokens)
    assert e.shape == (3, 10, 64 if model == "text-transformer" else 32) and e.dtype == torch.float32
    logits = net(tokens)
    assert logits.shape == ((3, 10, VOCAB) if causal else (3, 2))
    assert bool(torch.isfinite(logits).all())  # also the row that is all padding
    torch.testing.assert_close(net.forward_embedded(e, tokens), logits, rtol=0, atol=0)
    assert net.features(tokens).shape == (3, width)


def test_registry_names_the_three_models() -> None:
    assert {text_models.get(m) for m in MODELS} == {TextTransformer, TextLSTM, TextGRU}


# --- padding -------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("norm", ["none", "batch", "layer", "group", "rms"])
def test_padding_never_changes_a_classifier(model: str, norm: str) -> None:
    net = _build(model, norm).eval()  # eval: BatchNorm applies its running statistics per token
    lengths = [9, 5, 1, 9]
    tokens = _with_lengths(_tokens(4, 9), lengths)
    with torch.no_grad():
        logits, feats = net(tokens), net.features(tokens)
        longer = torch.cat([tokens, torch.zeros(4, 7, dtype=torch.long)], 1)  # 7 more padding ids
        torch.testing.assert_close(net(longer), logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(net.features(longer), feats, atol=1e-5, rtol=1e-5)
        for i, k in enumerate(lengths):  # each text alone, unpadded: the same logits
            torch.testing.assert_close(net(tokens[i:i + 1, :k]), logits[i:i + 1], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(logits[0], logits[1])  # the texts themselves do matter


def test_attention_mask_hides_padded_keys_and_the_future() -> None:
    tokens = torch.tensor([[5, 6, 0], [0, 0, 0]])
    mask = attention_mask(tokens, causal=False)
    assert mask.shape == (2, 1, 3, 3)
    assert mask[0, 0].tolist() == [[True, True, False], [True, True, False], [True, True, True]]
    assert mask[1, 0].tolist() == torch.eye(3, dtype=torch.bool).tolist()  # no real key: itself only
    assert attention_mask(tokens, causal=True)[0, 0].tolist() == [[True, False, False], [True, True, False],
                                                                  [True, True, True]]


def test_masked_mean_averages_real_positions_only() -> None:
    h = torch.arange(12.0).view(2, 3, 2)
    tokens = torch.tensor([[1, 2, 0], [0, 0, 0]])
    torch.testing.assert_close(masked_mean(h, tokens), torch.tensor([[1.0, 2.0], [0.0, 0.0]]))


# --- causal language models ----------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("norm", ["none", "layer", "rms", "batch"])
def test_language_model_output_at_t_depends_on_tokens_up_to_t_only(model: str, norm: str) -> None:
    net = _build(model, norm, causal=True).eval()  # (BatchNorm in training pools all positions)
    tokens = _tokens(2, 12)
    changed = tokens.clone()
    changed[:, 7] = changed[:, 7] % 256 + 1  # another real byte at position 7
    with torch.no_grad():
        before, after = net(tokens), net(changed)
    assert before.shape == (2, 12, VOCAB)
    torch.testing.assert_close(after[:, :7], before[:, :7], atol=1e-6, rtol=1e-6)
    assert float((after[:, 7:] - before[:, 7:]).abs().amax(-1).min()) > 1e-6  # every later position moves


# --- recurrent cells against PyTorch's -----------------------------------------------------------


@pytest.mark.parametrize("arch, reference", [(TextGRU, nn.GRU), (TextLSTM, nn.LSTM)])
def test_recurrent_models_without_norm_are_pytorchs_gru_and_lstm(arch: type[nn.Module], reference: type) -> None:
    net = arch(VOCAB, 3, norms.get("none"), embed_dim=8, hidden=12, causal=True)
    from harness.models import init_weights

    init_weights(net, torch_generator(0, "init"))
    rnn = reference(8, 12, batch_first=True)
    with torch.no_grad():  # same gate order (GRU r, z, n; LSTM i, f, g, o) and both biases
        rnn.weight_ih_l0.copy_(net.input_proj.weight)
        rnn.bias_ih_l0.copy_(net.input_proj.bias)
        rnn.weight_hh_l0.copy_(net.hidden_proj.weight)
        rnn.bias_hh_l0.copy_(net.hidden_proj.bias)
    tokens = _tokens(4, 10)
    e = net.embed(tokens)
    last, steps = net.states(e, tokens)
    out, h_n = rnn(e)
    torch.testing.assert_close(steps, out, atol=1e-6, rtol=1e-5)  # every step: the language model's input
    torch.testing.assert_close(last, (h_n[0] if isinstance(h_n, tuple) else h_n)[0], atol=1e-6, rtol=1e-5)
    # padded: the last real token's state is what PyTorch computes on the packed sequences
    lengths = [10, 6, 3, 1]
    padded = _with_lengths(tokens, lengths)
    e = net.embed(padded)
    packed = nn.utils.rnn.pack_padded_sequence(e, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    _, h_n = rnn(packed)
    torch.testing.assert_close(net.states(e, padded)[0], (h_n[0] if isinstance(h_n, tuple) else h_n)[0],
                               atol=1e-6, rtol=1e-5)


def test_text_lstm_uses_the_layer_normalized_cell_of_ba_et_al() -> None:
    net = _build("text-lstm", "layer")
    ln = nn.functional.layer_norm
    tokens = _tokens(3, 4)
    x = net.embed(tokens)
    h = c = torch.zeros(3, 12)
    for t in range(4):
        i, f, g, o = (ln(net.input_proj(x[:, t]), (48,)) + ln(net.hidden_proj(h), (48,))).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(ln(c, (12,)))
    torch.testing.assert_close(net.features(tokens), h, atol=1e-5, rtol=1e-5)


# --- paired init ---------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_same_seed_draws_the_same_weights_whatever_the_norm(model: str) -> None:
    reference = _norm_free(_build(model, "none"))
    assert any("embedding" in k for k in reference)
    for norm in norms.names():
        torch.manual_seed(len(norm))  # the global random state must not matter
        drawn = _norm_free(_build(model, norm))
        assert drawn.keys() == reference.keys(), norm
        for name, value in reference.items():
            assert torch.equal(drawn[name], value), f"{norm}: {name}"
    other = _norm_free(_build(model, "none", seed=1))
    assert all(not torch.equal(other[k], v) for k, v in reference.items() if v.numel() > 1)


def test_transformer_variants_of_a_seed_share_their_init() -> None:
    reference = _norm_free(_build("text-transformer"))  # (post-LN has no final norm)
    for options in ({"placement": "post"}, {"residual_scale": 0.5}):
        drawn = _norm_free(_build("text-transformer", **options))
        assert drawn.keys() == reference.keys()
        assert all(torch.equal(drawn[k], v) for k, v in reference.items()), options


@pytest.mark.parametrize("model, std", [("text-transformer", 0.02), ("text-lstm", 1.0)])
def test_embeddings_are_drawn_at_their_scale_with_a_zero_padding_row(model: str, std: float) -> None:
    weight = build_text_model(model, "none", VOCAB, 2, {}, torch_generator(0, "init")).embedding.weight.detach()
    assert bool((weight[PAD] == 0).all())
    assert 0.8 * std < float(weight[1:].std()) < 1.2 * std
    positions = getattr(_build(model), "pos", None)
    if positions is not None:
        assert 0.01 < float(positions.weight.detach().std()) < 0.03  # drawn, not left at zeros


# --- gradients for attacks -----------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("causal", [False, True])
def test_gradients_flow_to_the_embeddings_of_real_tokens_only(model: str, causal: bool) -> None:
    net = _build(model, causal=causal).eval()
    tokens = _with_lengths(_tokens(2, 8), [8, 5])
    e = net.embed(tokens).detach().requires_grad_(True)
    logits = net.forward_embedded(e, tokens)
    (grad,) = torch.autograd.grad(logits[..., 0].sum() if causal else logits[:, 0].sum(), e)
    per_token = grad.abs().sum(-1)
    assert bool((per_token[0] > 0).all()) and bool((per_token[1, :5] > 0).all())
    if not causal:  # a classifier ignores padding entirely (an LM's padded positions are its own)
        assert bool((per_token[1, 5:] == 0).all())


def _backward_nodes(out: torch.Tensor) -> Counter[str]:
    """How many nodes of each kind the backward graph of ``out`` holds."""
    seen, todo, kinds = set(), [out.grad_fn], Counter[str]()
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        kinds[type(fn).__name__] += 1
        todo.extend(f for f, _ in fn.next_functions)
    return kinds


@pytest.mark.parametrize("model", ["text-lstm", "text-gru"])
@pytest.mark.parametrize("norm", ["none", "layer"])
def test_recurrent_steps_read_the_input_gates_through_one_unbind(model: str, norm: str) -> None:
    """A select per step (``gx[:, t]``) makes each step's backward write a zero tensor the size of every step's
    gates, quadratic in the length (20x slower at 128 bytes, the cost of every attack on the recurrent nets)."""
    net = _build(model, norm).eval()
    kinds = _backward_nodes(net(_with_lengths(_tokens(2, 16), [16, 9])))
    assert kinds["UnbindBackward0"] == 1 and kinds["SelectBackward0"] == 0, kinds


# --- transformer options -------------------------------------------------------------------------


@pytest.mark.parametrize("placement", ["pre", "post"])
def test_residual_scale_multiplies_each_branch(placement: str) -> None:
    block = TransformerBlock(16, 2, norms.get("layer"), placement, residual_scale=0.25)
    with torch.no_grad():  # non-trivial affine parameters, so a skipped norm shows
        for norm in (block.norm1.norm, block.norm2.norm):
            norm.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(1))
    x = torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(0))
    mask = attention_mask(_with_lengths(_tokens(3, 5), [5, 3, 1]), causal=False)
    n1, n2, attn, mlp = block.norm1, block.norm2, block.attn, block.mlp
    if placement == "pre":
        h = x + 0.25 * attn(n1(x), mask)
        expected = h + 0.25 * mlp(n2(h))
    else:
        h = n1(x + 0.25 * attn(x, mask))
        expected = n2(h + 0.25 * mlp(h))
    torch.testing.assert_close(block(x, mask), expected)


def test_transformer_post_ln_has_no_final_norm_and_pre_ln_has_one() -> None:
    pre, post = _build("text-transformer"), _build("text-transformer", placement="post")
    assert isinstance(post.final_norm, nn.Identity) and not isinstance(pre.final_norm, nn.Identity)
    tokens = _tokens(2, 6)
    feats = pre.hidden(pre.embed(tokens), tokens)  # type: ignore[operator]
    torch.testing.assert_close(feats.var(-1, unbiased=False), torch.ones(2, 6), atol=1e-3, rtol=0)


@pytest.mark.parametrize("options, match", [
    ({"placement": "middle"}, "placement"), ({"heads": 3}, "heads"), ({"residual_scale": 0.0}, "residual_scale"),
    ({"residual_scale": float("nan")}, "residual_scale"), ({"depth": 0}, "depth"),
])
def test_transformer_rejects_bad_options_with_a_hint(options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        TextTransformer(VOCAB, 2, norms.get("none"), **options)
    assert err.value.hint


def test_recurrent_models_reject_a_zero_width_and_every_model_a_bad_token_shape() -> None:
    with pytest.raises(ConfigError, match="hidden") as err:
        TextLSTM(VOCAB, 2, norms.get("none"), hidden=0)
    assert err.value.hint
    with pytest.raises(ConfigError, match="max_len 64") as err:
        _build("text-transformer")(_tokens(1, 65))
    assert err.value.hint
    for model in MODELS:
        with pytest.raises(ConfigError, match=r"\(N, L\)"):
            _build(model)(torch.ones(5, dtype=torch.long))


def test_language_model_ignores_n_out_and_predicts_the_vocabulary() -> None:
    for model in MODELS:
        assert _build(model, n_out=0, causal=True)(_tokens(1, 4)).shape == (1, 4, VOCAB)


# --- learning real text --------------------------------------------------------------------------


def _moby_dick_ids(chars: int) -> torch.Tensor:
    """The first ``chars`` characters of Moby-Dick as one row of token ids (bytes), read from
    the data root (a test that calls it asks for the ``text_corpora`` fixture)."""
    text = moby_dick()[:chars]
    return torch.from_numpy(encode([text], len(text.encode("utf-8")))[0])


def _unigram_entropy(ids: torch.Tensor) -> float:
    """Entropy (nats) of the byte frequencies of ids."""
    p = torch.bincount(ids, minlength=VOCAB).double()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log()).sum())


@pytest.mark.slow
def test_transformer_language_model_learns_moby_dick_below_the_unigram_entropy(text_corpora: Path) -> None:
    ids = _moby_dick_ids(20_000)
    cut = int(0.9 * len(ids))
    train_ids, held_out = ids[:cut], ids[cut:]
    length, batch, steps = 128, 32, 300
    net = build_text_model("text-transformer", "layer", VOCAB, 0, {"causal": True, "max_len": length},
                           torch_generator(0, "init"))
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=0.0)
    starts = torch.randint(0, len(train_ids) - length - 1, (steps, batch), generator=torch.Generator().manual_seed(0))
    offsets = torch.arange(length + 1)
    began = time.perf_counter()
    for s in range(steps):
        window = train_ids[starts[s, :, None] + offsets]  # (batch, length + 1)
        loss = nn.functional.cross_entropy(net(window[:, :-1]).reshape(-1, VOCAB), window[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    per_step = (time.perf_counter() - began) / steps
    chunks = held_out[: (len(held_out) - 1) // length * length + 1]
    x = chunks[:-1].view(-1, length)
    y = chunks[1:].view(-1, length)
    with torch.no_grad():
        held_out_loss = float(nn.functional.cross_entropy(net.eval()(x).reshape(-1, VOCAB), y.reshape(-1)))
    entropy = _unigram_entropy(train_ids)
    assert math.isfinite(held_out_loss)
    assert held_out_loss < entropy - 0.2, \
        f"held-out {held_out_loss:.3f} nats, unigram {entropy:.3f} ({per_step:.3f} s/step)"
