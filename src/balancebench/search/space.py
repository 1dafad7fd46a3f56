"""The search space: which parameters a search sets, their bounds and scale, and how they map onto a variant.

What a search may set and optimise depends on the task (:class:`SearchVocabulary`, from the task contract):

* a *weight alias* of the task (by default ``weight_<loss>`` for every
  loss but the first): the weight of that loss with every other weight 1; sets the method parameter of the
  same name if the method has one, else the ``weights`` of the ``constant`` method;
* a *training parameter* of the task (a numeric loss setting, e.g. the shape and scale of a robust loss):
  a training setting, usable with every method;
* any other name: a numeric parameter of the variant's method (e.g. ``beta`` of softadapt).

Objectives: ``val_<loss>`` (the validation error of a loss over its reference, at the best epoch),
``criterion`` (their sum), the paper's pair of seed 001 ``train_error`` and ``val_error`` (the task's error of the
trained candidate on its training and its validation split, :meth:`balancebench.tasks.base.Task.split_error`:
by default the unit-free criterion on that split, a classification task's error rate), and the task's metrics
that its evaluation gives per candidate.
A dimension with ``scale: log10`` is searched as log10(value) between log10(low) and log10(high).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from balancebench.fileio import read_json

SEARCH_KINDS = ("grid", "nsde", "de", "cmaes")
SCALAR_KINDS = ("grid", "de", "cmaes")
SPLIT_OBJECTIVES = {"train_error": "train", "val_error": "validation"}  # seed 001's pair: objective -> split  # minimise the sum of the objectives
CMAES_SIGMA = 0.1  # pymoo's default initial step, in coordinates normalised to the bounds
MIN_POPULATION = 4


@dataclass(frozen=True)
class SearchVocabulary:
    """What a search may set and optimise on one task (see the module docstring)."""

    loss_names: tuple[str, ...]
    training_parameters: tuple[str, ...] = ()
    weight_aliases: tuple[tuple[str, int], ...] = ()  # (name, index of the loss whose weight it sets)
    metric_objectives: tuple[str, ...] = ()  # task metrics a candidate's evaluation gives
    loss_setting_names: tuple[str, ...] = ()  # the task's training keys that shape its losses

    @classmethod
    def from_task(cls, task) -> "SearchVocabulary":
        return cls(tuple(task.loss_names), tuple(task.search_training_parameters),
                   tuple(task.search_weight_aliases().items()), tuple(task.search_metric_objectives),
                   tuple(task.loss_setting_names))

    @property
    def validation_objectives(self) -> tuple[str, ...]:
        """Objectives from the candidate's training (validation error / reference at the best epoch)."""
        return (*(f"val_{n}" for n in self.loss_names), "criterion")

    @property
    def objectives(self) -> tuple[str, ...]:
        return self.validation_objectives + tuple(SPLIT_OBJECTIVES) + self.metric_objectives

    @property
    def default_objectives(self) -> list[str]:
        return [f"val_{n}" for n in self.loss_names]


@dataclass(frozen=True)
class Dimension:
    name: str
    low: float
    high: float
    scale: str = "linear"  # linear | log10

    @property
    def bounds(self) -> tuple[float, float]:
        """Bounds in search coordinates (log10 of the value for scale log10)."""
        if self.scale == "log10":
            return math.log10(self.low), math.log10(self.high)
        return self.low, self.high

    def decode(self, x: float) -> float:
        """Search coordinate -> parameter value, clipped to the bounds."""
        lo, hi = self.bounds
        x = min(max(float(x), lo), hi)
        return float(10.0**x) if self.scale == "log10" else x


@dataclass(frozen=True)
class SearchSpace:
    dims: tuple[Dimension, ...]

    @classmethod
    def from_config(cls, space: dict) -> "SearchSpace":
        return cls(tuple(Dimension(n, float(s["low"]), float(s["high"]), s.get("scale", "linear"))
                         for n, s in space.items()))

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dims]

    @property
    def xl(self) -> np.ndarray:
        return np.array([d.bounds[0] for d in self.dims])

    @property
    def xu(self) -> np.ndarray:
        return np.array([d.bounds[1] for d in self.dims])

    def decode(self, x) -> dict[str, float]:
        return {d.name: d.decode(v) for d, v in zip(self.dims, np.asarray(x, dtype=float))}


@dataclass
class SearchSpec:
    """A validated ``balancing.searches`` entry."""

    name: str
    kind: str
    seed: int | None = None
    parameter: str | None = None
    values: list[float] = field(default_factory=list)
    space: SearchSpace | None = None
    population: int = 6
    generations: int = 2
    objectives: list[str] = field(default_factory=list)
    failure_penalty: float = 1e3
    training: dict = field(default_factory=dict)
    simulation: dict = field(default_factory=dict)
    sigma: float = CMAES_SIGMA  # cmaes only

    validation_objectives: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, name: str, spec: dict, vocabulary: SearchVocabulary) -> "SearchSpec":
        """``spec`` of ``balancing.searches.<name>``; objectives default to ``val_<loss>`` of every loss."""
        kind = spec["kind"]
        objectives = list(spec.get("objectives", vocabulary.default_objectives))
        if kind == "grid":
            return cls(name, kind, spec.get("seed"), spec["parameter"], [float(v) for v in spec["values"]],
                       training=dict(spec.get("training", {})), simulation=dict(spec.get("simulation", {})),
                       objectives=objectives, failure_penalty=float(spec.get("failure_penalty", 1e3)),
                       validation_objectives=vocabulary.validation_objectives)
        return cls(name, kind, spec.get("seed"), space=SearchSpace.from_config(spec["space"]),
                   population=int(spec.get("population", 6)), generations=int(spec.get("generations", 2)),
                   objectives=objectives, validation_objectives=vocabulary.validation_objectives,
                   failure_penalty=float(spec.get("failure_penalty", 1e3)),
                   training=dict(spec.get("training", {})), simulation=dict(spec.get("simulation", {})),
                   sigma=float(spec.get("sigma", CMAES_SIGMA)))

    @property
    def scalar(self) -> bool:
        """A single-objective kind: it minimises the sum of the objectives."""
        return self.kind in SCALAR_KINDS

    @property
    def n_generations(self) -> int:
        return 1 if self.kind == "grid" else self.generations

    @property
    def n_candidates(self) -> int:
        """Candidates per generation (pymoo's ask returns pop_size offspring every generation)."""
        return len(self.values) if self.kind == "grid" else self.population

    @property
    def parameters(self) -> list[str]:
        return [self.parameter] if self.kind == "grid" else self.space.names

    @property
    def split_objectives(self) -> list[str]:
        """The objectives of seed 001's pair (``train_error``, ``val_error``) this search optimises."""
        return [o for o in self.objectives if o in SPLIT_OBJECTIVES]

    @property
    def metric_objectives(self) -> list[str]:
        return [o for o in self.objectives if o not in self.validation_objectives and o not in SPLIT_OBJECTIVES]

    @property
    def needs_evaluation(self) -> bool:
        """An objective is a task metric: each candidate's model goes through the task's evaluation."""
        return bool(self.metric_objectives)

    def loss_training(self, vocabulary: SearchVocabulary) -> dict:
        """The search's ``training`` overrides that shape the task's losses (e.g. the loss family the searched
        coefficients belong to): they carry over to the selected variant's trainings, the rest (epochs,
        patience: the candidates' budget) does not."""
        return {k: v for k, v in self.training.items() if k in vocabulary.loss_setting_names}

    def candidate_params(self, generation_candidates: list[dict]) -> list[dict]:
        return [c["params"] for c in generation_candidates]


def search_parameters(method_params: dict, vocabulary: SearchVocabulary) -> dict[str, str]:
    """Searchable parameter names of a method (its Param names) -> where they go ("method" | "weights" |
    "training")."""
    out = {name: "method" for name in method_params}
    for alias, _ in vocabulary.weight_aliases:
        if alias not in out and "weights" in method_params:
            out[alias] = "weights"
    for name in vocabulary.training_parameters:
        out[name] = "training"
    return out


def variant_settings(selected_path: str | Path | None, method_name: str, method_params: dict, training: dict,
                     vocabulary: SearchVocabulary) -> tuple[dict, dict, str]:
    """(method params, training settings, log line) of a variant: with a search (``selected_path``, its
    selected.json) the selection is applied for every seed (the selected values, and the loss settings of the
    search's ``training`` recorded as ``selected["training"]``); without one, the configured settings as they are."""
    params, training = dict(method_params), dict(training)
    if selected_path is None:
        return params, training, ""
    selected = read_json(selected_path)
    params, overrides = apply_parameters(selected["values"], method_name, params, vocabulary)
    overrides = {**selected.get("training", {}), **overrides}  # the searched loss's family, then its values
    training.update(overrides)
    return params, training, (f"search {selected['status']}: {selected['values']} -> params {params}, "
                              f"training {overrides}")


def apply_parameters(values: dict, method_name: str, method_params: dict, vocabulary: SearchVocabulary
                     ) -> tuple[dict, dict]:
    """(method params, training overrides) of a variant with the searched ``values`` set."""
    from balancebench.balancing import default_params

    targets = search_parameters(default_params(method_name), vocabulary)
    alias_index = dict(vocabulary.weight_aliases)
    params, training = dict(method_params), {}
    for name, value in values.items():
        where = targets.get(name)
        if where is None:
            raise ValueError(f"method {method_name!r} has no parameter {name!r}; searchable: {sorted(targets)}")
        if where == "training":
            training[name] = float(value)
        elif where == "weights":
            weights = [1.0] * len(vocabulary.loss_names)
            weights[alias_index[name]] = float(value)
            params["weights"] = weights
        else:
            params[name] = value
    return params, training


def _known_anywhere(name: str, vocabulary: SearchVocabulary) -> bool:
    from balancebench.balancing import available_methods, default_params

    if name in vocabulary.training_parameters or name in dict(vocabulary.weight_aliases):
        return True
    return any(name in default_params(m) for m in available_methods())


def check_search(name: str, spec: dict, vocabulary: SearchVocabulary, training_fields: set[str] | None = None
                 ) -> None:
    """Reject a bad ``balancing.searches.<name>`` entry with a ValueError whose message starts with the field."""
    field_ = f"balancing.searches.{name}"
    kind = spec["kind"]
    if kind not in SEARCH_KINDS:
        raise ValueError(f"{field_}.kind: unknown search kind {kind!r}; known: {SEARCH_KINDS}")
    grid_keys, evo_keys = {"parameter", "values"}, {"space", "population", "generations"}
    if kind == "grid":
        for key in ("parameter", "values"):
            if key not in spec:
                raise ValueError(f"{field_}.{key}: a grid search needs it")
        wrong = sorted(set(spec) & {"space"})
        if wrong:
            raise ValueError(f"{field_}.{wrong[0]}: not a grid search setting (grid takes parameter and values)")
        if not _known_anywhere(spec["parameter"], vocabulary):
            raise ValueError(f"{field_}.parameter: unknown parameter {spec['parameter']!r}")
        if "sigma" in spec:
            raise ValueError(f"{field_}.sigma: a cmaes setting, not for kind grid")
        if not all(math.isfinite(float(v)) for v in spec["values"]):
            raise ValueError(f"{field_}.values: every value must be finite")
    else:
        if "space" not in spec:
            raise ValueError(f"{field_}.space: a {kind} search needs a search space")
        wrong = sorted(set(spec) & grid_keys)
        if wrong:
            raise ValueError(f"{field_}.{wrong[0]}: a grid setting, not for kind {kind} (use space)")
        for pname, dim in spec["space"].items():
            if not _known_anywhere(pname, vocabulary):
                named = [a for a, _ in vocabulary.weight_aliases] + list(vocabulary.training_parameters)
                raise ValueError(f"{field_}.space.{pname}: unknown parameter {pname!r} (searchable: "
                                 f"{', '.join(named + ['a method parameter'])})")
            low, high = float(dim["low"]), float(dim["high"])
            if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
                raise ValueError(f"{field_}.space.{pname}.low: low ({low:g}) must be below high ({high:g})")
            if dim.get("scale", "linear") == "log10" and low <= 0:
                raise ValueError(f"{field_}.space.{pname}.low: scale log10 needs low > 0, got {low:g}")
        if "sigma" in spec:
            if kind != "cmaes":
                raise ValueError(f"{field_}.sigma: a cmaes setting, not for kind {kind}")
            sigma = float(spec["sigma"])
            if not (math.isfinite(sigma) and sigma > 0):
                raise ValueError(f"{field_}.sigma: must be > 0, got {sigma:g}")
        population = int(spec.get("population", 6))
        if population < MIN_POPULATION:
            raise ValueError(f"{field_}.population: {population} is below {MIN_POPULATION} (DE needs 4 parents)")
        del evo_keys
    for obj in spec.get("objectives", []):
        if obj not in vocabulary.objectives:
            raise ValueError(f"{field_}.objectives: unknown objective {obj!r}; known: "
                             f"{', '.join(vocabulary.objectives)}")
    if len(set(spec.get("objectives", []))) != len(spec.get("objectives", [])):
        raise ValueError(f"{field_}.objectives: an objective is listed twice")
    if kind == "nsde" and len(spec.get("objectives", vocabulary.default_objectives)) < 2:
        raise ValueError(f"{field_}.objectives: nsde is multi-objective, give at least two (or use kind de)")
    if training_fields is not None:
        unknown = sorted(set(spec.get("training", {})) - training_fields)
        if unknown:
            raise ValueError(f"{field_}.training.{unknown[0]}: not a training setting")


def check_variant_search(variant: str, method_name: str, search_name: str, spec: dict,
                         vocabulary: SearchVocabulary) -> None:
    """The variant's method must have every parameter the search sets."""
    from balancebench.balancing import default_params

    params = SearchSpec.from_config(search_name, spec, vocabulary).parameters
    targets = search_parameters(default_params(method_name), vocabulary)
    for p in params:
        if p not in targets:
            raise ValueError(f"balancing.variants.{variant}.search: search {search_name!r} sets {p!r}, which method "
                             f"{method_name!r} does not have (searchable: {', '.join(sorted(targets))})")
