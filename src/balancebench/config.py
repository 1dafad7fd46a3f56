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
        if err.validator in ("anyOf", "oneOf"):  # say what is expected, not only "not valid under any"
            expected = " or ".join(_expects(sub) for sub in err.validator_value)
            raise ConfigError(f"config error at {_field(err)}: {err.instance!r} is not valid; expected {expected}")
        raise ConfigError(f"config error at {_field(err)}: {err.message}")
    _check_physics(config)
    _check_balancing(config)  # whatever sections the config has (not only with an atomistic section)
    return config


def _expects(schema: dict) -> str:
    """A schema alternative in words: 'a list of 2 numbers > 0', "'nadir'"."""
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(map(repr, schema["enum"]))
    kind = schema.get("type", "value")
    if kind == "array":
        lo, hi = schema.get("minItems"), schema.get("maxItems")
        count = f"{lo} " if lo is not None and lo == hi else (f"{lo} to {hi} " if lo is not None or hi is not None else "")
        items = schema.get("items", {})
        return f"a list of {count}{_expects(items) if items else 'values'}".replace("a list of 2 a number", "a list of 2 numbers")
    words = {"number": "a number", "integer": "an integer", "string": "a string", "boolean": "true/false",
             "object": "a mapping"}.get(kind, str(kind))
    bounds = [f"> {schema['exclusiveMinimum']}" if "exclusiveMinimum" in schema else "",
              f">= {schema['minimum']}" if "minimum" in schema else "",
              f"< {schema['exclusiveMaximum']}" if "exclusiveMaximum" in schema else "",
              f"<= {schema['maximum']}" if "maximum" in schema else ""]
    return " ".join([words, *filter(None, bounds)])


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
    frame = md["nvt"]["frame_interval"] * 1000.0
    if frame < md["timestep"] or not math.isclose(frame / md["timestep"], round(frame / md["timestep"]), rel_tol=1e-9):
        raise ConfigError(
            f"config error at atomistic.nvt.frame_interval: {md['nvt']['frame_interval']} ps is not a "
            f"whole number of {md['timestep']} fs timesteps"
        )
    if md["nvt"]["duration"] < 2 * md["nvt"]["frame_interval"]:
        raise ConfigError("config error at atomistic.nvt.duration: shorter than two frames")


def _check_balancing(config: dict) -> None:
    """Variants and searches against the registry, before any job runs (docs/search.md)."""
    balancing = config.get("balancing")
    if not balancing:
        return
    from balancebench.balancing import available_methods, get_method
    from balancebench.search.space import apply_parameters, check_search, check_variant_search

    training_fields = set(config.get("training", {})) | set(_training_setting_names())
    searches = balancing.get("searches", {})
    for name, spec in searches.items():
        try:
            check_search(name, spec, training_fields)
        except ValueError as err:
            raise ConfigError(f"config error at {err}") from None
    known = available_methods()
    for name, variant in balancing.get("variants", {}).items():
        field = f"balancing.variants.{name}"
        method = variant["method"]
        if method not in known:
            raise ConfigError(f"config error at {field}.method: unknown method {method!r}; available: {known}")
        try:
            get_method(method, **variant.get("params", {}))
        except (TypeError, ValueError) as err:
            raise ConfigError(f"config error at {field}.params: {err}") from err
        search = variant.get("search")
        if search is None:
            continue
        if search not in searches:
            raise ConfigError(f"config error at {field}.search: unknown search {search!r}; "
                              f"balancing.searches has: {sorted(searches)}")
        try:
            check_variant_search(name, method, search, searches[search])
        except ValueError as err:
            raise ConfigError(f"config error at {err}") from None
        spec = searches[search]
        probes = ([{spec["parameter"]: v} for v in spec["values"]] if spec["kind"] == "grid" else
                  [{p: d[k] for p, d in spec["space"].items()} for k in ("low", "high")])
        for values in probes:
            try:
                params, training = apply_parameters(values, method, variant.get("params", {}))
                get_method(method, **params)
            except (TypeError, ValueError) as err:
                raise ConfigError(f"config error at balancing.searches.{search}: {values} is not valid for "
                                  f"variant {name!r}: {err}") from err
            where = "space" if spec["kind"] != "grid" else "values"
            if not -10.0 <= training.get("force_loss_alpha", 2.0) <= 2.0:
                raise ConfigError(f"config error at balancing.searches.{search}.{where}: force_loss_alpha "
                                  f"{training['force_loss_alpha']} is outside [-10, 2] (training.force_loss_alpha)")
            if training.get("force_loss_scale", 1.0) <= 0:
                raise ConfigError(f"config error at balancing.searches.{search}.{where}: force_loss_scale "
                                  f"{training['force_loss_scale']} must be > 0 (kcal/mol/A)")


def _training_setting_names() -> list[str]:
    import dataclasses

    from balancebench.training import TrainingSettings

    return [f.name for f in dataclasses.fields(TrainingSettings)]


class DuplicateKeyError(ConfigError):
    """A YAML mapping names the same key twice (PyYAML would silently keep the last)."""


def _path_aware_duplicates(text: str, name: str) -> None:
    """Raise DuplicateKeyError naming the dotted path of a key given twice in one mapping."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)

    def walk(node, path):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, value_node in node.value:
                key = key_node.value
                dotted = f"{path}.{key}" if path else str(key)
                if key in seen:
                    raise DuplicateKeyError(
                        f"config error at {dotted}: key given twice (lines {seen[key] + 1} and "
                        f"{key_node.start_mark.line + 1} of {name}); YAML would silently keep the last")
                seen[key] = key_node.start_mark.line
                walk(value_node, dotted)
        elif isinstance(node, yaml.SequenceNode):
            for k, item in enumerate(node.value):
                walk(item, f"{path}[{k}]")

    if root is not None:
        walk(root, "")


def read_yaml(path: str | Path):
    """``yaml.safe_load`` of a config file; a syntax error names the file, line and column."""
    text = Path(path).read_text()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(_yaml_error(path, err)) from None


def _yaml_error(path, err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(path)
    problem = getattr(err, "problem", None) or str(err)
    context = getattr(err, "context", None)
    return f"config error: YAML syntax error in {where}: {problem}" + (f" ({context})" if context else "")


def check_duplicate_keys(path: str | Path) -> None:
    """Raise DuplicateKeyError if the YAML file at ``path`` repeats a key in one mapping (e.g. a variant name);
    a YAML syntax error raises ConfigError naming the file, line and column."""
    try:
        _path_aware_duplicates(Path(path).read_text(), str(path))
    except yaml.YAMLError as err:
        raise ConfigError(_yaml_error(path, err)) from None


def whole_section(section: str, configfiles, command_line_files) -> dict | None:
    """The ``section`` of the last config file that has one, command-line files winning over the workflow's.

    Snakemake merges nested mappings of several config files key by key; for ``balancing`` (variants and
    searches) that would add the defaults' variants to a comparison, so the workflow replaces it whole.
    """
    cli = [str(f) for f in command_line_files or []]
    ordered = [f for f in map(str, configfiles) if f not in cli] + cli
    found = None
    for path in ordered:
        data = read_yaml(path) or {}
        if isinstance(data, dict) and section in data:
            found = copy.deepcopy(data[section])
    return found


def load_config(path: str | Path) -> dict:
    """Read (refusing duplicate keys), validate and fill defaults."""
    check_duplicate_keys(path)
    config = read_yaml(path) or {}
    return validate_config(config)
