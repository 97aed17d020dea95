"""faultserver: a fault-injecting mock backend server.

This module stays cheap to import (the pytest plugin imports it in every test run):
the loader and the server are imported on first use.
"""

from typing import Any

from ._errors import (
    BindPolicyError,
    CapacityError,
    FaultserverError,
    Problem,
    ProfileError,
    StartError,
    UnknownListenerError,
    UsageError,
)

__version__ = "0.1.0"

__all__ = [
    "BindPolicyError",
    "CapacityError",
    "FaultserverError",
    "Problem",
    "ProfileError",
    "StartError",
    "UnknownListenerError",
    "UsageError",
    "__version__",
    "load_profile_data",
    "load_profile_file",
    "load_profile_text",
]

_LAZY = {
    "load_profile_data": "._profile.load",
    "load_profile_file": "._profile.load",
    "load_profile_text": "._profile.load",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'faultserver' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
