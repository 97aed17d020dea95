"""The JSON Schema agrees with the loader: shipped and valid profiles pass both, broken
profiles fail both (the profile format: `faultserver schema`)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from faultserver._errors import ProfileError
from faultserver._profile.actions import ACTIONS, CONNECT_ACTIONS
from faultserver._profile.load import load_profile_data, load_profile_file
from faultserver._profile.schema import profile_schema

ROOT = Path(__file__).resolve().parent.parent.parent
SHIPPED = sorted((ROOT / "profiles").glob("*.yaml"))
VALID = sorted((ROOT / "tests" / "data" / "valid").glob("*.yaml"))
BROKEN = sorted((ROOT / "tests" / "data" / "broken").glob("*.yaml"))


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(profile_schema())


def schema_errors(validator: jsonschema.Draft202012Validator, path: Path) -> list[str]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)
    ]


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = profile_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_schema_is_json_and_fresh_at_each_call() -> None:
    schema = profile_schema()
    assert json.loads(json.dumps(schema)) == schema
    schema["properties"].clear()
    assert profile_schema()["properties"]


def test_schema_actions_come_from_the_action_table() -> None:
    rule = profile_schema()["$defs"]["rule"]
    assert rule["properties"]["action"]["enum"] == list(ACTIONS)
    per_action = {
        branch["if"]["properties"]["action"]["const"]: branch["then"]
        for branch in rule["allOf"]
        if "action" in branch["if"]["properties"]
    }
    assert list(per_action) == list(ACTIONS)
    for name, then in per_action.items():
        assert set(then["properties"]) == set(ACTIONS[name].keys)
    connect = [b for b in rule["allOf"] if "at" in b["if"]["properties"]]
    assert connect[0]["then"]["properties"]["action"]["enum"] == list(CONNECT_ACTIONS)


@pytest.mark.parametrize("path", SHIPPED + VALID, ids=[f"shipped-{i}" for i in _ids(SHIPPED)] + _ids(VALID))
def test_schema_shipped_and_valid_profiles_pass_loader_and_schema(
    path: Path, validator: jsonschema.Draft202012Validator
) -> None:
    load_profile_file(str(path))
    assert schema_errors(validator, path) == []


def test_schema_broken_profiles_are_there() -> None:
    assert len(BROKEN) >= 50


@pytest.mark.parametrize("path", BROKEN, ids=_ids(BROKEN))
def test_schema_broken_profile_fails_loader_and_schema(
    path: Path, validator: jsonschema.Draft202012Validator
) -> None:
    with pytest.raises(ProfileError) as info:
        load_profile_file(str(path))
    assert all(p.file == str(path) and p.line >= 1 for p in info.value.problems)
    assert schema_errors(validator, path) != []


def test_schema_broken_spec_example_message(tmp_path: Path) -> None:
    path = ROOT / "tests" / "data" / "broken" / "spec-example.yaml"
    with pytest.raises(ProfileError) as info:
        load_profile_file(str(path))
    assert [f"{p.line}:{p.column}: {p.path}: {p.message}" for p in info.value.problems] == [
        "14:15: listeners[0].rules[1].action: unknown action 'clse' (did you mean 'close'? "
        "expected one of: respond, close, reset, hang, partial, dribble, garbage, delay, "
        "goaway, rst_stream, forward)"
    ]


def test_schema_and_loader_agree_on_data_from_json(
    validator: jsonschema.Draft202012Validator,
) -> None:
    data = load_profile_file(str(ROOT / "tests" / "data" / "valid" / "everything.yaml")).raw
    assert list(validator.iter_errors(data)) == []
    load_profile_data(data)
