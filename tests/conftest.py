"""Shared test set-up. The layout mirrors the package: ``unit/<package>/`` tests one layer each, ``e2e/`` runs
the command line, recipes and the browser, ``toys/`` holds every toy model and signal whose answer is known.

``tests/`` goes on ``sys.path`` so that every test imports the toys as ``toys.<module>`` (pytest runs with
``--import-mode=importlib``: test files in different folders may share a name).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module, restored afterwards: tiny problems run 20-40x slower on two threads
    when the machine is busy, and some tests compare results that depend on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def restore_threads():
    """Gives back torch's thread count after a test that sets it (a recipe's or the CLI's --threads)."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory):
    """Face-track caches (``$AVXAI_CACHE_DIR``) go to a temporary folder, never the user's ``~/.cache/avxai``;
    subprocesses inherit it through the environment."""
    before = os.environ.get("AVXAI_CACHE_DIR")
    os.environ["AVXAI_CACHE_DIR"] = str(tmp_path_factory.mktemp("avxai-cache"))
    yield
    if before is None:
        os.environ.pop("AVXAI_CACHE_DIR", None)
    else:
        os.environ["AVXAI_CACHE_DIR"] = before
