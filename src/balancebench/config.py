"""Configuration: schema validation with defaults, plus the checks a schema cannot express.

The schema lives in ``workflow/schemas/config.schema.yaml`` (the Snakemake
workflow template convention) and is shipped inside the package as a copy
checked by ``tests/test_config.py``. :func:`validate_config` fills defaults in
place and raises :class:`ConfigError` naming the offending field.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import jsonschema
import yaml

AVOGADRO = 6.02214076e23
BENZENE_MASS = 78.114  # g/mol, 6 x (12.011 + 1.008), OPLS-AA masses
_SCHEMA_IN_REPO = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type, or physically inconsistent."""


def schema_path() -> Path:
    return _SCHEMA_IN_REPO


def load_schema(path: str | Path | None = None) -> dict:
    with open(path or schema_path()) as fh:
        return yaml.safe_load(fh)


def _extend_with_defaults(validator_class):
    """A validator that fills ``default`` values in before validating (jsonschema FAQ recipe)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, subschema in properties.items():
                if "default" in subschema and prop not in instance:
                    instance[prop] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_DefaultFillingValidator = _extend_with_defaults(jsonschema.Draft7Validator)


def _field(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    return path or "<top level>"


def box_length(n_molecules: int, density: float, molar_mass: float = BENZENE_MASS) -> float:
    """Edge (A) of a cubic box holding ``n_molecules`` at ``density`` g/cm^3: L = (N M / (rho N_A))^(1/3)."""
    volume_cm3 = n_molecules * molar_mass / (density * AVOGADRO)
    return (volume_cm3 * 1e24) ** (1.0 / 3.0)


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """Validate ``config`` in place (defaults filled) and return it.

    Raises ConfigError with the dotted path of the first bad field.
    """
    validator = _DefaultFillingValidator(schema or load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        if err.validator == "additionalProperties":
            raise ConfigError(f"config error at {_field(err)}: {err.message} (misspelt key?)")
        raise ConfigError(f"config error at {_field(err)}: {err.message}")
    _check_physics(config)
    return config


def _check_physics(config: dict) -> None:
    md = config.get("atomistic")
    if not md:
        return
    densest = max(md["start_density"], md["compress"]["density"])
    # NPT density fluctuates a few percent above the compression target; leave 5 % margin.
    smallest_box = box_length(md["n_molecules"], densest * 1.05)
    if md["pair_cutoff"] >= 0.5 * smallest_box:
        raise ConfigError(
            f"config error at atomistic.pair_cutoff: {md['pair_cutoff']} A is not below half the "
            f"smallest box edge {0.5 * smallest_box:.2f} A ({md['n_molecules']} molecules at "
            f"{densest * 1.05:.3f} g/cm^3); use more molecules or a shorter cutoff"
        )
    model = config.get("model") or {}
    if model and model["cutoff"] >= 0.5 * smallest_box:
        raise ConfigError(
            f"config error at model.cutoff: {model['cutoff']} A is not below half the smallest CG box edge "
            f"{0.5 * smallest_box:.2f} A; use more molecules or a shorter cutoff"
        )
    _check_balancing(config)
    frame = md["nvt"]["frame_interval"] * 1000.0
    if frame < md["timestep"] or not math.isclose(frame / md["timestep"], round(frame / md["timestep"]), rel_tol=1e-9):
        raise ConfigError(
            f"config error at atomistic.nvt.frame_interval: {md['nvt']['frame_interval']} ps is not a "
            f"whole number of {md['timestep']} fs timesteps"
        )
    if md["nvt"]["duration"] < 2 * md["nvt"]["frame_interval"]:
        raise ConfigError("config error at atomistic.nvt.duration: shorter than two frames")


def _check_balancing(config: dict) -> None:
    """Method names and parameters are checked against the registry before any job runs."""
    balancing = config.get("balancing")
    if not balancing:
        return
    from balancebench.balancing import available_methods, get_method

    known = available_methods()
    for name in balancing["methods"]:
        if name not in known:
            raise ConfigError(f"config error at balancing.methods: unknown method {name!r}; available: {known}")
    for name, params in balancing["params"].items():
        if name not in known:
            raise ConfigError(f"config error at balancing.params.{name}: unknown method; available: {known}")
        try:
            get_method(name, **params)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"config error at balancing.params.{name}: {err}") from err
    if len(balancing["methods"]) < 2:
        raise ConfigError("config error at balancing.methods: the statistics compare methods; give at least two")


def load_config(path: str | Path) -> dict:
    with open(path) as fh:
        config = yaml.safe_load(fh) or {}
    return validate_config(config)
