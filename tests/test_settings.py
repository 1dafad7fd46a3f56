"""balancebench.settings: the unknown-key check of every settings section."""

from dataclasses import dataclass

import pytest

from balancebench.settings import UnknownSettingError, settings_from_section


@dataclass
class Example:
    width: int = 8
    depth: int = 2


def test_known_keys_build_the_dataclass_and_defaults_fill_the_rest():
    assert settings_from_section(Example, {"width": 16}, "model") == Example(width=16, depth=2)


def test_an_unknown_key_names_its_section_and_the_valid_keys():
    with pytest.raises(UnknownSettingError, match=r"unknown model settings \['widht'\]; valid: \['depth', 'width'\]"):
        settings_from_section(Example, {"widht": 16}, "model")
    assert issubclass(UnknownSettingError, ValueError)  # callers that catch ValueError keep working


@pytest.mark.parametrize("section, build", [
    ("model", lambda: __import__("balancebench.tasks.cg_benzene.model", fromlist=["ModelConfig"]).ModelConfig.from_dict),
    ("training", lambda: __import__("balancebench.training", fromlist=["TrainingSettings"]).TrainingSettings.from_dict),
    ("l2o.optimizer", lambda: __import__("balancebench.l2o.net", fromlist=["OptimizerSpec"]).OptimizerSpec.from_dict),
    ("l2o.meta", lambda: __import__("balancebench.l2o.meta", fromlist=["MetaSettings"]).MetaSettings.from_dict),
])
def test_every_config_section_uses_it(section, build):
    with pytest.raises(UnknownSettingError, match=f"unknown {section} settings"):
        build()({"no_such_key": 1})
