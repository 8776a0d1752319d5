"""The one compiled part of vsync, built where a C compiler is present (optional:
without it vsync runs the same walk in Python; docs/dependencies.md)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("vsync.model._lstat_match", ["vsync/model/_lstat_match.c"], optional=True)
    ]
)
