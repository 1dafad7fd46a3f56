"""The task ``cg_benzene`` behind the task contract (:mod:`balancebench.tasks.base`): seed 000's force matching.

Loss of one batch of B frames with N beads (Eq. 2 of seed 000), named ``force`` and ``energy``::

    L_F = 1/(3 N B) sum_frames sum_i |F_i^pred - M(F^A)_i|^2          (kcal/mol/A)^2
    L_E = 1/B sum_frames (E^pred - U_A)^2                               (kcal/mol)^2   (energy_loss: total)
          1/B sum_frames ((E^pred - U_A) / N)^2                          (energy_loss: per_bead)

``force_loss_alpha`` != 2 replaces the force MSE of the training step by the robust loss of
:mod:`balancebench.tasks.cg_benzene.losses`; ``force_loss: taylorglo`` replaces it by the TaylorGLO polynomial
of seed 001 (:mod:`balancebench.losses_taylorglo`) per Cartesian force component, x = F_ref / s, y = F_pred / s
with the unit s = ``force_loss_scale``, ``L_F = s^2 f(x, y)`` (its default theta, ``squared_error_theta(1)``,
gives ``L_F = MSE_F - mean(F_ref^2)``: the MSE's gradient exactly). Validation stays MSE. The references that make the validation
errors unit-free are the variances of the targets over the training frames, Var(F) in (kcal/mol/A)^2 and
Var(E) in (kcal/mol)^2 (per bead with ``energy_loss: per_bead``), so the criterion is
``C = MSE_F / Var(F) + MSE_E / Var(E)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from balancebench.losses_taylorglo import THETA_NAMES, check_theta_search, squared_error_theta
from balancebench.settings import settings_from_section
from balancebench.tasks.base import MetricSpec, Task, register_task
from balancebench.tasks.cg_benzene.cg import CGDataset, read_dataset
from balancebench.tasks.cg_benzene.config_checks import check_physics
from balancebench.tasks.cg_benzene.metrics import CONCERNS, COST_CONCERNS, METRICS, PHYSICS_CONCERNS

if TYPE_CHECKING:  # torch-free at import: the statistics environment reads this declaration
    from balancebench.tasks.cg_benzene.model import CGSchNet, GraphBatch, ModelConfig
    from balancebench.tasks.cg_benzene.training_data import FrameSet


FORCE_LOSS_FAMILIES = ("barron", "taylorglo")
SQUARED_ERROR = squared_error_theta(1.0)


@dataclass
class CGLossSettings:
    """The training-section keys that set the loss of Eq. 2 (see the module docstring)."""

    energy_loss: str = "total"  # total (Eq. 2 as printed) | per_bead
    force_loss: str = "barron"  # the force loss family of the training step: barron | taylorglo
    # robust force loss of the training step (balancebench.tasks.cg_benzene.losses; 2 = the MSE of Eq. 2)
    force_loss_alpha: float = 2.0
    force_loss_scale: float = 1.0  # kcal/mol/A: Barron's c, or TaylorGLO's unit s
    # TaylorGLO's theta_0..theta_7 (force_loss: taylorglo); default: the squared error (the MSE's gradient)
    taylor_theta_0: float = SQUARED_ERROR[0]
    taylor_theta_1: float = SQUARED_ERROR[1]
    taylor_theta_2: float = SQUARED_ERROR[2]
    taylor_theta_3: float = SQUARED_ERROR[3]
    taylor_theta_4: float = SQUARED_ERROR[4]
    taylor_theta_5: float = SQUARED_ERROR[5]
    taylor_theta_6: float = SQUARED_ERROR[6]
    taylor_theta_7: float = SQUARED_ERROR[7]

    @classmethod
    def from_dict(cls, d: dict) -> CGLossSettings:
        settings = settings_from_section(cls, d, "training")
        if settings.energy_loss not in ("total", "per_bead"):
            raise ValueError(f"energy_loss must be 'total' or 'per_bead', not {settings.energy_loss!r}")
        if settings.force_loss not in FORCE_LOSS_FAMILIES:
            raise ValueError(f"training.force_loss must be one of {FORCE_LOSS_FAMILIES}, not {settings.force_loss!r}")
        return settings

    @property
    def theta(self) -> tuple[float, ...]:
        return tuple(float(getattr(self, name)) for name in THETA_NAMES)


def dataset_target_variances(dataset: CGDataset, energy_loss: str = "total") -> tuple[float, float]:
    """(Var(F), Var(E)) over the training frames, as the trainer's criterion (unbiased; Var(E) 1 if undefined)."""
    train = np.asarray(dataset.split["train"], dtype=np.int64)
    forces = np.asarray(dataset.forces[train], dtype=np.float64)
    var_f = float(np.var(forces, ddof=1))
    n = dataset.n_beads if energy_loss == "per_bead" else 1
    energy = np.asarray(dataset.energy[train], dtype=np.float64) / n
    var_e = float(np.var(energy, ddof=1)) if len(train) > 1 else 0.0
    return var_f, (var_e if var_e > 0 else 1.0)


@register_task("cg_benzene")
class CGBenzene(Task):
    """Seed 000's pipeline: CG liquid benzene, a SchNet-type force field trained on forces + energy."""

    loss_names = ("force", "energy")
    dataset_file = "cg/dataset.h5"
    rules = "workflow/rules/tasks/cg_benzene/rules.smk"
    loss_setting_names = tuple(CGLossSettings.__dataclass_fields__)
    conditioning = True

    concerns = CONCERNS
    concern_axes = {"quality": PHYSICS_CONCERNS, "cost": COST_CONCERNS}

    @property
    def metrics(self) -> tuple[MetricSpec, ...]:
        owner = {metric: concern for concern, names in CONCERNS.items() for metric in names}
        return tuple(MetricSpec(m.name, m.direction, owner.get(m.name, "")) for m in METRICS.values())

    objective_labels = ("MSE_F / Var(F) (validation)", "MSE_E / Var(E) (validation)")
    evaluation_sections = ("atomistic", "observables", "metrics", "simulation")
    search_training_parameters = ("force_loss_alpha", "force_loss_scale", *THETA_NAMES)
    search_metric_objectives = ("d_KS", "gr_w1", "delta_U")  # from a short NVT per candidate

    # the seed papers' claims are checked on their own ground; this task's claims.md links to those tables
    claims_elsewhere = ("config/multidigits.yaml", "config/pinn_helmholtz2d.yaml")

    def search_weight_aliases(self) -> dict[str, int]:
        """``energy_weight``: lambda_E of Eq. 2 with lambda_F = 1."""
        return {"energy_weight": 1}

    def code_paths(self) -> tuple[str, ...]:
        return ("tasks/base.py", "tasks/cg_benzene", "losses_taylorglo.py")

    def config_schema(self) -> dict:
        import yaml

        return yaml.safe_load((Path(__file__).parent / "config.schema.yaml").read_text())

    def check_config(self, config: dict) -> None:
        check_physics(config)
        check_theta_search(config, "force_loss", "taylorglo", barron=("force_loss_alpha",))

    def loss_settings(self, training: dict) -> CGLossSettings:
        return CGLossSettings.from_dict({k: v for k, v in (training or {}).items() if k in self.loss_setting_names})

    def read_dataset(self, path) -> CGDataset:
        return read_dataset(path)

    def model_settings(self, model: dict) -> ModelConfig:
        from balancebench.tasks.cg_benzene.model import ModelConfig

        return model if isinstance(model, ModelConfig) else ModelConfig.from_dict(model)

    def build_model(self, model_settings: ModelConfig, preference_dim: int = 0) -> CGSchNet:
        import dataclasses

        from balancebench.tasks.cg_benzene.model import CGSchNet

        return CGSchNet(dataclasses.replace(model_settings, preference_dim=int(preference_dim)))

    def training_data(self, dataset: CGDataset, split: str, model_settings: ModelConfig, device, dtype) -> FrameSet:
        from balancebench.tasks.cg_benzene.training_data import FrameSet

        indices = dataset.split.get(split)
        if indices is None or len(indices) == 0:
            if split == "validation":
                raise ValueError("the dataset has no validation frames: early stopping needs them "
                                 "(cg.validation_fraction > 0)")
            raise ValueError(f"the dataset has no {split} frames")
        return FrameSet(dataset, indices, model_settings.cutoff, device, dtype)

    def prepare_model(self, model: CGSchNet, train_data: FrameSet) -> None:
        from balancebench.tasks.cg_benzene.training_data import fit_energy_scale

        model.set_energy_scale(*fit_energy_scale(model, train_data))

    def data_fingerprint(self, dataset: CGDataset, split: str = "train") -> list:
        return [dataset.energy.tobytes(), np.asarray(dataset.split[split]).tobytes()]

    def model_input(self, batch) -> GraphBatch:
        return batch[0]

    def predict(self, model: CGSchNet, batch, training: bool):
        return model.energy_and_forces(batch[0], training=training)

    def losses(self, predictions, batch, settings: CGLossSettings, validation: bool = False) -> dict:
        from balancebench.tasks.cg_benzene.training_data import losses_from_predictions

        energy, forces = predictions
        _, forces_ref, energy_ref = batch
        n_beads = int(forces_ref.shape[0] // energy_ref.shape[0])
        if validation:  # the plain errors (MSE) whatever the training loss's shape
            return losses_from_predictions(energy, forces, forces_ref, energy_ref, settings.energy_loss, n_beads)
        if settings.force_loss == "taylorglo":
            return losses_from_predictions(energy, forces, forces_ref, energy_ref, settings.energy_loss, n_beads,
                                           force_loss_scale=settings.force_loss_scale, taylor_theta=settings.theta)
        return losses_from_predictions(energy, forces, forces_ref, energy_ref, settings.energy_loss, n_beads,
                                       settings.force_loss_alpha, settings.force_loss_scale)

    def loss_references(self, train_data: FrameSet, settings: CGLossSettings) -> dict[str, float]:
        from balancebench.tasks.cg_benzene.training_data import target_variances

        return target_variances(train_data, settings.energy_loss)

    def dataset_references(self, dataset: CGDataset, settings: CGLossSettings) -> dict[str, float]:
        var_f, var_e = dataset_target_variances(dataset, settings.energy_loss)
        return {"force": var_f, "energy": var_e}

    def errors(self, predictions, batch, settings: CGLossSettings) -> dict[str, float]:
        """Plain errors in float64 (MSE_F, MSE_E) of one batch: the objectives of a conditioned model's front."""
        import torch

        energy, forces = predictions
        _, f_ref, e_ref = batch
        err_e = (energy - e_ref).detach().double()
        if settings.energy_loss == "per_bead":
            err_e = err_e / int(f_ref.shape[0] // e_ref.shape[0])
        return {"force": float(torch.mean((forces.detach().double() - f_ref.double()) ** 2)),
                "energy": float(torch.mean(err_e**2))}

    def candidate_evaluation(self, model_dir, dataset, config: dict, spec, seed: int, inputs: dict, threads: int,
                             job) -> dict:
        """A short CG NVT of the candidate's model (the search's ``simulation`` settings over the run's) and its
        metrics, as rules simulate and model_metrics compute them."""
        import torch

        from balancebench.tasks.cg_benzene.metrics import MetricSettings, evaluate_model
        from balancebench.tasks.cg_benzene.simulation import simulate_model

        torch.set_num_threads(threads)
        model_dir = Path(model_dir)
        sim_config = {**config["simulation"], **spec.simulation}
        cfg = {k: config[k] for k in ("atomistic", "observables", "metrics")}
        cfg["simulation"] = sim_config
        temperature = sim_config.get("temperature") or cfg["atomistic"]["temperature"]
        simulate_model(model_dir, dataset, sim_config, temperature, seed, model_dir / "nvt",
                       provenance=json.dumps(job.provenance(), default=str), log=job.logger)
        physics = evaluate_model(model_dir.parent.parent.name, seed, model_dir, model_dir / "nvt",
                                 Path(inputs["observables"]).parent,
                                 settings=MetricSettings.from_config(cfg, temperature=sim_config.get("temperature")))
        return {"status": physics["simulation_status"], "reason": physics["simulation_reason"],
                "metrics": physics["metrics"]}

    def batched_predictions(self, models: list, batches: list, training: bool, shared_graph: bool) -> list:
        from balancebench.tasks.cg_benzene.batched import batched_energy_and_forces

        return batched_energy_and_forces(models, [b[0] for b in batches], training=training,
                                         shared_graph=shared_graph)

    def run_record(self, model: CGSchNet, dataset: CGDataset) -> dict:
        from balancebench.tasks.cg_benzene import pair_kernels

        return {"n_beads": dataset.n_beads, "bead_mass": float(dataset.masses[0]), "energy_unit": "kcal/mol",
                "length_unit": "angstrom", "energy_shift_per_bead": float(model.energy_shift),
                "energy_scale": float(model.energy_scale), "pair_kernels": pair_kernels.status()}
