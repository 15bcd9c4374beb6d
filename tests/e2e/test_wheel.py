"""The wheel users install: built from a copy of the source (``pip wheel --no-build-isolation``, nothing
downloaded), it carries the package, ``py.typed``, the bundled reference models and the demo media (a few MB)
and nothing of the repository around it (tests, recipes, docs, caches). Installed into a fresh virtual
environment that borrows the already-installed dependencies, it runs ``avxai demo`` from an empty folder, so
nothing can come from the source tree.

The fresh environment is ``python -m venv --without-pip``; a ``.pth`` file there names the project
environment's site-packages folder, which puts torch & co. on its path without processing that folder's own
``.pth`` files (the editable install of avxai is one): ``import avxai`` finds the installed wheel only.
"""

import importlib.metadata
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from avxai.models.registry import ARCHITECTURES

ROOT = Path(__file__).resolve().parents[2]
#: the asset kinds the demo and the reference models read (pyproject's package-data says the same)
ASSET_KINDS = {".pt", ".json", ".wav", ".mp4", ".md"}
#: the wheel measured 5.4 MB (5.6 MB of bundled models and media before compression) when this test was written
MAX_WHEEL_BYTES = 10_000_000
MAX_FILE_BYTES = 2_000_000


def _clean_env() -> dict[str, str]:
    """The environment without anything that would put the source tree on the path."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}


def _run(cmd, cwd, timeout=300):
    run = subprocess.run([str(c) for c in cmd], cwd=cwd, env=_clean_env(), capture_output=True, text=True,
                         timeout=timeout)
    assert run.returncode == 0, f"{' '.join(map(str, cmd))} failed ({run.returncode}):\n{run.stdout}\n{run.stderr}"
    return run


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the project (the build writes build/ and *.egg-info next to it)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "avxai", src / "avxai", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
          "-w", dist, src], cwd=src)
    wheels = list(dist.glob("avxai-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.mark.slow
def test_the_wheel_carries_the_package_and_its_assets_and_nothing_else(wheel):
    with zipfile.ZipFile(wheel) as z:
        sizes = {i.filename: i.file_size for i in z.infolist()}
        entry_points = z.read(next(n for n in sizes if n.endswith(".dist-info/entry_points.txt"))).decode()
    names = set(sizes)
    assert wheel.stat().st_size < MAX_WHEEL_BYTES, f"wheel {wheel.stat().st_size / 1e6:.1f} MB"
    big = {n: s for n, s in sizes.items() if s > MAX_FILE_BYTES}
    assert not big, f"files over {MAX_FILE_BYTES / 1e6:.0f} MB: {big}"
    assert "avxai = avxai.cli:main" in entry_points
    for name in ("avxai/__init__.py", "avxai/__main__.py", "avxai/cli.py", "avxai/py.typed", "avxai/notebook.py"):
        assert name in names, name
    # every bundled checkpoint and its config, and every asset of the kinds the package reads
    for arch in ARCHITECTURES.values():
        if arch.bundled:
            ckpt = f"avxai/assets/{arch.bundled}"
            assert ckpt in names and ckpt[:-3] + ".json" in names, arch.name
    source_assets = {f"avxai/{p.relative_to(ROOT / 'avxai').as_posix()}" for p in (ROOT / "avxai/assets").rglob("*")
                     if p.is_file() and p.suffix in ASSET_KINDS}
    assert source_assets <= names, sorted(source_assets - names)
    for name in ("avxai/assets/speaker/aba.wav", "avxai/assets/real/enroll_A.wav", "avxai/assets/README.md"):
        assert name in names, name  # the demo's media, and where they come from (licences)
    tops = {n.split("/")[0] for n in names}
    assert tops == {"avxai", f"avxai-{wheel.name.split('-')[1]}.dist-info"}, tops  # no tests/, recipes/, docs/
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".tmp"))]
    assert not [n for n in names if n.startswith("avxai/assets/") and Path(n).suffix not in ASSET_KINDS]


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed; its python."""
    venv = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=venv)
    python = venv / "bin" / "python"
    # pip runs from this environment against the new one (--python): it sees only the new one's packages
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "--quiet", wheel],
         cwd=venv)
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=venv).stdout.strip())
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (purelib / "avxai-test-dependencies.pth").write_text("\n".join(deps) + "\n")
    return python


@pytest.mark.slow
def test_the_installed_wheel_runs_the_demo_from_an_empty_folder(installed, tmp_path):
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    venv = installed.parent.parent
    where = _run([installed, "-c", "import avxai, importlib.metadata as m; print(avxai.__file__); "
                  "print(m.distribution('avxai').locate_file('')); print(avxai.ASSETS_DIR); print(avxai.__version__)"],
                 cwd=empty)
    module, dist, assets, version = where.stdout.split("\n")[:4]
    for path in (module, dist, assets):  # the wheel's copy, never the source tree
        assert Path(path).resolve().is_relative_to(venv.resolve()), (path, venv)
    assert version == importlib.metadata.version("avxai")
    # the gradient method: the same bundled model, utterance, figure and WAVs as the default occlusion demo, in
    # seconds instead of occlusion's 30-40 s on two busy cores (test_cli runs the demo's occlusion pipeline with
    # coarser windows; make demo runs it in full)
    demo = _run([venv / "bin" / "avxai", "demo", "--method", "saliency", "--quiet", "--out", "out"], cwd=empty)
    assert "speaker A (class 0)" in demo.stdout
    out = empty / "out"
    for name in ("explanation.json", "arrays.npz", "figure.png", "original.wav", "preserved.wav", "deleted.wav"):
        assert (out / name).stat().st_size > 0, name
    assert sorted(p.name for p in empty.iterdir()) == ["out"]  # nothing else written into the working folder
