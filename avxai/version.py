"""The package version, at the bottom layer so that any module can record it without importing ``avxai``."""

__version__ = "0.1.0"
