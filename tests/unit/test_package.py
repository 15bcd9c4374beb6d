"""The package as users meet it: the public API is ``avxai.__all__`` (every registered method a top-level function,
models, tasks, metrics, the explanation), the version comes from the package metadata, ``python -m avxai`` is
the ``avxai`` command, the package is typed, and the bundled assets are read from inside the package."""

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import avxai
import avxai.__main__ as entry
from avxai.cli import main
from avxai.methods import METHODS


def test_every_registered_method_is_a_top_level_function_in_all():
    for name, method in METHODS.items():
        attr = name.replace("-", "_")
        assert attr in avxai.__all__, f"method {name!r} is not exported as avxai.{attr}"
        assert getattr(avxai, attr) is method


def test_all_names_resolve_and_carry_the_entry_points():
    missing = [n for n in avxai.__all__ if not hasattr(avxai, n)]
    assert not missing, f"__all__ names that avxai lacks: {missing}"
    assert len(set(avxai.__all__)) == len(avxai.__all__)
    for name in ("load_model", "wrap", "resolve_model", "tasks", "metrics", "Explanation", "Spectrogram",
                 "deletion_curve", "insertion_curve", "segment_mass", "ASSETS_DIR"):
        assert name in avxai.__all__, name
    assert callable(avxai.Explanation._repr_html_) and callable(avxai.Explanation.to_html)


def test_version_is_the_package_metadata():
    assert avxai.__version__ == importlib.metadata.version("avxai")


def test_python_dash_m_avxai_is_the_avxai_command():
    run = subprocess.run([sys.executable, "-m", "avxai", "--version"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"avxai {importlib.metadata.version('avxai')}"
    assert entry.main is main  # imported, not run: the avxai script's main (same parser, same exit codes)


def test_the_package_is_typed_and_its_assets_live_inside_it():
    package = Path(avxai.__file__).parent
    assert (package / "py.typed").is_file()
    assert avxai.ASSETS_DIR == package / "assets"
    for name in ("speaker/speaker_net.pt", "speaker/aba.wav", "enhancement/enhancer.pt", "separation/convtasnet.pt",
                 "av_enhancement/av_enhancer.pt", "av_enhancement/example.mp4", "real/aba.wav"):
        assert (avxai.ASSETS_DIR / name).is_file(), name
