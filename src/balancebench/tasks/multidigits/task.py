"""The task ``multidigits``: two-digit multi-task classification, the ground seeds 001-003 made their claims on.

Data (:mod:`.data`): two 8 x 8 digits of ``sklearn.datasets.load_digits`` on one canvas, upper left and lower
right, overlapping (Multi-MNIST as MGDA-UB / ParetoMTL / COSMOS built it, scaled down); train / validation / test
from disjoint source images. Model (:mod:`.model`): a shared trunk (``model.architecture``: ``mlp`` or a LeNet-style
``cnn``) with two heads, conditioned on COSMOS's preference by concatenation. Losses, named ``left`` and ``right``:
the mean cross-entropy of each head (``training.loss: cross_entropy``) or the TaylorGLO loss of seed 001 Eq. 2
(``training.loss: taylorglo`` with ``training.taylor_theta_0`` .. ``taylor_theta_7``, default the third-order
Taylor expansion of cross-entropy at (1, 1); :mod:`balancebench.losses_taylorglo`).

Validation errors are always the cross-entropies (nats), whatever the training loss; the references are the
cross-entropy of the uniform predictor, ln(10), for both heads, so ``val / ref`` is unit-free and 1 is chance,
and the criterion ``C = CE_L / ln 10 + CE_R / ln 10``.

Metrics per trained model (test split): accuracy per head and their mean (higher), cross-entropy per head
(lower), and the hypervolume of (CE_L, CE_R) against the reference point (2, 2), as COSMOS reports it (seed 002,
REFERENCES.md sec. 7.2): over the 25 test rays for a preference-conditioned model, of its single point otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from balancebench.losses_taylorglo import THETA_NAMES, check_theta_search, cross_entropy_theta, theta_from_settings
from balancebench.tasks.base import HIGHER, LOWER, MetricSpec, Task, TaskData, register_task
from balancebench.tasks.multidigits.data import DIGIT, MultiDigits

if TYPE_CHECKING:  # torch-free at import: the statistics environment reads this declaration
    from balancebench.tasks.multidigits.model import TwoDigitNet

LOSS_FAMILIES = ("cross_entropy", "taylorglo")
DEFAULT_THETA = cross_entropy_theta(10)  # = losses.DEFAULT_THETA: cross-entropy to third order at (1, 1)
N_SOURCE_IMAGES = 1797  # load_digits
HV_REFERENCE = (2.0, 2.0)  # COSMOS's reference point for every data set (cross-entropies, nats)
HV_RAYS = 25
SAMPLES_PNG = "multidigits_samples.png"  # written next to the dataset file


@dataclass
class LossSettings:
    loss: str = "cross_entropy"
    theta: tuple = field(default=DEFAULT_THETA)


class DigitsSplit(TaskData):
    def __init__(self, dataset: MultiDigits, indices, device, dtype):
        import torch

        idx = np.asarray(indices, dtype=np.int64)
        self.images = torch.as_tensor(dataset.images[idx], dtype=dtype, device=device)
        self.left = torch.as_tensor(dataset.labels[idx, 0], dtype=torch.long, device=device)
        self.right = torch.as_tensor(dataset.labels[idx, 1], dtype=torch.long, device=device)

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, indices):
        from balancebench.tasks.multidigits.model import DigitsInput

        idx = list(indices)
        return DigitsInput(self.images[idx]), self.left[idx], self.right[idx]


def _pool_sizes(fractions: dict) -> dict[str, int]:
    n_val = int(round(fractions["validation"] * N_SOURCE_IMAGES))
    n_test = int(round(fractions["test"] * N_SOURCE_IMAGES))
    return {"train": N_SOURCE_IMAGES - n_val - n_test, "validation": n_val, "test": n_test}


@register_task("multidigits")
class MultiDigitsTask(Task):
    loss_names = ("left", "right")
    loss_setting_names = ("loss", *THETA_NAMES)
    conditioning = True
    metrics = (
        MetricSpec("test_acc_left", HIGHER, "accuracy"),
        MetricSpec("test_acc_right", HIGHER, "accuracy"),
        MetricSpec("test_acc_mean", HIGHER, ""),
        MetricSpec("test_loss_left", LOWER, "loss", "nats"),
        MetricSpec("test_loss_right", LOWER, "loss", "nats"),
        MetricSpec("test_hv", HIGHER, "loss", "nats^2"),
    )
    concerns = {"accuracy": ("test_acc_left", "test_acc_right"),
                "loss": ("test_loss_left", "test_loss_right", "test_hv"),
                "training cost": ("N_ep", "t_ep", "sigma_ep")}
    concern_axes = {"quality": ("accuracy", "loss"), "cost": ("training cost",)}
    dataset_file = "data/multidigits.npz"
    objective_labels = ("CE_L / ln 10 (validation)", "CE_R / ln 10 (validation)")
    # COSMOS's (2, 2) nats in the Pareto objectives CE / ln 10 (the references): HV here = HV in nats^2 / ln(10)^2
    hv_reference_point = (HV_REFERENCE[0] / math.log(10.0), HV_REFERENCE[1] / math.log(10.0))
    claim_declarations = ("balancebench.tasks.multidigits.claims:cosmos_claims",)
    search_training_parameters = THETA_NAMES

    def code_paths(self) -> tuple[str, ...]:
        return ("tasks/base.py", "tasks/multidigits", "losses_taylorglo.py")

    # -- config ----------------------------------------------------------------------------------
    def config_schema(self) -> dict:
        theta = {name: {"type": "number", "default": v, "description": f"theta_{i} of seed 001 Eq. 2 (default: "
                        "cross-entropy's third-order Taylor expansion at (1, 1))"}
                 for i, (name, v) in enumerate(zip(THETA_NAMES, DEFAULT_THETA))}
        return {"properties": {
            "multidigits": {
                "type": "object", "additionalProperties": False, "default": {},
                "description": "two load_digits digits on one canvas (balancebench.tasks.multidigits.data)",
                "properties": {
                    "canvas": {"type": "integer", "default": 12, "maximum": 64,
                               "description": f"side of the composite in pixels; > {DIGIT} (the digits' side)"},
                    "overlap": {"enum": ["max", "sum"], "default": "max"},
                    "n_train": {"type": "integer", "minimum": 1, "default": 3000},
                    "n_validation": {"type": "integer", "minimum": 1, "default": 1000},
                    "n_test": {"type": "integer", "minimum": 1, "default": 1000},
                    "source_fractions": {
                        "type": "object", "additionalProperties": False,
                        "default": {"validation": 0.2, "test": 0.2},
                        "description": "fractions of the 1797 source images kept for validation and test "
                                       "composites (the rest: training); disjoint",
                        "properties": {"validation": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.2},
                                       "test": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.2}}}}},
            "model": {"additionalProperties": False, "properties": {
                "architecture": {"enum": ["mlp", "cnn"], "default": "mlp"},
                "hidden": {"type": "integer", "minimum": 1, "default": 64},
                "channels": {"type": "integer", "minimum": 1, "default": 8, "description": "cnn: first conv"},
                "input_size": {"type": ["integer", "null"], "default": None,
                               "description": "canvas side the model reads; null: multidigits.canvas"}}},
            "training": {"properties": {
                "loss": {"enum": list(LOSS_FAMILIES), "default": "cross_entropy",
                         "description": "loss of each head in training (validation: cross-entropy)"},
                **theta}}}}

    def check_config(self, config: dict) -> None:
        from balancebench.config import ConfigError
        from balancebench.tasks.multidigits.claims import check_seed001_searches

        section = config.get("multidigits") or {}
        canvas = int(section.get("canvas", 12))
        if canvas <= DIGIT:
            raise ConfigError(f"config error at multidigits.canvas: {canvas} is too small to place two {DIGIT} x "
                              f"{DIGIT} digits shifted apart (needs > {DIGIT})")
        pools = _pool_sizes(section.get("source_fractions", {"validation": 0.2, "test": 0.2}))
        for name, n in pools.items():
            if n < 2:
                where = "source_fractions" if name == "train" else f"source_fractions.{name}"
                raise ConfigError(f"config error at multidigits.{where}: leaves {max(n, 0)} source images for the "
                                  f"{name} split (needs >= 2)")
        check_theta_search(config, "loss", "taylorglo")
        check_seed001_searches(config)  # seed 001's searches share a budget and a first population
        model = config.setdefault("model", {})
        if model.get("input_size") is None:
            model["input_size"] = canvas
        elif int(model["input_size"]) != canvas:
            raise ConfigError(f"config error at model.input_size: {model['input_size']} is not multidigits.canvas "
                              f"{canvas}")

    def loss_settings_record(self, settings: LossSettings) -> dict:
        """``loss`` and ``taylor_theta_0..7``: the config's keys (the settings' ``theta`` is one tuple)."""
        return {"loss": settings.loss, **{name: float(v) for name, v in zip(THETA_NAMES, settings.theta)}}

    def loss_settings(self, training: dict) -> LossSettings:
        training = training or {}
        loss = training.get("loss", "cross_entropy")
        if loss not in LOSS_FAMILIES:
            raise ValueError(f"training.loss must be one of {LOSS_FAMILIES}, not {loss!r}")
        return LossSettings(loss, theta_from_settings(training, DEFAULT_THETA))

    # -- data and model --------------------------------------------------------------------------
    def make_dataset(self, config: dict, path) -> None:
        from balancebench.tasks.multidigits.data import build, plot_samples, write

        data = build(config["multidigits"], int(config["seed"]))
        write(data, path)
        plot_samples(data, Path(path).with_name(SAMPLES_PNG))

    def read_dataset(self, path) -> MultiDigits:
        from balancebench.tasks.multidigits.data import read

        return read(path)

    def model_settings(self, model: dict) -> dict:
        m = dict(model or {})
        return {"architecture": m.get("architecture", "mlp"), "input_size": int(m.get("input_size") or 12),
                "hidden": int(m.get("hidden", 64)), "channels": int(m.get("channels", 8))}

    def build_model(self, model_settings: dict, preference_dim: int = 0) -> TwoDigitNet:
        from balancebench.tasks.multidigits.model import TwoDigitNet

        return TwoDigitNet(**model_settings, preference_dim=int(preference_dim))

    def training_data(self, dataset: MultiDigits, split: str, model_settings, device, dtype) -> DigitsSplit:
        if len(dataset.split.get(split, ())) == 0:
            raise ValueError(f"the dataset has no {split} composites")
        return DigitsSplit(dataset, dataset.split[split], device, dtype)

    def prepare_model(self, model, train_data: DigitsSplit) -> None:
        side = int(train_data.images.shape[-1])
        if model.config["input_size"] != side:
            raise ValueError(f"model.input_size {model.config['input_size']} does not match the data's canvas {side}")

    def data_fingerprint(self, dataset: MultiDigits, split: str = "train") -> list:
        return [dataset.labels.tobytes(), np.asarray(dataset.split[split]).tobytes()]

    def run_record(self, model, dataset) -> dict:
        return {"data_provenance": dict(dataset.provenance)}

    # -- losses ----------------------------------------------------------------------------------
    def model_input(self, batch):
        return batch[0]

    def predict(self, model, batch, training: bool):
        return model(batch[0])

    def batched_predictions(self, models: list, batches: list, training: bool, shared_graph: bool) -> list:
        """Multi-seed training (``training.multiseed``): each seed's logits on its own batch, one model after the
        other in the one process (no vectorisation: the gain is one job per variant instead of one per seed, the
        process start-up and set-up of the other seeds); every seed's numbers equal its lone run's
        (tests/test_multidigits.py)."""
        return [self.predict(m, b, training) for m, b in zip(models, batches)]

    def losses(self, predictions, batch, settings: LossSettings, validation: bool = False) -> dict:
        """Cross-entropy per head; in training with ``loss: taylorglo`` the TaylorGLO loss (seed 001 Eq. 2)."""
        from balancebench.tasks.multidigits.losses import cross_entropy, taylorglo_loss

        (logits_l, logits_r), (_, left, right) = predictions, batch
        if validation or settings.loss == "cross_entropy":
            return {"left": cross_entropy(logits_l, left), "right": cross_entropy(logits_r, right)}
        return {"left": taylorglo_loss(logits_l, left, settings.theta),
                "right": taylorglo_loss(logits_r, right, settings.theta)}

    def loss_references(self, train_data, settings) -> dict[str, float]:
        """ln(10) for both heads: the cross-entropy of the uniform predictor (val / ref = 1 is chance)."""
        return {"left": math.log(10.0), "right": math.log(10.0)}

    def dataset_references(self, dataset, settings) -> dict[str, float]:
        return self.loss_references(None, settings)

    def split_error(self, model, data: DigitsSplit, settings, references, batch_size: int = 500) -> float:
        """Seed 001's objective on a split: the error rate, 1 - the mean accuracy of the two heads."""
        _, _, acc_l, acc_r = _test_errors(model, data, batch_size)
        return 1.0 - 0.5 * (acc_l + acc_r)

    # -- evaluation ------------------------------------------------------------------------------
    def evaluate(self, model, dataset: MultiDigits, hparams: dict, config: dict) -> dict:
        return {k: (float(v), "completed", "") for k, v in
                evaluate_test_split(model, dataset, hparams.get("preference"), hparams.get("test_preferences")).items()}


def _test_errors(model, data: DigitsSplit, batch_size: int = 500) -> tuple[float, float, float, float]:
    """(CE_L, CE_R, acc_L, acc_R) over ``data`` (float64 sums)."""
    import torch

    ce, acc = np.zeros(2), np.zeros(2)
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            inp, left, right = data.batch(range(start, min(len(data), start + batch_size)))
            for j, (logits, labels) in enumerate(zip(model(inp), (left, right))):
                ce[j] += float(torch.nn.functional.cross_entropy(logits.double(), labels, reduction="sum"))
                acc[j] += float((logits.argmax(-1) == labels).sum())
    n = len(data)
    return ce[0] / n, ce[1] / n, acc[0] / n, acc[1] / n


def evaluate_test_split(model, dataset: MultiDigits, preference=None, rays=None) -> dict[str, float]:
    """The task's metrics on the test split; a conditioned model at ``preference`` (its chosen r) and its
    hypervolume over its test rays (``rays``: those of its validation front, recorded in hparams.json; default the
    HV_RAYS circle rays, COSMOS's evaluation), else that of its single point."""
    from balancebench.pareto import circle_points, hypervolume

    model.eval()
    data = DigitsSplit(dataset, dataset.split["test"], "cpu", next(model.parameters()).dtype)
    ce_l, ce_r, acc_l, acc_r = _test_errors(model, data)
    points = [[ce_l, ce_r]]
    if model.config.get("preference_dim", 0) > 0:
        points = []
        for ray in (circle_points(HV_RAYS) if rays is None else np.asarray(rays, dtype=float)):
            model.fix_preference(ray)
            points.append(list(_test_errors(model, data)[:2]))
        model.fix_preference(preference if preference is not None else (0.5, 0.5))
    return {"test_acc_left": acc_l, "test_acc_right": acc_r, "test_acc_mean": 0.5 * (acc_l + acc_r),
            "test_loss_left": ce_l, "test_loss_right": ce_r,
            "test_hv": hypervolume(np.asarray(points, dtype=float), HV_REFERENCE)}
