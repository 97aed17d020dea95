"""The packages, which pyproject.toml cannot say alone: every `faultserver*` package found,
and the data package `faultserver.profiles`, mapped onto the repository's profiles/
directory (the shipped profiles stay there; `faultserver/_shipped.py` finds them by name).
Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["faultserver*"]), "faultserver.profiles"],
    package_dir={"faultserver.profiles": "profiles"},
)
