"""The torchjd adapters: Jacobian through the real CGSchNet force double backward, aggregation, the GPL-free
UPGrad projector."""

import numpy as np
import pytest
import torch

from balancebench.balancing import get_method, missing_requirements
from balancebench.balancing.torchjd_adapter import project_dual_cone_weights
from balancebench.tasks.cg_benzene.model import ModelConfig
from balancebench.tasks.cg_benzene.training_data import loss_components
from balancebench.training import Trainer, TrainingSettings

MODEL = dict(hidden_channels=16, num_filters=16, num_interactions=2, num_gaussians=16, cutoff=7.5,
             prior_sigma=3.5, prior_exponent=12.0)


@pytest.fixture(scope="module")
def trainer(lj_dataset):
    return Trainer(lj_dataset, ModelConfig(**MODEL), TrainingSettings(batch_size=4, dtype="float64"),
                   get_method("torchjd_upgrad"), seed=0)


def batch_losses(trainer, frames=(0, 1, 2, 3)):
    graph, f_ref, e_ref = trainer.train_data.batch(list(frames))
    return loss_components(trainer.model, graph, f_ref, e_ref, "total", trainer.train_data.n_beads, training=True)


def autograd_jacobian(losses, params):
    rows = []
    for c in ("force", "energy"):
        g = torch.autograd.grad(losses[c], params, retain_graph=True, allow_unused=True)
        rows.append([torch.zeros_like(p) if gi is None else gi for gi, p in zip(g, params)])
    return [torch.stack([rows[0][i], rows[1][i]]) for i in range(len(params))]


def test_autojac_jacobian_equals_per_loss_autograd_through_the_force_double_backward(trainer):
    from torchjd.autojac import backward

    params = trainer.context.model_params
    losses = batch_losses(trainer)
    expected = autograd_jacobian(losses, params)
    for p in params:
        p.grad = None
        if hasattr(p, "jac"):
            del p.jac
    backward([losses["force"], losses["energy"]], inputs=params)
    force_reaches = 0
    for p, jac in zip(params, expected):
        torch.testing.assert_close(p.jac, jac, rtol=1e-10, atol=1e-12)
        force_reaches += int(jac[0].abs().sum() > 0)
        del p.jac
    assert force_reaches >= len(params) - 2  # the force row is real: every parameter but the energy offsets


@pytest.mark.parametrize("name", ["torchjd_upgrad", "torchjd_imtlg", "torchjd_alignedmtl", "torchjd_cagrad"])
def test_adapter_gradient_is_the_weighted_jacobian_and_matches_the_pure_combine(trainer, name):
    if missing_requirements(name):
        pytest.skip(f"{name} needs {missing_requirements(name)}")
    method = get_method(name)
    ctx = trainer.context
    method.setup(ctx)
    params = ctx.model_params
    losses = batch_losses(trainer)
    jac = autograd_jacobian(losses, params)
    for p in params:
        p.grad = None
    method.backward(losses, ctx)
    w = torch.as_tensor(method.last_weights, dtype=torch.float64)
    for p, j in zip(params, jac):
        torch.testing.assert_close(p.grad, torch.einsum("k,k...->...", w, j), rtol=1e-8, atol=1e-12)
    flat = torch.cat([j.reshape(2, -1) for j in jac], dim=1)
    direction = method.combine(flat)
    torch.testing.assert_close(direction, torch.cat([p.grad.reshape(-1) for p in params]), rtol=1e-8, atol=1e-12)
    values = method.log_values()
    np.testing.assert_allclose([values["coef_force"], values["coef_energy"]], method.last_weights)
    for p in params:
        p.grad = None


def test_upgrad_matches_torchjd_documented_example():
    j = torch.tensor([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(get_method("torchjd_upgrad").combine(j),
                               torch.tensor([0.2929, 1.9004, 1.9004], dtype=torch.float64), atol=1e-4, rtol=0)


def test_upgrad_never_conflicts_with_any_gradient():
    gen = torch.Generator().manual_seed(0)
    m = get_method("torchjd_upgrad", n_components=3)
    for _ in range(20):
        g = torch.randn(3, 7, generator=gen, dtype=torch.float64)
        d = m.combine(g)
        assert (g @ d >= -1e-9).all()


@pytest.mark.parametrize("seed", range(6))
def test_active_set_projection_satisfies_the_kkt_conditions(seed):
    """min v^T G v s.t. v >= u: feasibility, dual feasibility (G v >= 0) and complementarity."""
    rng = np.random.default_rng(seed)
    k = 2 + seed % 3
    a = rng.normal(size=(k, 5))
    g = a @ a.T + 1e-3 * np.eye(k)
    u = rng.uniform(0, 1, size=k)
    v = project_dual_cone_weights(u, g)
    mult = g @ v
    assert np.all(v >= u - 1e-10) and np.all(mult >= -1e-10)
    np.testing.assert_allclose(mult * (v - u), 0.0, atol=1e-10)
    # and no feasible point on a fine random cloud beats it
    trial = u + np.abs(rng.normal(size=(20000, k)))
    assert np.min(np.einsum("ni,ij,nj->n", trial, g, trial)) >= v @ g @ v - 1e-12


def test_quadprog_solver_is_an_optional_extra():
    m = get_method("torchjd_upgrad", solver="quadprog")
    j = torch.tensor([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]], dtype=torch.float64)
    try:
        import quadprog  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="torchjd_upgrad"):
            m.combine(j)
    else:
        torch.testing.assert_close(m.combine(j), get_method("torchjd_upgrad").combine(j), atol=1e-6, rtol=0)
