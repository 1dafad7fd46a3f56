"""The robust force loss: the MSE at alpha = 2, the known closed forms, the quadratic limit, continuity in alpha."""

import pytest
import torch

from balancebench.tasks.cg_benzene.losses import robust_force_loss

R = torch.tensor([-30.0, -3.0, -0.5, 0.0, 0.2, 1.0, 4.0, 50.0], dtype=torch.float64)


def test_alpha_two_is_the_mse_exactly():
    assert robust_force_loss(R, 2.0, 3.0).item() == torch.mean(R**2).item()


@pytest.mark.parametrize("c", [0.5, 2.0, 10.0])
def test_closed_forms(c):
    cauchy = torch.mean(2 * c * c * torch.log(R**2 / (2 * c * c) + 1))
    huber = torch.mean(2 * c * c * (torch.sqrt(R**2 / c**2 + 1) - 1))
    assert robust_force_loss(R, 0.0, c).item() == pytest.approx(cauchy.item(), rel=1e-12)
    assert robust_force_loss(R, 1.0, c).item() == pytest.approx(huber.item(), rel=1e-12)


@pytest.mark.parametrize("alpha", [-4.0, -1.0, 0.0, 0.5, 1.0, 1.5, 2.0])
def test_every_shape_is_quadratic_for_small_residuals(alpha):
    r = torch.tensor([1e-4, -2e-4], dtype=torch.float64)
    assert robust_force_loss(r, alpha, 1.0).item() == pytest.approx(torch.mean(r**2).item(), rel=1e-6)


def test_continuous_in_alpha_and_robust_below_two():
    for a0 in (0.0, 2.0):
        assert robust_force_loss(R, a0 + 1e-4, 2.0).item() == pytest.approx(robust_force_loss(R, a0, 2.0).item(),
                                                                            rel=1e-3)
    losses = [robust_force_loss(R, a, 2.0).item() for a in (2.0, 1.0, 0.0, -2.0)]
    assert losses == sorted(losses, reverse=True)  # large residuals weigh less as alpha falls


def test_gradient_is_finite_and_bounded_for_alpha_below_one():
    r = R.clone().requires_grad_(True)
    robust_force_loss(r, 0.0, 1.0).backward()
    assert torch.isfinite(r.grad).all()
    assert r.grad.abs().max() * len(R) <= 2 ** 0.5 * 1.0 + 1e-9  # Cauchy: |d rho/dr| <= sqrt(2) c
    with pytest.raises(ValueError, match="force_loss_scale"):
        robust_force_loss(R, 1.0, 0.0)
