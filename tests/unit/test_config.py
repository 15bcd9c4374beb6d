"""The one config loader (avxai.config.build_config): YAML file (or a section of it), values, --set items and
shortcuts onto a frozen dataclass; values checked against the field annotations."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from avxai.config import build_config, describe_type
from avxai.methods import get_method


@dataclass(frozen=True)
class Config:
    steps: int = 10
    lr: float = 1e-3
    areas: tuple[float, ...] = (0.1,)
    window: tuple[int, ...] | int | None = field(default=None, metadata={"note": "one per grid axis"})
    pair: tuple[float, float] = (0.9, 0.999)
    mode: Literal["fast", "slow"] = "fast"
    name: str = "x"
    folder: Path | None = None
    debug: bool = False


def test_sources_in_order_lists_become_tuples_and_ints_floats(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 5\nlr: 1e-2\nareas: [0.05, 0.2]\nname: from-file\n")
    cfg = build_config(Config, file=path, values={"steps": 6, "folder": "out"}, sets=["steps=7", "pair = [1, 2]"],
                       shortcuts={"steps": 8, "name": None})
    # PyYAML reads 1e-2 as a string: a number-like string becomes the float the field asks for
    assert cfg == Config(steps=8, lr=0.01, areas=(0.05, 0.2), pair=(1.0, 2.0), name="from-file", folder=Path("out"))
    assert isinstance(cfg.pair[0], float) and build_config(Config, sets=["window=3"]).window == 3


def test_a_section_of_the_file_or_the_whole_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("occlusion:\n  batch_size: 7\nextremal:\n  iterations: 20\n")
    occ = build_config(get_method("occlusion").config_class, file=path, section="occlusion")
    ext = build_config(get_method("extremal").config_class, file=path, section="extremal")
    assert occ.batch_size == 7 and ext.iterations == 20
    flat = tmp_path / "flat.yaml"
    flat.write_text("batch_size: 9\n")
    assert build_config(get_method("occlusion").config_class, file=flat, section="occlusion").batch_size == 9


def test_type_errors_name_the_source_the_field_and_the_type(tmp_path):
    with pytest.raises(ValueError, match=r"^--set window=2\.5: window expects a tuple of ints, an int or None "
                                         r"\(one per grid axis\), got 2\.5$"):
        build_config(Config, sets=["window=2.5"])
    with pytest.raises(ValueError, match=r"--set window=2.5: window expects .* \(one per grid axis\), got 2.5"):
        build_config(get_method("occlusion").config_class, sets=["window=2.5"])
    with pytest.raises(ValueError, match=r"--set pair=\[1, 2, 3\]: pair expects a tuple of 2 numbers"):
        build_config(Config, sets=["pair=[1, 2, 3]"])
    with pytest.raises(ValueError, match="mode expects one of 'fast', 'slow', got 'medium'"):
        build_config(Config, values={"mode": "medium"})
    with pytest.raises(ValueError, match="--steps: steps expects an int, got 2.5"):
        build_config(Config, shortcuts={"steps": 2.5})
    with pytest.raises(ValueError, match="debug expects true or false, got 1"):
        build_config(Config, values={"debug": 1})
    path = tmp_path / "c.yaml"
    path.write_text("lr: fast\n")
    with pytest.raises(ValueError, match=f"config file {path}: lr expects a number, got 'fast'"):
        build_config(Config, file=path)


def test_unknown_fields_bad_items_and_files_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"Config has no field step \(from --set step=3\) \(did you mean steps\?\); "
                                         r"its fields are areas, debug"):
        build_config(Config, sets=["step=3"])
    with pytest.raises(ValueError, match="--areas does not apply to OcclusionConfig"):
        build_config(get_method("occlusion").config_class, shortcuts={"areas": (0.1,)})
    with pytest.raises(ValueError, match="--set takes FIELD=VALUE"):
        build_config(Config, sets=["steps"])
    with pytest.raises(ValueError, match="does not exist"):
        build_config(Config, file=tmp_path / "missing.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must hold a mapping of Config fields"):
        build_config(Config, file=bad)


def test_describe_type():
    assert describe_type(tuple[float, ...] | None) == "a tuple of numbers or None"
    assert describe_type(int | tuple[int, ...] | None) == "an int, a tuple of ints or None"
