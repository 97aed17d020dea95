"""The packages, which pyproject.toml cannot say alone: every `faultserver*` package found,
the data package `faultserver.profiles`, mapped onto the repository's profiles/
directory (the shipped profiles stay there; `faultserver/_shipped.py` finds them by name),
and the dashboard's static files, `faultserver._admin.dashboard` (a folder of data with no
`__init__.py`, read through importlib.resources).
Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["faultserver*"]), "faultserver._admin.dashboard", "faultserver.profiles",
    ],
    package_dir={"faultserver.profiles": "profiles"},
)
