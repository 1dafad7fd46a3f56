"""The PINN methods (lra, lra_mean, relobralo, ntk, random_weights) against hand computations; the shared
contract tests (tests/test_balancing_contract.py) run on them through available_methods()."""


import numpy as np
import pytest
import torch

from balancebench.balancing import TrainContext, available_methods, get_method
from balancebench.balancing.ntk import kernel_diagonal_mean, ntk_weights
from balancebench.balancing.relobralo import relobralo_hat
from balancebench.training import TrainingSettings


class TwoParam(torch.nn.Module):
    """u = a x + b x^2 with a, b (1, 1) matrices: two weights, no bias."""

    def __init__(self, a=0.3, b=-0.7):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor([[a]], dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.tensor([[b]], dtype=torch.float64))

    def forward(self, x):
        return self.a[0, 0] * x + self.b[0, 0] * x ** 2


def context(model, components=("residual", "boundary")):
    return TrainContext(model=model, model_params=list(model.parameters()), components=components,
                        references={c: 1.0 for c in components}, generator=torch.Generator().manual_seed(0),
                        settings=TrainingSettings(learning_rate=1e-3))


def test_the_new_methods_are_registered():
    assert {"lra", "lra_mean", "relobralo", "ntk", "random_weights"} <= set(available_methods())


def test_lra_update_equals_a_hand_computation_on_a_two_parameter_model():
    x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    yr, yb = torch.tensor([1.0, 0.0, 3.0], dtype=torch.float64), torch.tensor([0.2, 0.1, -0.4], dtype=torch.float64)
    model = TwoParam()
    ctx = context(model)
    m = get_method("lra")
    m.setup(ctx)
    ctx.optimizer = m.make_optimizer(ctx.model_params, ctx.settings)
    m.lam = np.array([1.0, 2.0])  # a current weight != 1: the code's weighted denominator shows
    u = model(x)
    m.backward({"residual": torch.mean((u - yr) ** 2), "boundary": torch.mean((u - yb) ** 2)}, ctx)
    # by hand: dL/da = mean(2 e x), dL/db = mean(2 e x^2)
    xa, a, b = x.numpy(), 0.3, -0.7
    er, eb = a * xa + b * xa ** 2 - yr.numpy(), a * xa + b * xa ** 2 - yb.numpy()
    gr = np.array([np.mean(2 * er * xa), np.mean(2 * er * xa ** 2)])
    gb = np.array([np.mean(2 * eb * xa), np.mean(2 * eb * xa ** 2)])
    lam_hat = np.max(np.abs(gr)) / (2.0 * np.mean(np.abs(gb)))  # max|grad L_r| / mean_l mean|grad (lam L_b)|
    assert m.lam[0] == 1.0
    assert m.lam[1] == pytest.approx(0.9 * 2.0 + 0.1 * lam_hat, rel=1e-12)
    # this step's gradient used the old weight 2
    assert model.a.grad.item() == pytest.approx(gr[0] + 2.0 * gb[0], rel=1e-12)
    assert model.b.grad.item() == pytest.approx(gr[1] + 2.0 * gb[1], rel=1e-12)
    # lra_mean: mean|grad L_r| / (mean|grad L_b| + 1e-8), unweighted, beta 0.99
    model2 = TwoParam()
    ctx2 = context(model2)
    m2 = get_method("lra_mean")
    m2.setup(ctx2)
    m2.lam = np.array([1.0, 2.0])
    u = model2(x)
    m2.backward({"residual": torch.mean((u - yr) ** 2), "boundary": torch.mean((u - yb) ** 2)}, ctx2)
    hat = np.mean(np.abs(gr)) / (np.mean(np.abs(gb)) + 1e-8)
    assert m2.lam[1] == pytest.approx(0.99 * 2.0 + 0.01 * hat, rel=1e-12)


def test_lra_updates_only_every_tenth_iteration():
    model = TwoParam()
    ctx = context(model)
    m = get_method("lra")
    m.setup(ctx)
    x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    seen = []
    for step in range(12):
        ctx.step = step
        u = model(x)
        m.backward({"residual": torch.mean((u - 1) ** 2), "boundary": torch.mean(u ** 2)}, ctx)
        seen.append(m.lam[1])
    assert seen[0] != 1.0 and len(set(seen[0:10])) == 1 and seen[10] != seen[9]


def test_relobralo_follows_the_code_start_up_and_formula():
    m = get_method("relobralo", temperature=0.5, alpha=0.9, rho=1.0)
    l0, l1, l2 = np.array([4.0, 1.0]), np.array([2.0, 0.9]), np.array([1.0, 0.8])
    assert np.array_equal(m.update(l0, 1.0), [1.0, 1.0])  # step 0: alpha = 1
    lam1 = m.update(l1, 1.0)  # step 1: alpha = 0, lambda_hat(1; 0)
    z = l1 / (0.5 * l0 + 1e-12)
    assert np.allclose(lam1, 2 * np.exp(z) / np.exp(z).sum(), rtol=1e-14)
    lam2 = m.update(l2, 0.0)  # rho = 0: the lookback to "L(0)" = the losses of step 1
    hat0 = relobralo_hat(l2, l1, 0.5)
    hat_prev = relobralo_hat(l2, l1, 0.5)
    assert np.allclose(lam2, 0.9 * hat0 + 0.1 * hat_prev)
    lam3 = m.update(np.array([0.5, 0.9]), 1.0)
    assert np.allclose(lam3, 0.9 * lam2 + 0.1 * relobralo_hat(np.array([0.5, 0.9]), l2, 0.5))
    assert get_method("relobralo").params == {"temperature": 1.0, "alpha": 0.999, "rho": 1.0}


def test_ntk_weights_on_constructed_gradients():
    # e = (p1 x1, p2 x2 ...): per-point gradients known, |grad e_n|^2 = x_n^2
    p = torch.nn.Parameter(torch.tensor([1.0, 1.0], dtype=torch.float64))
    xr = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    xb = torch.tensor([0.5, 0.5], dtype=torch.float64)
    er, eb = p[0] * xr, p[1] * xb
    dr, db = kernel_diagonal_mean(er, [p]), kernel_diagonal_mean(eb, [p])
    assert dr == pytest.approx(14.0 / 3) and db == pytest.approx(0.25)
    lam = ntk_weights(np.array([dr, db]))
    assert lam == pytest.approx([(dr + db) / dr, (dr + db) / db])
    # through the method: the per-point errors given beside the losses
    m = get_method("ntk", every=1)
    model = torch.nn.Module()
    model.p = p
    ctx = context(model)
    m.setup(ctx)
    m.backward({"residual": torch.mean(er ** 2), "boundary": torch.mean(eb ** 2),
                "residual@points": er, "boundary@points": eb}, ctx)
    assert m.lam == pytest.approx(lam)
    assert ntk_weights(np.array([1.0, 0.0])).tolist() == [1.0, 1.0]


def test_random_weights_sum_to_one_and_vary():
    g = torch.Generator().manual_seed(3)
    from balancebench.balancing.random_weights import RandomWeights

    draws = torch.stack([RandomWeights.draw(3, g) for _ in range(200)])
    assert torch.allclose(draws.sum(dim=1), torch.ones(200, dtype=torch.float64))
    assert (draws > 0).all() and draws.std(dim=0).min() > 0.1
    assert torch.allclose(draws.mean(dim=0), torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.05)
