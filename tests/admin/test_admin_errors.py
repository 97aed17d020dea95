"""faultserver's errors map to HTTP statuses in one table, and no error type is left out."""

from __future__ import annotations

import inspect

import pytest

import faultserver._errors as errors_module
from faultserver._admin.errors import STATUS_OF, status_of
from faultserver._errors import (
    BindPolicyError,
    CapacityError,
    FaultserverError,
    Problem,
    ProfileError,
    StartError,
    UnknownListenerError,
    UsageError,
)


def error_types() -> set[type]:
    return {
        obj for obj in vars(errors_module).values()
        if inspect.isclass(obj) and issubclass(obj, FaultserverError)
    }


def test_errors_every_type_has_its_own_status():
    assert error_types() == set(STATUS_OF), "an error type of faultserver._errors has no status"


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (UsageError("x"), 400),
        (ProfileError([Problem("<request>", 1, 1, "", "bad")]), 400),
        (UnknownListenerError("nope", ["backend"]), 404),
        (BindPolicyError("x"), 403),
        (StartError("x"), 409),
        (CapacityError("x"), 503),
        (FaultserverError("x"), 500),
    ],
)
def test_errors_status_is_the_most_specific_row(exc, status):
    assert status_of(exc) == status


def test_errors_unknown_listener_message_names_the_listeners():
    assert str(UnknownListenerError("nope", ["a", "b"])) == "no listener named 'nope' (listeners: a, b)"
    assert str(UnknownListenerError("nope", [])) == "no listener named 'nope' (listeners: none)"


def test_errors_tree_in_the_docstring_names_every_type():
    for kind in error_types():
        assert kind.__name__ in errors_module.__doc__, kind
