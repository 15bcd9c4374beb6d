"""The package version, at the bottom layer so that any module can record it without importing ``avxai``.

It is read from the installed package's metadata (``pyproject.toml``'s ``version`` is the one place it is
written); a source tree that was never installed reports ``0+unknown`` rather than a number it cannot know.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("avxai")
except PackageNotFoundError:  # imported from a source tree that pip never installed
    __version__ = "0+unknown"
