"""Configuration: schema validation with defaults, plus the checks a schema cannot express.

The schema lives in ``workflow/schemas/config.schema.yaml`` (the Snakemake
workflow template convention) and is shipped inside the package as a copy
checked by ``tests/test_config.py``. :func:`validate_config` fills defaults in
place and raises :class:`ConfigError` naming the offending field.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import jsonschema
import yaml

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


def _validate_schema(instance: dict, schema: dict) -> None:
    """Fill ``schema``'s defaults into ``instance`` and raise ConfigError naming the first bad field."""
    errors = sorted(_DefaultFillingValidator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        if err.validator == "additionalProperties":
            raise ConfigError(f"config error at {_field(err)}: {err.message} (misspelt key?)")
        if err.validator in ("anyOf", "oneOf"):  # say what is expected, not only "not valid under any"
            expected = " or ".join(_expects(sub) for sub in err.validator_value)
            raise ConfigError(f"config error at {_field(err)}: {err.instance!r} is not valid; expected {expected}")
        raise ConfigError(f"config error at {_field(err)}: {err.message}")


def results_dir_of(results_dir: str, task: str) -> str:
    """A run's results directory: ``{task}`` replaced by the task's name (results/{task}: the tree per task,
    docs/ARCHITECTURE.md)."""
    return str(results_dir).replace("{task}", task)


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """Validate ``config`` in place (defaults filled) and return it.

    Raises ConfigError with the dotted path of the first bad field.
    """
    task = _task_of(config)
    _validate_schema(config, schema or task_schema(task))
    if "results_dir" in config:
        config["results_dir"] = results_dir_of(config["results_dir"], config.get("task", "cg_benzene"))
    task.check_config(config)
    _check_task(config)
    _check_balancing(config)
    _check_stats(config)
    _check_pareto(config, task)
    _check_l2o(config, task)
    return config


def _check_l2o(config: dict, task) -> None:
    """With an ml2o / gml2o variant: the learned optimizer's settings build, a family exists, and a family
    ``task`` fits the task's losses (errors name the field)."""
    variants = (config.get("balancing", {}) or {}).get("variants", {}) or {}
    transfer = ((config.get("l2o") or {}).get("transfer") or {})
    if transfer:
        from balancebench.l2o.transfer import TransferSettings

        try:
            TransferSettings.from_dict(transfer)
        except ValueError as err:
            raise ConfigError(f"config error at {err}") from None
    uses_variants = any(v.get("method") in ("ml2o", "gml2o") for v in variants.values() if isinstance(v, dict))
    if not transfer.get("pairs") and not uses_variants:
        return
    from balancebench.l2o.meta import MetaSettings
    from balancebench.l2o.net import OptimizerSpec

    l2o = config.get("l2o", {}) or {}
    try:
        OptimizerSpec.from_dict({**(l2o.get("optimizer") or {}), "n_objectives": len(task.loss_names)})
    except ValueError as err:
        raise ConfigError(f"config error at {err}") from None
    meta = l2o.get("meta") or {}
    if not meta.get("families") and not uses_variants:
        return  # the transfer pairs bring their own family (task)
    if not meta.get("families"):
        raise ConfigError("config error at l2o.meta.families: an ml2o / gml2o variant needs a meta-training family "
                          "(task: short trainings of this task's model; quadratic; lj_schnet)")
    try:
        MetaSettings.from_dict(dict(meta))
    except ValueError as err:
        raise ConfigError(f"config error at {err}") from None
    if len(task.loss_names) != 2 and set(meta["families"]) - {"task"}:
        raise ConfigError(f"config error at l2o.meta.families: {sorted(set(meta['families']) - {'task'})} are "
                          f"two-objective problems; the task {task.name!r} has {len(task.loss_names)} losses "
                          f"{list(task.loss_names)}: use the family task")


def _check_pareto(config: dict, task) -> None:
    """A configured hypervolume reference point has one number per loss of the task."""
    task = task.configure(config)  # the run's losses (pinn: its problem's)
    point = (config.get("pareto") or {}).get("reference_point")
    n = len(task.loss_names)
    if point is not None and len(point) != n:
        raise ConfigError(f"config error at pareto.reference_point: {point!r} has {len(point)} numbers; the task "
                          f"{task.name!r} has {n} losses {tuple(task.loss_names)} (one number per loss; null: the "
                          f"task's point {task.hypervolume_reference()})")


def load_task_modules(modules) -> None:
    """Import the files (paths ending in .py) or modules of ``task_modules``: tasks defined outside the package
    register themselves there (:func:`balancebench.tasks.base.register_task`)."""
    import importlib
    import importlib.util
    import sys

    for name in modules or []:
        if str(name).endswith(".py"):
            path = Path(name).resolve()
            key = f"balancebench_task_module_{path.stem}_{abs(hash(str(path)))}"
            if key in sys.modules:
                continue
            if not path.exists():
                raise ConfigError(f"config error at task_modules: {name} does not exist")
            spec = importlib.util.spec_from_file_location(key, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[key] = module
            spec.loader.exec_module(module)
        else:
            try:
                importlib.import_module(str(name))
            except ImportError as err:
                raise ConfigError(f"config error at task_modules: cannot import {name!r}: {err}") from None


def _task_of(config: dict):
    """The config's task (its task_modules imported first), or a ConfigError naming ``task``."""
    from balancebench.tasks.base import get_task

    modules = config.get("task_modules") or []
    if not isinstance(modules, list):
        raise ConfigError("config error at task_modules: a list of Python files or modules")
    load_task_modules(modules)
    name = config.get("task", "cg_benzene")
    try:
        return get_task(name)
    except KeyError as err:
        raise ConfigError(f"config error at task: {err.args[0]}") from None


def _merge_schema(base: dict, extra: dict) -> dict:
    """``base`` with ``extra``'s properties added, recursively (a task's sections and keys); the base's own
    ``$schema``, ``title`` and ``description`` stay."""
    return _deep_update(copy.deepcopy(base), extra, keep=("$schema", "title", "description"))


def task_schema(task) -> dict:
    """The config schema of a run of ``task``: the workflow's schema with the task's sections merged in."""
    return _merge_schema(load_schema(), task.config_schema())


def _check_task(config: dict) -> None:
    """The task exists, and every variant's method can run on it (e.g. a conditioned method needs a model with
    a conditioning input), before any job runs."""
    from balancebench.balancing import available_methods, get_method
    from balancebench.tasks.base import get_task
    from balancebench.training import preference_dim

    task = get_task(config.get("task", "cg_benzene"), config)
    known = available_methods()
    for name, variant in (config.get("balancing") or {}).get("variants", {}).items():
        if variant.get("method") not in known:
            continue  # named by _check_balancing
        try:
            method = get_method(variant["method"], **variant.get("params", {}))
        except (TypeError, ValueError):
            continue  # named by _check_balancing
        required = getattr(method, "required_losses", None)
        if required is not None and len(task.loss_names) != required:
            raise ConfigError(f"config error at balancing.variants.{name}.method: {variant['method']} is defined "
                              f"for {required} losses; the task {task.name!r} has {list(task.loss_names)}")
        try:
            preference_dim(task, method)
        except ValueError as err:
            raise ConfigError(f"config error at balancing.variants.{name}.method: {err}") from None
        if method.evaluates_other_items and task.other_items_refusal:
            raise ConfigError(f"config error at balancing.variants.{name}.method: {variant['method']} evaluates the "
                              "losses of other training items and of candidate steps (TrainContext.losses_at); "
                              + task.other_items_refusal)


def _check_stats(config: dict) -> None:
    """stats.concerns, concern_axes and controls: what the schema cannot say (docs/statistics.md, "Concerns")."""
    stats = config.get("stats") or {}
    concerns = stats.get("concerns")
    if concerns is not None:
        owner: dict[str, str] = {}
        for name, metrics in concerns.items():
            for metric in metrics:
                if metric in owner:
                    raise ConfigError(f"config error at stats.concerns.{name}: metric {metric!r} is also in concern "
                                      f"{owner[metric]!r}; each metric belongs to one concern")
                owner[metric] = name
    axes = stats.get("concern_axes") or {}
    if axes and concerns is not None:
        for axis, names in axes.items():
            unknown = [n for n in names if n not in concerns]
            if unknown:
                raise ConfigError(f"config error at stats.concern_axes.{axis}: {', '.join(unknown)} not in "
                                  f"stats.concerns ({', '.join(concerns)})")
    controls = stats.get("controls") or {}
    variants = list(controls.get("variants") or [])
    main = controls.get("main_loss_only")
    if main is not None and main not in variants:
        raise ConfigError(f"config error at stats.controls.main_loss_only: {main!r} is not in "
                          f"stats.controls.variants ({', '.join(variants) or 'empty'})")
    known = ((config.get("balancing") or {}).get("variants")) or {}
    if known and not stats.get("metrics_table"):
        unknown = [v for v in variants if v not in known]
        if unknown:
            raise ConfigError(f"config error at stats.controls.variants: {', '.join(unknown)} not in "
                              f"balancing.variants")


def _expects(schema: dict) -> str:
    """A schema alternative in words: 'a list of 2 numbers > 0', "'nadir'"."""
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(map(repr, schema["enum"]))
    kind = schema.get("type", "value")
    if kind == "array":
        lo, hi = schema.get("minItems"), schema.get("maxItems")
        count = (f"{lo} " if lo is not None and lo == hi else f"{lo} to {hi} " if lo is not None and hi is not None
                 else f"{lo} or more " if lo is not None else f"at most {hi} " if hi is not None else "")
        items = schema.get("items", {})
        return re.sub(r"(a list of [^a]*)a number", r"\1numbers",
                      f"a list of {count}{_expects(items) if items else 'values'}")
    words = {"number": "a number", "integer": "an integer", "string": "a string", "boolean": "true/false",
             "object": "a mapping"}.get(kind, str(kind))
    bounds = [f"> {schema['exclusiveMinimum']}" if "exclusiveMinimum" in schema else "",
              f">= {schema['minimum']}" if "minimum" in schema else "",
              f"< {schema['exclusiveMaximum']}" if "exclusiveMaximum" in schema else "",
              f"<= {schema['maximum']}" if "maximum" in schema else ""]
    return " ".join([words, *filter(None, bounds)])




def _check_balancing(config: dict) -> None:
    """Variants and searches against the registry, before any job runs (docs/search.md)."""
    balancing = config.get("balancing")
    if not balancing:
        return
    from balancebench.balancing import available_methods, get_method
    from balancebench.search.space import SearchVocabulary, apply_parameters, check_search, check_variant_search
    from balancebench.tasks.base import get_task

    task = get_task(config.get("task", "cg_benzene"), config)
    vocabulary = SearchVocabulary.from_task(task)
    training_schema = task_schema(task)["properties"].get("training", {})

    training_fields = set(config.get("training", {})) | set(_training_setting_names(config))
    searches = balancing.get("searches", {})
    for name, spec in searches.items():
        try:
            check_search(name, spec, vocabulary, training_fields)
        except ValueError as err:
            raise ConfigError(f"config error at {err}") from None
        for key, value in (spec.get("training") or {}).items():  # an override must be a valid value of its setting
            sub = training_schema.get("properties", {}).get(key)
            problem = None if sub is None else next(iter(jsonschema.Draft7Validator(sub).iter_errors(value)), None)
            if problem is not None:
                raise ConfigError(f"config error at balancing.searches.{name}.training.{key}: {problem.message}")
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
            check_variant_search(name, method, search, searches[search], vocabulary)
        except ValueError as err:
            raise ConfigError(f"config error at {err}") from None
        spec = searches[search]
        probes = ([{spec["parameter"]: v} for v in spec["values"]] if spec["kind"] == "grid" else
                  [{p: d[k] for p, d in spec["space"].items()} for k in ("low", "high")])
        for values in probes:
            try:
                params, training = apply_parameters(values, method, variant.get("params", {}), vocabulary)
                get_method(method, **params)
            except (TypeError, ValueError) as err:
                raise ConfigError(f"config error at balancing.searches.{search}: {values} is not valid for "
                                  f"variant {name!r}: {err}") from err
            where = "space" if spec["kind"] != "grid" else "values"
            # a searched training setting must be a valid value of that setting (the task's schema says so)
            for key, value in training.items():
                sub = training_schema.get("properties", {}).get(key)
                if sub is None:
                    continue
                problem = next(iter(jsonschema.Draft7Validator(sub).iter_errors(value)), None)
                if problem is not None:
                    raise ConfigError(f"config error at balancing.searches.{search}.{where}: {key} {value} is not a "
                                      f"valid training.{key}: {problem.message}")


def _training_setting_names(config: dict | None = None) -> list[str]:
    """The keys of a ``training`` section: the core's settings and the task's loss settings."""
    import dataclasses

    from balancebench.tasks.base import get_task
    from balancebench.training import TrainingSettings

    task = get_task((config or {}).get("task", "cg_benzene"), config)
    return [f.name for f in dataclasses.fields(TrainingSettings)] + list(task.loss_setting_names)


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


def _config_files(configfiles, command_line_files) -> list[tuple[dict, bool]]:
    """(contents, from the command line) of each config file in Snakemake's order of precedence: the workflow's
    files first, the command line's last (a file that is not a mapping reads as {})."""
    cli = [str(f) for f in command_line_files or []]
    ordered = [(f, False) for f in map(str, configfiles) if f not in cli] + [(f, True) for f in cli]
    out = []
    for path, from_cli in ordered:
        data = read_yaml(path)
        out.append((data if isinstance(data, dict) else {}, from_cli))
    return out


def whole_section(section: str, configfiles, command_line_files) -> dict | None:
    """The ``section`` (a key, or a dotted path such as ``l2o.meta.families``) of the last config file that has
    one, command-line files winning over the workflow's.

    Snakemake merges nested mappings of several config files key by key; for ``balancing`` (variants and
    searches) that would add the defaults' variants to a comparison, and for the meta-training families the
    default's families to a file's own, so the workflow replaces them whole.
    """
    *parents, leaf = section.split(".")
    found = None
    for data, _ in _config_files(configfiles, command_line_files):
        node = data
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            found = copy.deepcopy(node[leaf])
    return found


def controls_of_balancing(configfiles, command_line_files) -> dict | None:
    """``stats.controls`` of the config file whose ``balancing`` section the run uses ({} if that file names
    none; None if no file has a ``balancing`` section): controls are variants of that comparison, so a
    config that brings its own variants does not inherit the demo's controls."""
    found = None
    for data, _ in _config_files(configfiles, command_line_files):
        if "balancing" in data:
            found = copy.deepcopy(((data.get("stats") or {}).get("controls")) or {})
    return found


def _deep_update(base: dict, extra: dict, keep: tuple[str, ...] = ()) -> dict:
    """``base`` updated in place with ``extra``, nested mappings merged key by key; keys in ``keep`` that
    ``base`` already has stay as they are (at every level)."""
    for key, value in extra.items():
        if key in keep and key in base:
            continue
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value, keep)
        else:
            base[key] = copy.deepcopy(value)
    return base


def config_of_other_task(configfiles, command_line_files, overrides: dict | None = None) -> dict | None:
    """The config of a run whose command-line config files name a task other than the workflow's default
    config file: those files (merged in order) and the ``--config`` overrides alone, without the default
    file's sections (the demo's sections belong to its task). None when the run's task is the default one."""
    files = _config_files(configfiles, command_line_files)
    if not any(from_cli for _, from_cli in files):
        return None
    default_task = "cg_benzene"
    merged: dict = {}
    for data, from_cli in files:
        if from_cli:
            _deep_update(merged, data)
        else:
            default_task = data.get("task", default_task)
    _deep_update(merged, dict(overrides or {}))
    if merged.get("task", default_task) == default_task:
        return None
    return merged


def run_config(configfiles, command_line_files, overrides: dict | None, merged: dict) -> dict:
    """The validated config of one run, from its config files in Snakemake's order of precedence.

    ``merged`` is Snakemake's key-by-key merge of the files and ``overrides`` (``--config``). A command-line
    file of another task than the default file's brings its whole config (:func:`config_of_other_task`);
    ``balancing`` is taken whole from the last file that has it, with that file's ``stats.controls``
    (:func:`whole_section`), and so is ``l2o.meta.families``; a key given twice in one file is refused.
    Raises ConfigError naming the field.
    """
    config = copy.deepcopy(merged)
    other = config_of_other_task(configfiles, command_line_files, overrides)
    if other is not None:
        config = other
    for path in configfiles:
        check_duplicate_keys(path)
    balancing = whole_section("balancing", configfiles, command_line_files)
    if balancing is not None:
        config["balancing"] = balancing
        config.setdefault("stats", {})["controls"] = controls_of_balancing(configfiles, command_line_files)
    # the meta-training families likewise: a file that names its families means those, not the default's too
    families = whole_section("l2o.meta.families", configfiles, command_line_files)
    if families is not None:
        config.setdefault("l2o", {}).setdefault("meta", {})["families"] = families
    return validate_config(config)


TASK_RUN_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def task_runs(tasks: dict, default_configfile: str | Path) -> dict[str, dict]:
    """{run name: validated config} of a multi-task run (config key ``tasks``: run name -> config file).

    Each file is resolved as ``snakemake --configfile FILE`` alone would resolve it (over the workflow's
    ``default_configfile``), so one file runs the same alone or in a list. Two runs may not share a
    ``results_dir``. Raises ConfigError naming ``tasks.<run>``.
    """
    if not isinstance(tasks, dict) or not tasks:
        raise ConfigError("config error at tasks: a mapping of run names to config files (e.g. cg_benzene: "
                          "config/config.yaml)")
    runs: dict[str, dict] = {}
    owners: dict[str, str] = {}
    default = str(default_configfile)
    for name, path in tasks.items():
        field = f"tasks.{name}"
        if not isinstance(name, str) or not TASK_RUN_NAME.match(name):
            raise ConfigError(f"config error at {field}: a run name is lower case letters, digits and '_', "
                              "starting with a letter (it prefixes the run's rule names)")
        if not isinstance(path, str) or not Path(path).is_file():
            raise ConfigError(f"config error at {field}: {path!r} is not a config file")
        files = [default] if Path(path).resolve() == Path(default).resolve() else [default, path]
        merged: dict = {}
        for data, _ in _config_files(files, files[1:]):
            _deep_update(merged, data)
        try:
            config = run_config(files, files[1:], {}, merged)
        except ConfigError as err:
            raise ConfigError(f"{err} (in {path}, listed at {field})") from None
        if config.get("tasks"):
            raise ConfigError(f"config error at {field}: {path} lists tasks itself (one level only)")
        results = str(Path(config["results_dir"]).resolve())
        if results in owners:
            raise ConfigError(f"config error at {field}: results_dir {config['results_dir']!r} is also the one "
                              f"of tasks.{owners[results]}; give each run its own")
        owners[results] = name
        runs[name] = config
    return runs


def cross_task_settings(config: dict) -> dict:
    """The ``cross_task`` section of a multi-task config, validated with its defaults (a ConfigError names the
    field)."""
    wrapped = {"cross_task": copy.deepcopy(config.get("cross_task") or {})}
    _validate_schema(wrapped, {"type": "object",
                               "properties": {"cross_task": load_schema()["properties"]["cross_task"]}})
    return wrapped["cross_task"]


def load_config(path: str | Path) -> dict:
    """Read (refusing duplicate keys), validate and fill defaults."""
    check_duplicate_keys(path)
    config = read_yaml(path) or {}
    return validate_config(config)
