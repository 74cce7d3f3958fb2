"""G models as one grouped module: the same outputs, gradients and BatchNorm statistics as each model alone."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from resclaims.models import grouped
from resclaims.models.cifar import CifarNet
from resclaims.models.keras003 import Keras003

ARCHITECTURES = {
    "keras003-resnet": (partial(Keras003, 2, residual=True, width=0.25, dropout=0.0), 24),
    "keras003-plain": (partial(Keras003, 2, residual=False, width=0.25, dropout=0.0), 24),
    "he-resnet": (partial(CifarNet, 8, residual=True, widths=(4, 8, 12)), 16),  # pads 4->8 and 8->12 per model
    "he-plain-no-bn": (partial(CifarNet, 8, residual=False, batch_norm=False, widths=(4, 8, 8)), 16),
}


def models_and_batches(name: str, n: int, batch: int = 6, seed: int = 0):
    build, side = ARCHITECTURES[name]
    torch.manual_seed(seed)
    models = [build().double() for _ in range(n)]
    xs = [torch.randn(batch, 3, side, side, dtype=torch.float64) for _ in range(n)]
    ys = [torch.randint(0, 10, (batch,)) for _ in range(n)]
    return models, xs, ys


@pytest.mark.parametrize("name", ARCHITECTURES)
@pytest.mark.parametrize("training", [True, False])
def test_grouped_forward_is_each_models_forward(name, training):
    models, xs, _ = models_and_batches(name, 3)
    net = grouped.group(models).train(training)
    z = grouped.split_logits(net(grouped.join_inputs(xs)), 3)  # (G, B, 10)
    for g, (model, x) in enumerate(zip(models, xs)):
        torch.testing.assert_close(z[g], model.train(training)(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_gradients_and_batch_norm_statistics_are_each_models_own(name):
    models, xs, ys = models_and_batches(name, 3)
    net = grouped.group(models)
    z = grouped.split_logits(net(grouped.join_inputs(xs)), 3)
    sum(F.cross_entropy(z[g], y) for g, y in enumerate(ys)).backward()
    template = models[0]
    grads = {k: p.grad.view(-1, *template.state_dict()[k].shape) for k, p in net.named_parameters()}
    for g, (model, x, y) in enumerate(zip(models, xs, ys)):
        F.cross_entropy(model(x), y).backward()
        for key, p in model.named_parameters():
            torch.testing.assert_close(grads[key][g], p.grad, rtol=1e-9, atol=1e-12, msg=f"{key} of model {g}")
        state = grouped.member_state(net, g, template)
        for key, buffer in model.named_buffers():  # running means and variances moved as each model's own
            torch.testing.assert_close(state[key], buffer, rtol=1e-10, atol=1e-12, msg=f"{key} of model {g}")


def test_member_forward_uses_views_of_the_grouped_parameters():
    models, xs, ys = models_and_batches("he-resnet", 2)
    net = grouped.group(models)
    template = CifarNet(8, residual=True, widths=(4, 8, 12)).to("meta")
    x = xs[1][:4]  # model 1 on a batch of its own size
    out, expected = grouped.member_forward(net, template, 1, x), models[1](x)  # one BN update each
    torch.testing.assert_close(out, expected)
    F.cross_entropy(out, ys[1][:4]).backward()
    F.cross_entropy(expected, ys[1][:4]).backward()
    fc = net.fc.weight.grad  # (G, 10, 12): only model 1's slice has a gradient
    assert torch.all(fc[0] == 0) and torch.allclose(fc[1], models[1].fc.weight.grad)
    torch.testing.assert_close(grouped.member_state(net, 1, template)["bn.running_mean"], models[1].bn.running_mean)


def test_member_state_round_trips():
    models, _, _ = models_and_batches("keras003-resnet", 4)
    net = grouped.group(models)
    for g, model in enumerate(models):
        state = grouped.member_state(net, g, model)
        assert state.keys() == model.state_dict().keys()
        for key, value in model.state_dict().items():
            assert torch.equal(state[key], value), key


def test_channels_last_keeps_member_views():
    models, xs, _ = models_and_batches("he-resnet", 2)
    net = grouped.group(models).to(memory_format=torch.channels_last)
    template = CifarNet(8, residual=True, widths=(4, 8, 12)).to("meta")
    x = xs[0].contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(grouped.member_forward(net, template, 0, x), models[0](xs[0]))


def test_refuses_what_it_cannot_group():
    with pytest.raises(ValueError, match="one architecture"):
        grouped.group([Keras003(1, width=0.25), Keras003(2, width=0.25)])
    with pytest.raises(TypeError, match="cannot group LayerNorm"):
        grouped.group([nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3)) for _ in range(2)])


@settings(max_examples=20, deadline=None)
@given(
    groups=st.integers(1, 4),
    features=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    batch=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_grouped_linear_is_g_linears(groups, features, batch, seed):
    torch.manual_seed(seed)
    linears = [nn.Linear(*features).double() for _ in range(groups)]
    net = grouped.group([nn.Sequential(linear) for linear in linears])
    xs = [torch.randn(batch, features[0], dtype=torch.float64) for _ in range(groups)]
    z = net(torch.cat(xs, 1)).unflatten(1, (groups, -1))  # (B, G, out)
    for g, (linear, x) in enumerate(zip(linears, xs)):
        torch.testing.assert_close(z[:, g], linear(x))


@settings(max_examples=20, deadline=None)
@given(groups=st.integers(1, 3), before=st.integers(0, 3), after=st.integers(0, 3), channels=st.integers(1, 3))
def test_pad_channels_pads_each_group(groups, before, after, channels):
    x = torch.randn(2, groups * channels, 3, 3)
    padded = grouped.pad_channels(x, before, after, groups).unflatten(1, (groups, -1))
    for g in range(groups):
        block = x[:, g * channels : (g + 1) * channels]
        torch.testing.assert_close(padded[:, g], F.pad(block, (0, 0, 0, 0, before, after)))
