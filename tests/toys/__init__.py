"""Toy models and signals whose correct explanation is known, shared by the tests (``tests/conftest.py`` puts
``tests/`` on the path, so tests import them as ``toys.models``, ``toys.problems``, ``toys.audit``, ...)."""

from pathlib import Path

#: the repository root and the tests folder
REPO = Path(__file__).resolve().parents[2]
TESTS = Path(__file__).resolve().parents[1]
