"""A toy task registered from a test file (docs/tasks.md): the proof that a new task needs no core edit.

Two regressions from one input x (4 features, standard normal) through a shared trunk:
``left``  y_l = x . w_l + 0.1 noise              (scale ~1)
``right`` y_r = 30 sin(x . w_r) + 3 noise        (scale ~30: the losses differ by ~1e3, as real ones do)
Losses are the mean squared errors; their references the variances of the training targets; the task's
metrics are the test-set MSEs. No rules of its own: the generic task_data and evaluate_model rules run it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from balancebench.tasks.base import LOWER, MetricSpec, Task, TaskData, register_task


@dataclass
class ToyDataset:
    task: ClassVar[str] = "toy_regression"
    x: np.ndarray
    left: np.ndarray
    right: np.ndarray
    split: dict = field(default_factory=dict)


class ToySplit(TaskData):
    def __init__(self, dataset: ToyDataset, indices, device, dtype):
        idx = np.asarray(indices, dtype=np.int64)
        self.x = torch.as_tensor(dataset.x[idx], dtype=dtype, device=device)
        self.left = torch.as_tensor(dataset.left[idx], dtype=dtype, device=device)
        self.right = torch.as_tensor(dataset.right[idx], dtype=dtype, device=device)

    def __len__(self) -> int:
        return len(self.x)

    def batch(self, indices):
        idx = list(indices)
        return self.x[idx], self.left[idx], self.right[idx]


class ToyModel(torch.nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.config = {"hidden": int(hidden)}
        self.trunk = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.Tanh())
        self.head_left = torch.nn.Linear(hidden, 1)
        self.head_right = torch.nn.Linear(hidden, 1)

    def forward(self, x):
        h = self.trunk(x)
        return self.head_left(h).squeeze(-1), self.head_right(h).squeeze(-1)


@register_task("toy_regression")
class ToyRegression(Task):
    loss_names = ("left", "right")
    metrics = (MetricSpec("test_mse_left", LOWER, "accuracy"), MetricSpec("test_mse_right", LOWER, "accuracy"))
    concerns = {"accuracy": ("test_mse_left", "test_mse_right"), "training cost": ("N_ep", "t_ep", "sigma_ep")}
    concern_axes = {"quality": ("accuracy",), "cost": ("training cost",)}
    dataset_file = "data/toy.npz"

    def config_schema(self) -> dict:
        return {"properties": {
            "toy_regression": {"type": "object", "additionalProperties": False, "default": {}, "properties": {
                "n_samples": {"type": "integer", "minimum": 20, "default": 120}}},
            "model": {"additionalProperties": False, "properties": {
                "hidden": {"type": "integer", "minimum": 1, "default": 8}}}}}

    def make_dataset(self, config: dict, path) -> None:
        rng = np.random.default_rng(int(config["seed"]))
        n = int(config["toy_regression"]["n_samples"])
        x = rng.standard_normal((n, 4))
        left = x @ np.array([1.0, -0.5, 0.3, 0.0]) + 0.1 * rng.standard_normal(n)
        right = 30.0 * np.sin(x @ np.array([0.2, 0.4, -0.6, 0.8])) + 3.0 * rng.standard_normal(n)
        order = rng.permutation(n)
        n_test = n_val = n // 5
        np.savez(path, x=x, left=left, right=right, test=order[:n_test], validation=order[n_test:n_test + n_val],
                 train=order[n_test + n_val:])

    def read_dataset(self, path) -> ToyDataset:
        with np.load(path) as data:
            return ToyDataset(data["x"], data["left"], data["right"],
                              {k: data[k] for k in ("train", "validation", "test")})

    def build_model(self, model_settings: dict, preference_dim: int = 0) -> ToyModel:
        return ToyModel(dict(model_settings).get("hidden", 8))

    def training_data(self, dataset: ToyDataset, split: str, model_settings, device, dtype) -> ToySplit:
        return ToySplit(dataset, dataset.split[split], device, dtype)

    def data_fingerprint(self, dataset: ToyDataset, split: str = "train") -> list:
        return [dataset.left.tobytes(), np.asarray(dataset.split[split]).tobytes()]

    def predict(self, model, batch, training: bool):
        return model(batch[0])

    def losses(self, predictions, batch, settings, validation: bool = False) -> dict:
        (p_left, p_right), (_, left, right) = predictions, batch
        return {"left": torch.mean((p_left - left) ** 2), "right": torch.mean((p_right - right) ** 2)}

    def loss_references(self, train_data: ToySplit, settings) -> dict[str, float]:
        return {"left": float(torch.var(train_data.left.double())), "right": float(torch.var(train_data.right.double()))}

    def dataset_references(self, dataset: ToyDataset, settings) -> dict[str, float]:
        train = dataset.split["train"]
        return {"left": float(np.var(dataset.left[train], ddof=1)), "right": float(np.var(dataset.right[train], ddof=1))}

    def evaluate(self, model, dataset: ToyDataset, hparams: dict, config: dict) -> dict:
        test = ToySplit(dataset, dataset.split["test"], "cpu", next(model.parameters()).dtype)
        with torch.no_grad():
            p_left, p_right = model(test.x)
        return {"test_mse_left": (float(torch.mean((p_left - test.left) ** 2)), "completed", ""),
                "test_mse_right": (float(torch.mean((p_right - test.right) ** 2)), "completed", "")}
