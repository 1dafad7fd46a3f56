"""Typed settings from a config section: the one unknown-key check behind every settings ``from_dict``.

A leaf module (it imports nothing from the library), so that model, training and l2o can use it while
``balancebench.config``, which validates a whole config against them, stays above them.
"""

from __future__ import annotations

import dataclasses


class UnknownSettingError(ValueError):
    """A key of a config section that the section's settings dataclass does not have."""


def settings_dict(settings) -> dict:
    """A settings object as a plain mapping: {} for None, a dataclass's fields, else ``dict(settings)``."""
    if settings is None:
        return {}
    if dataclasses.is_dataclass(settings):
        return dataclasses.asdict(settings)
    return dict(settings)


def settings_from_section(cls, values: dict, section: str):
    """``cls(**values)`` for a settings dataclass; keys that are not fields are refused, naming ``section``.

    Used by the ``from_dict`` of model, training, l2o.optimizer, l2o.meta and each l2o meta-training
    family, so that a misspelt key is an error that says where it is.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise UnknownSettingError(f"unknown {section} settings {unknown}; valid: {sorted(names)}")
    return cls(**values)
