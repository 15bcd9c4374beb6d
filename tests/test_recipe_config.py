"""The recipes' shared config path: YAML mapping + --set overrides -> frozen dataclass."""

from dataclasses import dataclass

import pytest

from avxai.recipe_config import apply_overrides, config_from_dict


@dataclass(frozen=True)
class Config:
    steps: int = 10
    lr: float = 1e-3
    areas: tuple[float, ...] = (0.1,)
    name: str = "x"


def test_overrides_are_yaml_and_lists_become_tuples():
    values = apply_overrides({"steps": 5}, ["lr=0.01", "areas=[0.05, 0.2]", "name = y"])
    assert values == {"steps": 5, "lr": 0.01, "areas": [0.05, 0.2], "name": "y"}
    cfg = config_from_dict(Config, values)
    assert cfg == Config(steps=5, lr=0.01, areas=(0.05, 0.2), name="y")
    assert config_from_dict(Config, {"lr": 1}).lr == 1.0 and isinstance(config_from_dict(Config, {"lr": 1}).lr, float)


def test_bad_keys_and_items_are_named():
    with pytest.raises(ValueError, match=r"unknown config keys \['step'\]; valid keys are \['areas', 'lr', 'name', 'steps'\]"):
        config_from_dict(Config, {"step": 3})
    with pytest.raises(ValueError, match="--set expects KEY=VALUE, got 'steps'"):
        apply_overrides({}, ["steps"])
