"""The training side of the methods, against hand computations: unit-free value methods, the inverse ratio,
uncertainty weighting and GradNorm (one optimiser step at a time on a toy two-loss problem).

Every expected number is computed here with numpy from the papers' formulas (gradients of the
toy losses in closed form, Adam written out), never by calling the implementation.
"""

import math

import numpy as np
import pytest
import torch

from balancebench.balancing import TrainContext, get_method

COMPONENTS = ("force", "energy")
from balancebench.training import TrainingSettings

X1, Y1 = np.array([1.0, -2.0, 0.5]), 0.7
X2, Y2 = np.array([0.3, 0.8, -1.5]), -2.0
W0 = np.array([0.2, -0.1, 0.4])
LR = 1e-2


class Toy(torch.nn.Module):
    """L_force = (W.x1 - y1)^2, L_energy = 2 (W.x2 - y2)^2; W = lin.weight (1, 3) is the only (shared) layer."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 1, bias=False, dtype=torch.float64)
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor(W0)[None])

    def losses(self):
        w = self.lin.weight[0]
        return {"force": (w @ torch.tensor(X1) - Y1) ** 2, "energy": 2 * (w @ torch.tensor(X2) - Y2) ** 2}


def hand_losses(w):
    return np.array([(w @ X1 - Y1) ** 2, 2 * (w @ X2 - Y2) ** 2])


def hand_grads(w):
    """dL_i/dW, rows i = force, energy."""
    return np.array([2 * (w @ X1 - Y1) * X1, 4 * (w @ X2 - Y2) * X2])


class Adam:
    """torch.optim.Adam's update written out (Kingma & Ba 2015, Alg. 1; betas 0.9, 0.999, eps 1e-8)."""

    def __init__(self, lr):
        self.lr, self.m, self.v, self.t = lr, 0.0, 0.0, 0

    def step(self, p, g):
        self.t += 1
        self.m = 0.9 * self.m + 0.1 * g
        self.v = 0.999 * self.v + 0.001 * g * g
        m_hat, v_hat = self.m / (1 - 0.9**self.t), self.v / (1 - 0.999**self.t)
        return p - self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)


def setup(name, **params):
    model = Toy()
    method = get_method(name, **params)
    ctx = TrainContext(model=model, model_params=list(model.parameters()), components=COMPONENTS,
                       references={"force": 4.0, "energy": 0.5}, generator=torch.Generator().manual_seed(0),
                       settings=TrainingSettings(learning_rate=LR), epoch=1)
    method.setup(ctx)
    ctx.optimizer = method.make_optimizer(ctx.model_params, ctx.settings)
    return model, method, ctx


def one_step(model, method, ctx):
    for p in [*ctx.model_params, *method.parameters()]:
        p.grad = None
    losses = model.losses()
    method.backward(losses, ctx)
    grads = {"W": model.lin.weight.grad[0].numpy().copy()}
    for i, p in enumerate(method.parameters()):
        grads[i] = p.grad.numpy().copy()
    method.step(ctx)
    ctx.step += 1
    return grads


# ---------------------------------------------------------------- unit-free value methods, inverse ratio


def test_target_variance_scale_feeds_and_combines_losses_divided_by_the_references():
    model, method, ctx = setup("softadapt", beta=0.5, loss_scale="target_variance")
    raw = []
    for _ in range(3):
        raw.append(hand_losses(model.lin.weight[0].detach().numpy()))
        one_step(model, method, ctx)
        method.end_epoch(dict(zip(COMPONENTS, raw[-1])), ctx)
    ref = np.array([4.0, 0.5])
    s = raw[-1] / ref - raw[-2] / ref  # order-1 rate of the scaled losses
    lam = np.exp(0.5 * s) / np.exp(0.5 * s).sum()
    np.testing.assert_allclose(method.current, lam, rtol=1e-12)
    # the next step applies lambda_i / Var_i to the raw losses
    w = model.lin.weight[0].detach().numpy().copy()
    ctx.epoch = 2  # log_values: the mean over this epoch's steps only
    grads = one_step(model, method, ctx)
    np.testing.assert_allclose(grads["W"], (lam / ref) @ hand_grads(w), rtol=1e-12)
    values = method.log_values()
    np.testing.assert_allclose([values["coef_force"], values["coef_energy"]], lam / ref, rtol=1e-12)
    np.testing.assert_allclose([values["lambda_force"], values["lambda_energy"]], lam, rtol=1e-12)


def test_raw_scale_is_unchanged_and_unit_free_scale_is_unit_independent():
    """Scaling every loss by c (a unit change) leaves the unit-free coefficients alone, not the raw ones."""
    h = np.array([[4.0, 90.0], [3.1, 60.0]])
    ref = np.array([2.0, 40.0])
    m = get_method("softadapt", beta=0.1)
    unit_free = [m.coefficients(c * h / (c * ref)) for c in (1.0, 1e-3)]
    np.testing.assert_allclose(unit_free[0], unit_free[1], rtol=1e-12)
    assert not np.allclose(m.coefficients(h), m.coefficients(1e-3 * h))


def test_target_variance_needs_positive_references():
    model, method, ctx = setup("softadapt")
    bad = get_method("softadapt", loss_scale="target_variance")
    ctx.references = {"force": 0.0, "energy": 1.0}
    with pytest.raises(ValueError, match="loss_scale"):
        bad.setup(ctx)
    with pytest.raises(ValueError, match="'loss_scale'"):
        get_method("dwa", loss_scale="kcal")


def test_ratio_printed_and_inverse_forms():
    h = [[4.0, 2.0]]
    np.testing.assert_allclose(get_method("ratio").coefficients(h), [2.0, 1.0])  # Eq. 5 as printed: L_F / L_E
    inv = get_method("ratio", form="inverse").coefficients(h)
    np.testing.assert_allclose(inv, [0.5, 1.0])  # L_E / L_F: equal contributions
    np.testing.assert_allclose(inv * np.array(h[0]), [2.0, 2.0])
    np.testing.assert_allclose(get_method("ratio", form="inverse").coefficients([[0.0, 2.0]]), [1e6, 1.0])
    np.testing.assert_allclose(get_method("ratio", form="inverse").coefficients([[0.0, 0.0]]), [1.0, 1.0])
    with pytest.raises(ValueError, match="'form'"):
        get_method("ratio", form="inverted")


# ---------------------------------------------------------------- uncertainty weighting (Kendall et al. 2018)


def test_uncertainty_weighting_two_steps_by_hand():
    s0 = 0.3
    model, method, ctx = setup("uncertainty", init=s0)
    w, s = W0.copy(), np.full(2, s0)
    adam_w, adam_s = Adam(LR), Adam(LR)
    for _ in range(2):
        loss, g = hand_losses(w), hand_grads(w)
        grad_w = (0.5 * np.exp(-s)) @ g  # d/dW sum_i 0.5 exp(-s_i) L_i + 0.5 s_i
        grad_s = -0.5 * np.exp(-s) * loss + 0.5
        got = one_step(model, method, ctx)
        np.testing.assert_allclose(got["W"], grad_w, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got[0], grad_s, rtol=1e-10, atol=1e-12)
        w, s = adam_w.step(w, grad_w), adam_s.step(s, grad_s)
        np.testing.assert_allclose(model.lin.weight[0].detach().numpy(), w, rtol=0, atol=1e-6 * 1e-3)
        np.testing.assert_allclose(method.log_var.detach().numpy(), s, rtol=0, atol=1e-9)
    values = method.log_values()  # epoch means of the applied weights 0.5 exp(-s) over the two steps
    s_first = np.full(2, s0)
    s_second = Adam(LR).step(s_first, -0.5 * np.exp(-s_first) * hand_losses(W0) + 0.5)
    expected = (0.5 * np.exp(-s_first) + 0.5 * np.exp(-s_second)) / 2
    np.testing.assert_allclose([values["coef_force"], values["coef_energy"]], expected, rtol=1e-9)
    assert method.backward_passes == 1 and method.kind == "learned"


# ---------------------------------------------------------------- GradNorm (Chen et al. 2018, Alg. 1)


@pytest.mark.parametrize("alpha", [1.5, 0.5])
def test_gradnorm_three_steps_by_hand(alpha):
    model, method, ctx = setup("gradnorm", alpha=alpha, weight_lr=0.05)
    w, lam = W0.copy(), np.ones(2)
    adam_w, adam_lam = Adam(LR), Adam(0.05)
    l0 = None
    for _ in range(3):
        loss, g = hand_losses(w), hand_grads(w)
        if l0 is None:
            l0 = loss
        norms = np.linalg.norm(g, axis=1)  # |grad_W L_i|
        big_g = lam * norms
        ratio = loss / l0
        target = big_g.mean() * (ratio / ratio.mean()) ** alpha
        grad_lam = np.sign(big_g - target) * norms  # d/dlam_i sum_j |G_j - target_j|, target held fixed
        grad_w = lam @ g
        got = one_step(model, method, ctx)
        np.testing.assert_allclose(got["W"], grad_w, rtol=1e-10)
        np.testing.assert_allclose(got[0], grad_lam, rtol=1e-10)
        w = adam_w.step(w, grad_w)
        lam = adam_lam.step(lam, grad_lam)
        lam = np.maximum(lam, 1e-6)
        lam = 2 * lam / lam.sum()
        np.testing.assert_allclose(model.lin.weight[0].detach().numpy(), w, rtol=0, atol=1e-9)
        np.testing.assert_allclose(method.weight.detach().numpy(), lam, rtol=0, atol=1e-9)
        assert method.weight.sum().item() == pytest.approx(2.0, abs=1e-12)
    assert not np.allclose(lam, 1.0)  # the weights moved
    assert method.backward_passes == 3


def test_gradnorm_refuses_an_unknown_layer():
    model, method, ctx = setup("gradnorm")
    with pytest.raises(ValueError, match="'layer'"):
        get_method("gradnorm", layer="head.weight").setup(ctx)


def test_learned_weights_are_finite_for_tiny_and_huge_losses():
    for scale in (1e-8, 1e8):
        model, method, ctx = setup("gradnorm")
        for _ in range(3):
            method.backward({k: v * scale for k, v in model.losses().items()}, ctx)
            method.step(ctx)
        assert torch.isfinite(method.weight).all() and math.isclose(method.weight.sum().item(), 2.0)
