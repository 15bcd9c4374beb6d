"""The speaker task's extremal defaults (issue 16): time-only masks on the input's noise floor, applied by the CLI
where the user gave nothing, overridden by --set / a flag / --config, printed and saved in the metadata."""

from __future__ import annotations

import argparse
import json

import pytest

from avxai.cli import main, method_config, task_defaults
from avxai.demo import speaker_assets
from avxai.methods import get_method
from avxai.tasks import get_task

FLAGS = ("areas", "window", "stride", "iterations", "batch_size", "seed")


def speaker_config(**given):
    task, method = get_task("speaker"), get_method("extremal")
    args = argparse.Namespace(**{**{k: None for k in FLAGS}, "set": [], "config": None, "quiet": True, **given})
    return task_defaults(task, method, method_config(method, args), args)


def test_the_speaker_task_defaults_extremal_to_time_masks_on_the_floor(tmp_path):
    config = speaker_config()
    assert (config.mask_axes, config.perturbation) == (("time",), "floor")
    assert config.areas == get_method("extremal").config_class().areas  # nothing else changes
    free = speaker_config(set=["mask_axes=null"])  # a T-F map: the user's --set wins, the floor stays
    assert (free.mask_axes, free.perturbation) == (None, "floor")
    both = speaker_config(set=["mask_axes=null", "perturbation=null"])
    assert (both.mask_axes, both.perturbation) == (None, None)
    (tmp_path / "c.yaml").write_text("perturbation: noise:10\n")
    from_file = speaker_config(config=str(tmp_path / "c.yaml"))
    assert (from_file.mask_axes, from_file.perturbation) == (("time",), "noise:10")
    occlusion = get_method("occlusion")  # other methods keep their own defaults
    args = argparse.Namespace(**{k: None for k in FLAGS}, set=[], config=None, quiet=True)
    assert task_defaults(get_task("speaker"), occlusion, method_config(occlusion, args), args) == \
        method_config(occlusion, args)


@pytest.mark.usefixtures("one_thread")
def test_explain_says_which_settings_came_from_the_task(tmp_path, capsys):
    out = tmp_path / "out"
    common = ["explain", "--task", "speaker", "--method", "extremal", "--iterations", "2", "--areas", "0.1",
              "--input", str(speaker_assets() / "aba.wav"), "--quiet"]
    assert main([*common, "--out", str(out)]) == 0
    assert "note: --task speaker sets extremal mask_axes=('time',), perturbation='floor'" in capsys.readouterr().err
    meta = json.loads((out / "explanation.json").read_text())["metadata"]
    assert meta["task_defaults"] == {"mask_axes": ["time"], "perturbation": "floor"}
    assert meta["mask_axes"] == ["time"] and "floor" in meta["perturbation"].lower()
    assert meta["config"]["mask_axes"] == ["time"]
    assert main([*common, "--set", "mask_axes=null", "--out", str(tmp_path / "tf")]) == 0
    assert "mask_axes" not in capsys.readouterr().err
    meta = json.loads((tmp_path / "tf" / "explanation.json").read_text())["metadata"]
    assert meta["task_defaults"] == {"perturbation": "floor"} and meta["mask_axes"] == ["freq", "time"]
