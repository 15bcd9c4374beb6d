"""recipes/enhancement/explain.py and recipes/separation/explain.py in --debug mode on the bundled models: the
whole path (held-out data, both methods, IBM comparison, figures, results.json) runs and says what it measured."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


# the recipes set torch's thread count (--threads): the rest of the suite gets its own back
pytestmark = pytest.mark.usefixtures("restore_threads")


def _recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_explain", REPO / "recipes" / name / "explain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # ~10 s each: the bundled models on 1 s of audio, coarse occlusion, 10 extremal iterations
@pytest.mark.parametrize("name", ["enhancement", "separation"])
def test_explain_recipe_debug_run(name, tmp_path):
    results = _recipe(name).main(["--debug", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["summary"] == json.loads(json.dumps(results["summary"]))
    items = saved["items"]
    assert items and all(set(it["methods"]) == {"occlusion", "extremal"} for it in items)
    for it in items:
        for row in it["methods"].values():
            assert 0.0 <= row["iou"] <= 1.0 and 0.0 <= row["chance_iou"] <= 1.0
            # the comparison is at the target's energy share, clipped into the extremal area's open interval
            assert 0.01 <= row["area"] <= 0.99
    assert len(list(tmp_path.glob("*.png"))) >= 2 * len(items)


@pytest.mark.parametrize("name", ["enhancement", "separation"])
def test_explain_recipes_refuse_training_speakers_and_unknown_methods(name, tmp_path):
    recipe = _recipe(name)
    with pytest.raises(ValueError, match="were used in training"):
        recipe.main(["--debug", "--out", str(tmp_path), "--speakers", "0", "4"])
    with pytest.raises(SystemExit, match="unknown method"):
        recipe.main(["--debug", "--out", str(tmp_path), "--methods", "occlusion,extremel"])
    with pytest.raises(SystemExit, match="configures occlusion and extremal only; --methods named 'saliency'"):
        recipe.main(["--debug", "--out", str(tmp_path), "--methods", "occlusion,saliency"])
