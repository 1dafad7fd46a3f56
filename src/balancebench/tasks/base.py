"""The task contract: what the core (training, balancing, searches, COSMOS, timing, pareto, stats) may ask of
an application.

A *task* is one folder under ``src/balancebench/tasks/`` that provides, by name:

- its **named losses** (``loss_names``, any number >= 2) computed on a batch from the model's predictions
  (:meth:`Task.predict`, :meth:`Task.losses`); the validation losses are the plain errors (MSE-like) and the
  *references* (:meth:`Task.loss_references`, e.g. the variances of the targets) make them unit-free:
  the early-stopping criterion is ``C = sum_i val_i / ref_i`` and the searches' objectives are ``val_i / ref_i``;
- a **model factory** from its ``model:`` settings (:meth:`Task.build_model`) with the hooks some methods need:
  a conditioning input for preference-conditioned methods (``conditioning``) and the last shared layer for
  GradNorm (the model's ``last_shared_parameter()``);
- its **data** (:meth:`Task.read_dataset`, :meth:`Task.training_data`: a split on a device, batched by index);
- its **metrics** with a direction and a concern (:data:`MetricSpec`), the rows of ``metrics.csv``.

A task registers itself with :func:`register_task`; the core looks it up with :func:`get_task`. Learned from
DeepXDE (a PDE is residual + geometry apart from the network and the trainer) and schnetpack's ``ModelOutput``
(a loss term is named data).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

LOWER, HIGHER, TARGET = "lower", "higher", "target"
DIRECTIONS = (LOWER, HIGHER, TARGET)


@dataclass(frozen=True)
class MetricSpec:
    """One row kind of ``metrics.csv``: its name, better direction and the concern it belongs to."""

    name: str
    direction: str  # lower | higher | target (closest to a per-run target)
    concern: str = ""  # e.g. structure, dynamics, thermodynamics, accuracy, cost ('' : in no concern)
    unit: str = ""
    target: float | None = None  # direction "target": the value to come closest to

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"metric {self.name!r}: direction must be one of {DIRECTIONS}, not {self.direction!r}")


class TaskData:
    """One split of a task's data on a device: ``len()`` items, :meth:`batch` of item indices."""

    def __len__(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def batch(self, indices) -> Any:  # pragma: no cover - interface
        """A batch object of the task; its ``model_input`` is what a method's ``prepare_batch`` sees."""
        raise NotImplementedError


class Task:
    """The contract (see the module docstring). Subclasses set the class attributes and the methods."""

    name: ClassVar[str] = ""
    loss_names: ClassVar[tuple[str, ...]] = ()
    # the training-section keys that set the task's losses (validated and read by the task, not the trainer)
    loss_setting_names: ClassVar[tuple[str, ...]] = ()
    # the model offers a conditioning input (a preference vector per batch: COSMOS)
    conditioning: ClassVar[bool] = False
    # why the task cannot serve methods that evaluate other training items (BalancingMethod.evaluates_other_items,
    # through TrainContext.losses_at); "" when it can
    other_items_refusal: ClassVar[str] = ""
    metrics: ClassVar[tuple[MetricSpec, ...]] = ()
    # concern -> its metrics (each metric in at most one): the per-concern rankings of the verdict
    concerns: ClassVar[dict[str, tuple[str, ...]]] = {}
    # the concerns averaged into the quality axis and the cost axis of the physics-vs-cost figure
    concern_axes: ClassVar[dict[str, tuple[str, ...]]] = {"quality": (), "cost": ()}

    # the task's training data file (relative to the run's results directory), made by its data stage
    dataset_file: ClassVar[str] = "data/dataset.npz"
    # its own rules file (data and evaluation stages; path relative to the Snakefile's directory), or None:
    # the generic rules task_data (make_dataset) and evaluate_model (evaluate) of workflow/rules/task_stages.smk
    rules: ClassVar[str | None] = None

    # the config sections its evaluation reads (a change reruns the evaluations and the searches that use them)
    evaluation_sections: ClassVar[tuple[str, ...]] = ()
    # the words for the two objectives of the Pareto figure (None: val_<loss> / reference)
    objective_labels: ClassVar[tuple[str, str] | None] = None
    # the hypervolume reference point in the Pareto objectives' units (val_i / ref_i), one number per loss, fixed
    # before any run (None: 1 per loss, the mean predictor for variance references); see hypervolume_reference
    hv_reference_point: ClassVar[tuple[float, ...] | None] = None
    # the claims of the seed papers this task checks on its results (balancebench.claims): "module:function" names
    # of functions (config) -> [Claim, ...]; other tasks whose claims tables this task's report links to
    claim_declarations: ClassVar[tuple[str, ...]] = ()
    claims_elsewhere: ClassVar[tuple[str, ...]] = ()  # config files of those tasks (their results_dir)
    # what a search may set and optimise on this task (balancebench.search.space.SearchVocabulary)
    search_training_parameters: ClassVar[tuple[str, ...]] = ()  # numeric loss settings a search may tune
    search_metric_objectives: ClassVar[tuple[str, ...]] = ()  # the task's metrics a search may optimise

    def search_weight_aliases(self) -> dict[str, int]:
        """Search parameters that set one loss's weight (others 1): ``weight_<loss>`` for every loss but the
        first, by default."""
        return {f"weight_{name}": i for i, name in enumerate(self.loss_names) if i > 0}

    def configure(self, config: dict) -> "Task":
        """This task for one run's validated ``config`` (``get_task(name, config)``). A task whose loss names or
        model depend on its settings returns an instance that holds them (``pinn``: ``pinn.problem`` gives two
        or three losses), so two runs of one task in one process (a multi-task run) never see each other's
        settings. Default: the task itself."""
        return self

    def hypervolume_reference(self, references: dict | None = None) -> tuple[float, ...]:
        """The hypervolume reference point of the Pareto stage (objectives f_i = val_i / ref_i), fixed per task:
        :attr:`hv_reference_point`, or 1 per loss (``references``' losses, else :attr:`loss_names`): the mean
        predictor when the references are the targets' variances. Never derived from a run's points."""
        if self.hv_reference_point is not None:
            return tuple(float(x) for x in self.hv_reference_point)
        return (1.0,) * len(references if references is not None else self.loss_names)

    def claims(self, config: dict) -> list:
        """The seed papers' claims this task checks (:class:`balancebench.claims.Claim`), from
        :attr:`claim_declarations` (each a function of the run's config returning a list of claims)."""
        from balancebench.claims import load_declarations

        return load_declarations(self.claim_declarations, config)

    def code_paths(self) -> tuple[str, ...]:
        """Library files and folders (relative to ``src/balancebench``) whose change reruns the task's jobs."""
        return ("tasks/base.py",)

    # -- config --------------------------------------------------------------------------------
    def config_schema(self) -> dict:
        """JSON-schema (draft 7) fragment with the task's sections (``properties``), merged into the workflow's
        schema before validation (defaults filled in); e.g. the task's own section and its ``model`` keys."""
        return {}

    def check_config(self, config: dict) -> None:
        """Raise :class:`balancebench.config.ConfigError` naming the field for a bad task section."""

    def loss_settings(self, training: dict) -> Any:
        """The task's loss settings from the ``training`` section (keys in ``loss_setting_names``)."""
        return None

    def loss_settings_record(self, settings: Any) -> dict:
        """``settings`` as ``training`` keys (a subset of ``loss_setting_names``) such that ``loss_settings`` of
        them gives ``settings`` back: what hparams.json records, and what a rebuilt run (the counted-work pass)
        reads. Default: the dataclass's fields, for settings whose fields are those names."""
        from balancebench.settings import settings_dict

        return settings_dict(settings)

    # -- data and model --------------------------------------------------------------------------
    def read_dataset(self, path) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def build_model(self, model_settings: Any, preference_dim: int = 0):  # pragma: no cover - interface
        """A ``torch.nn.Module`` from the model settings (``preference_dim`` > 0: the conditioning input)."""
        raise NotImplementedError

    def model_settings(self, model: dict) -> Any:
        """The typed model settings of a ``model:`` section (default: the dict itself)."""
        return model

    def training_data(self, dataset, split: str, model_settings, device, dtype) -> TaskData:  # pragma: no cover
        raise NotImplementedError

    def prepare_model(self, model, train_data: TaskData) -> None:
        """Fit what the model takes from the training data before the first step (e.g. output scales)."""

    def data_fingerprint(self, dataset, split: str = "train") -> list:
        """Bytes that identify the data a run trained on (part of the resume checkpoint's run hash)."""
        return []

    # -- losses ------------------------------------------------------------------------------------
    def predict(self, model, batch, training: bool) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def losses(self, predictions, batch, settings: Any, validation: bool = False) -> dict:  # pragma: no cover
        """``{name: scalar tensor}`` for every name in ``loss_names``; ``validation``: the plain errors."""
        raise NotImplementedError

    def errors(self, predictions, batch, settings: Any) -> dict[str, float]:
        """Plain errors per loss of one batch as floats (the objectives of a conditioned model's front);
        default: the validation losses."""
        return {k: float(v.detach()) for k, v in self.losses(predictions, batch, settings, validation=True).items()}

    def split_error(self, model, data: TaskData, settings: Any, references: dict[str, float],
                    batch_size: int = 64) -> float:
        """The error of a trained model on one split (``data``), the search objectives ``train_error`` and
        ``val_error`` (seed 001's pair); default: the unit-free criterion on that split,
        ``sum_i mean plain error_i / ref_i`` (:func:`balancebench.training.validation_errors`). A classification
        task returns its error rate (1 - accuracy), as seed 001 measured."""
        from balancebench.training import validation_errors

        errors = validation_errors(self, model, data, batch_size, settings)
        return float(sum(float(e) / float(references[name]) for name, e in zip(self.loss_names, errors)))

    def model_input(self, batch) -> Any:
        """What of a batch the model reads (a method's ``prepare_batch`` writes its conditioning into its
        ``extras``); default: the batch itself."""
        return batch

    def dataset_references(self, dataset, settings: Any) -> dict[str, float]:
        """:meth:`loss_references` from the dataset file's training split (the searches' and the Pareto stage's
        objectives, computed without a model)."""
        return {name: 1.0 for name in self.loss_names}

    def loss_references(self, train_data: TaskData, settings: Any) -> dict[str, float]:
        """Positive scale of each loss (e.g. the variance of its targets over the training data): the criterion
        ``sum_i val_i / ref_i`` and the unit-free forms of the methods divide by it. Default: ones."""
        return {name: 1.0 for name in self.loss_names}

    # -- stages of a task without rules of its own -----------------------------------------------
    def make_dataset(self, config: dict, path) -> None:
        """Write the task's dataset file (``dataset_file``) from the run's ``config`` (rule task_data)."""
        raise NotImplementedError(f"task {self.name!r} has no make_dataset and no rules of its own")

    def evaluate(self, model, dataset, hparams: dict, config: dict) -> dict:
        """The task's metrics of one trained model (rule evaluate_model): ``{name: (value or None, status,
        reason)}`` for every metric of :attr:`metrics`; the training metrics are the core's
        (:mod:`balancebench.evaluation`). Called only for a completed training."""
        return {}

    def candidate_evaluation(self, model_dir, dataset, config: dict, spec, seed: int, inputs: dict, threads: int,
                             job) -> dict:
        """The evaluation of a search candidate whose objectives include the task's metrics:
        ``{"status": "completed" | ..., "reason": str, "metrics": {name: {"value": float | None}}}``.
        Default: :meth:`evaluate` of the candidate's trained model, as rule evaluate_model runs it
        (:func:`balancebench.evaluation.evaluate_trained_model`)."""
        from balancebench.evaluation import TRAINING_METRIC_NAMES, evaluate_trained_model

        record = evaluate_trained_model(self, Path(model_dir).name, seed, model_dir, dataset, config)
        if record["training_status"] != "completed":
            return {"status": record["training_status"], "reason": record["training_reason"], "metrics": {}}
        values = {n: m for n, m in record["metrics"].items() if n not in TRAINING_METRIC_NAMES}
        bad = [n for n, m in values.items() if m["status"] != "completed"]
        return {"status": "completed" if not bad else "invalid", "reason": f"metrics {bad} not completed" if bad else "",
                "metrics": {n: {"value": m["value"]} for n, m in values.items()}}

    def batched_predictions(self, models: list, batches: list, training: bool, shared_graph: bool) -> list:
        """The predictions of S models of equal shape, each on its batch, in one call (multi-seed training).
        Optional: a task without it trains one seed per process."""
        raise NotImplementedError(f"task {self.name!r} has no batched predictions (training.multiseed)")

    def run_record(self, model, dataset) -> dict:
        """Entries of ``hparams.json`` that describe the trained model in the task's terms (units, scales)."""
        return {}

    def divergence_note(self, raw: dict) -> str:
        return ", ".join(f"L_{k}={v:.3g}" for k, v in raw.items())


_TASKS: dict[str, Callable[[], Task]] = {}
# built-in tasks: imported on first lookup, so `import balancebench` stays light
_BUILTIN = {"cg_benzene": "balancebench.tasks.cg_benzene.task", "multidigits": "balancebench.tasks.multidigits.task",
            "pinn": "balancebench.tasks.pinn.task"}


def register_task(name: str):
    """Class decorator: register a :class:`Task` subclass under ``name`` (a test may register a toy task)."""

    def deco(cls):
        if not name or not name.isidentifier():
            raise ValueError(f"task name must be an identifier, got {name!r}")
        if len(cls.loss_names) < 2 or len(set(cls.loss_names)) != len(cls.loss_names):
            raise ValueError(f"task {name!r} needs two or more distinct loss names, got {cls.loss_names}")
        cls.name = name
        _TASKS[name] = cls
        return cls

    return deco


def unregister_task(name: str) -> None:
    _TASKS.pop(name, None)


def available_tasks() -> list[str]:
    return sorted(set(_TASKS) | set(_BUILTIN))


def get_task(name: str, config: dict | None = None) -> Task:
    """The registered task ``name`` (a new instance), configured for a run's ``config`` when one is given
    (:meth:`Task.configure`: e.g. the loss names of ``pinn`` follow ``pinn.problem``); a clear error naming the
    known ones otherwise."""
    if name not in _TASKS and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])
    if name not in _TASKS:
        raise KeyError(f"unknown task {name!r}; known: {available_tasks()}")
    task = _TASKS[name]()
    return task if config is None else task.configure(config)
