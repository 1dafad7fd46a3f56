"""The TaylorGLO family (seed 001 Eq. 2, balancebench.losses_taylorglo): hand-computed values, Eq. 3's two-class
form, the squared-error point (the MSE's gradient, classification and regression), the cross-entropy expansion,
and the benzene force loss and the configs that use it."""

import copy
import math

import pytest
import torch

from balancebench.config import ConfigError, validate_config
from balancebench.losses_taylorglo import (
    THETA_NAMES,
    check_theta,
    classification_loss,
    cross_entropy_theta,
    regression_loss,
    squared_error_theta,
    taylorglo,
    taylorglo_terms,
)
from balancebench.tasks.base import get_task

# theta = (0.5, 0, 1, 2, 3, 4, 5, 6), x = (1, 0), y = (0.75, 0.25), by hand (exact binary fractions):
# class 1: u = 0.75, v = 0.5:   0.75 + 0.5625 + 0.2109375 + 1.5 + 0.703125 + 0.5625        = 4.2890625
# class 2: u = 0.25, v = -0.5:  0.25 + 0.0625 + 0.0078125 - 0.5 - 0.078125 + 0.1875        = -0.0703125
# f = -1/2 (4.2890625 - 0.0703125) = -2.109375
THETA = (0.5, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0)


def test_eq2_term_by_term_on_hand_values():
    x, y = torch.tensor([[1.0, 0.0]], dtype=torch.float64), torch.tensor([[0.75, 0.25]], dtype=torch.float64)
    assert taylorglo_terms(x, y, THETA).tolist() == [[4.2890625, -0.0703125]]
    assert float(taylorglo(x, y, THETA)) == -2.109375
    # through softmax and one-hot: log y are logits whose softmax is y
    assert float(classification_loss(torch.log(y), torch.tensor([0]), THETA)) == pytest.approx(-2.109375, abs=1e-12)
    # each term alone: theta with one non-zero coefficient picks one term of the bracket
    u, v = 0.75, 0.5
    single = {2: u, 3: u**2 / 2, 4: u**3 / 6, 5: v * u, 6: v * u**2 / 2, 7: v**2 * u / 2}
    for k, value in single.items():
        th = [0.5, 0.0] + [0.0] * 6
        th[k] = 1.0
        assert float(taylorglo_terms(x[:, :1], y[:, :1], th)) == pytest.approx(value, abs=1e-15), k


def test_eq3_is_eq2_for_two_classes():
    """Seed Eq. 3: -1/2 [T(x, y) + T(1 - x, 1 - y)] (with the powers of Eq. 2 as intended)."""
    th = (-1.694, 3.338, 0.340, -0.162, 4.553, 0.056, -2.396, 1.635)

    def t(x, y):
        u, v = y - th[1], x - th[0]
        return (th[2] * u + th[3] * u**2 / 2 + th[4] * u**3 / 6 + th[5] * v * u + th[6] * v * u**2 / 2
                + th[7] * v**2 * u / 2)

    for x, y in ((1.0, 0.8), (0.0, 0.3), (1.0, 0.05)):
        eq3 = -0.5 * (t(x, y) + t(1 - x, 1 - y))
        pair = torch.tensor([[x, 1 - x]], dtype=torch.float64), torch.tensor([[y, 1 - y]], dtype=torch.float64)
        assert float(taylorglo(*pair, th)) == pytest.approx(eq3, rel=1e-12)


def test_squared_error_point_has_the_mse_gradient_in_classification():
    logits = torch.randn(5, 10, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 3, 9, 2, 2])
    (g_taylor,) = torch.autograd.grad(classification_loss(logits, labels, squared_error_theta(1.0)), logits)
    onehot = torch.nn.functional.one_hot(labels, 10).double()
    (g_mse,) = torch.autograd.grad(torch.mean((torch.softmax(logits, -1) - onehot) ** 2), logits)
    assert torch.allclose(g_taylor, g_mse, atol=1e-14)


@pytest.mark.parametrize("scale", [1.0, 4.2])
def test_squared_error_point_is_the_mse_up_to_a_constant_in_regression(scale):
    torch.manual_seed(0)
    target = 5.0 * torch.randn(30, 3, dtype=torch.float64)
    pred = (target + torch.randn(30, 3, dtype=torch.float64)).requires_grad_(True)
    loss = regression_loss(pred, target, squared_error_theta(1.0), scale)
    mse = torch.mean((pred - target) ** 2)
    assert float(loss.detach()) == pytest.approx(float(mse.detach() - torch.mean(target**2)), rel=1e-12)
    (g_taylor,) = torch.autograd.grad(loss, pred)
    (g_mse,) = torch.autograd.grad(mse, pred)
    assert torch.allclose(g_taylor, g_mse, atol=1e-14)
    # c scales it
    (g_c,) = torch.autograd.grad(regression_loss(pred, target, squared_error_theta(3.0), scale), pred)
    assert torch.allclose(g_c, 3.0 * g_mse, atol=1e-13)


def test_cross_entropy_point_is_ln_y_to_third_order_on_the_target_class():
    """theta = cross_entropy_theta(n): on the target class f = -sum of the first three terms of ln y at 1, so its
    value and first three derivatives at y = 1 are those of -ln y; a non-target class adds -(y - 1)^3 / 3."""
    n = 10
    th = cross_entropy_theta(n)
    assert th == (1.0, 1.0, 10.0, -10.0, 20.0, 10.0, -10.0, 0.0)
    y = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)

    def on_class(x, yy):  # one class's contribution to f = -(1/n) sum_i T_i
        return -taylorglo_terms(torch.tensor(x, dtype=torch.float64), yy, th) / n

    a, b = on_class(1.0, y), -torch.log(y)
    for _ in range(4):  # value, 1st, 2nd, 3rd derivative at y = 1
        assert float(a.detach()) == pytest.approx(float(b.detach()), abs=1e-12)
        (a,) = torch.autograd.grad(a, y, create_graph=True)
        (b,) = torch.autograd.grad(b, y, create_graph=True)
    assert float(a.detach()) != pytest.approx(float(b.detach()))  # the fourth differs (0 against 6): a truncation, not ln
    for yy in (0.1, 0.5, 0.9):
        t = torch.tensor(yy, dtype=torch.float64)
        assert float(on_class(0.0, t)) == pytest.approx(-((yy - 1) ** 3) / 3, rel=1e-12)
    # the whole loss near a confident correct prediction: CE + sum over non-targets, to O(h^4)
    h = 1e-2
    probs = torch.full((1, n), h / (n - 1), dtype=torch.float64)
    probs[0, 0] = 1 - h
    f = taylorglo(torch.nn.functional.one_hot(torch.tensor([0]), n).double(), probs, th)
    others = sum(-((h / (n - 1) - 1) ** 3) / 3 for _ in range(n - 1))
    assert float(f) == pytest.approx(-math.log(1 - h) + others, abs=h**4)


def test_bad_theta_is_refused():
    with pytest.raises(ValueError, match="8 coefficients"):
        check_theta((1.0, 2.0))
    with pytest.raises(ValueError, match="finite"):
        check_theta((math.nan,) * 8)
    with pytest.raises(ValueError, match="unit"):
        regression_loss(torch.zeros(2), torch.zeros(2), squared_error_theta(), scale=0.0)


# -- the benzene force loss ------------------------------------------------------------------------------------

def test_benzene_taylorglo_force_loss_at_its_default_is_the_mse_gradient():
    task = get_task("cg_benzene")
    settings = task.loss_settings({"force_loss": "taylorglo", "force_loss_scale": 4.0})
    assert settings.theta == squared_error_theta(1.0)
    torch.manual_seed(1)
    forces_ref = 4.0 * torch.randn(12, 3, dtype=torch.float64)
    forces = (forces_ref + torch.randn(12, 3, dtype=torch.float64)).requires_grad_(True)
    energy_ref, energy = torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([1.5, 2.5], dtype=torch.float64)
    batch = (None, forces_ref, energy_ref)
    taylor = task.losses((energy, forces), batch, settings)
    plain = task.losses((energy, forces), batch, task.loss_settings({}))
    (g_t,) = torch.autograd.grad(taylor["force"], forces)
    (g_m,) = torch.autograd.grad(plain["force"], forces)
    assert torch.allclose(g_t, g_m, atol=1e-14)
    assert float(taylor["energy"]) == float(plain["energy"])
    assert float(taylor["force"]) == pytest.approx(float(plain["force"] - torch.mean(forces_ref**2)), rel=1e-12)
    # validation stays the MSE whatever the family
    assert float(task.losses((energy, forces), batch, settings, validation=True)["force"]) == float(plain["force"])
    other = task.loss_settings({"force_loss": "taylorglo", **dict(zip(THETA_NAMES, (0, 0, 1, 0, 0, 0, 0, 0)))})
    # theta_2 alone: f = -mean(y), L = -s^2 mean(F_pred / s) = -mean(F_pred) (s = 1)
    assert float(task.losses((energy, forces), batch, other)["force"]) == pytest.approx(-float(forces.mean()))
    with pytest.raises(ValueError, match="training.force_loss"):
        task.loss_settings({"force_loss": "taylor"})


def _config_with_search(base: str, search: dict, training: dict | None = None) -> dict:
    from pathlib import Path

    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / base).read_text())
    config.setdefault("training", {}).update(training or {})
    config["balancing"]["searches"]["theta"] = search
    config["balancing"]["variants"]["theta_search"] = {"method": "constant", "search": "theta"}
    return config


THETA_SPACE = {n: {"low": -3.0, "high": 3.0} for n in THETA_NAMES}


@pytest.mark.parametrize("base, family", [("config/config.yaml", "force_loss"),
                                          ("config/multidigits.yaml", "loss")])
def test_theta_search_needs_the_taylorglo_family(base, family):
    ok = {"kind": "nsde", "space": copy.deepcopy(THETA_SPACE), "population": 6, "generations": 1,
          "training": {family: "taylorglo"}}
    validate_config(_config_with_search(base, ok))
    bad = {**copy.deepcopy(ok), "training": {}}
    with pytest.raises(ConfigError, match=r"balancing\.searches\.theta\.space\.taylor_theta_0: .*"
                                          rf"{family}: '(barron|cross_entropy)'"):
        validate_config(_config_with_search(base, bad))
    wrong = {**copy.deepcopy(ok), "training": {family: "taylor"}}
    with pytest.raises(ConfigError, match=r"balancing\.searches\.theta\."):
        validate_config(_config_with_search(base, wrong))


def test_unknown_family_in_a_search_override_is_named():
    search = {"kind": "de", "space": {"force_loss_scale": {"low": 1.0, "high": 5.0}}, "population": 4,
              "generations": 1, "training": {"force_loss": "huber"}}
    with pytest.raises(ConfigError, match=r"balancing\.searches\.theta\.training\.force_loss: 'huber' is not one of"):
        validate_config(_config_with_search("config/config.yaml", search))
    barron_with_taylor = {"kind": "de", "space": {"force_loss_alpha": {"low": 0.0, "high": 2.0}}, "population": 4,
                          "generations": 1, "training": {"force_loss": "taylorglo"}}
    with pytest.raises(ConfigError, match=r"balancing\.searches\.theta\.space\.force_loss_alpha: force_loss_alpha has no effect"):
        validate_config(_config_with_search("config/config.yaml", barron_with_taylor))
