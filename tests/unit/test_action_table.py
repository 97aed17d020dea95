"""The action table is complete, and everything that reads it agrees with it: the model, the
loader, the JSON Schema, the `X-Fault` parser and `faultserver actions`."""

from __future__ import annotations

import dataclasses

import pytest

from faultserver._cli import main
from faultserver._decide.fault_header import parse_fault_header
from faultserver._profile.actions import ACTIONS, CONNECT_ACTIONS, RULE_KEYS, ActionSpec, ValueKind
from faultserver._profile.listener import KEEPALIVE_KEYS, LIMITS_KEYS, RESPONSE_KEYS
from faultserver._profile.load import load_rules
from faultserver._profile.model import (
    Action,
    ActionName,
    Body,
    Framing,
    Hang,
    Keepalive,
    Limits,
    Respond,
    Response,
)
from faultserver._profile.schema import profile_schema
from faultserver._profile.units import Fixed
from faultserver._profile.values import KIND_CHECKS

SPECS = list(ACTIONS.values())
IDS = list(ACTIONS)

#: A valid YAML value for each kind of value, and what the header writes for it.
EXAMPLE = {
    ValueKind.DURATION: ("250ms", "250ms"),
    ValueKind.POSITIVE_DURATION: ("2s", "2s"),
    ValueKind.TIMING: ({"uniform": ["1ms", "2ms"]}, "3ms"),
    ValueKind.SIZE: ("1KiB", "1KiB"),
    ValueKind.POSITIVE_SIZE: (4, "4"),
    ValueKind.RATE: ("1KiB/s", "1KiB/s"),
    ValueKind.STATUS: (503, "503"),
    ValueKind.COUNT: (3, "3"),
    ValueKind.HEADERS: ({"retry-after": 1}, None),  # the header cannot spell headers
    ValueKind.BODY: ("nope", "nope"),
    ValueKind.FRAMING: ("chunked", "chunked"),
    ValueKind.THEN: ("reset", "reset"),
    ValueKind.BOOLEAN: (False, "false"),
    ValueKind.H2_ERROR: ("REFUSED_STREAM", "refused_stream"),
    ValueKind.LAST_STREAM: ("previous", "previous"),
    ValueKind.GOAWAY_THEN: ("keep", "keep"),
    ValueKind.GRPC: ({"status": "UNAVAILABLE"}, None),  # the header cannot spell a mapping
    ValueKind.FORWARD_THEN: ("reset", "reset"),
}


def test_action_table_has_every_action_in_the_enum_order() -> None:
    assert list(ACTIONS) == [name.value for name in ActionName]
    assert all(spec.name.value == key for key, spec in ACTIONS.items())
    assert tuple(name for name, spec in ACTIONS.items() if spec.at_connect) == CONNECT_ACTIONS


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_action_table_model_fields_are_the_keys_fields(spec: ActionSpec) -> None:
    assert dataclasses.is_dataclass(spec.model)
    fields = {f.name for f in dataclasses.fields(spec.model)}
    assert fields == {key.field for key in spec.keys.values()}
    assert spec.model.name is spec.name  # type: ignore[attr-defined]
    assert spec.model in Action.__args__  # type: ignore[attr-defined]


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_action_table_keys_are_consistent(spec: ActionSpec) -> None:
    assert not set(spec.keys) & set(RULE_KEYS)
    assert set(spec.required) <= set(spec.keys)
    assert set(spec.exactly_one_of) <= set(spec.keys)
    assert all(k.goes_with in ("", *spec.keys) for k in spec.keys.values())
    # a key that may be null is one whose model field has a default to fall back to
    defaults = {f.name: f.default for f in dataclasses.fields(spec.model)}
    for key in spec.keys.values():
        if key.nullable:
            assert defaults[key.field] is not dataclasses.MISSING
    assert spec.help


def test_action_table_every_kind_of_value_can_be_checked() -> None:
    assert set(KIND_CHECKS) == set(ValueKind)
    assert set(EXAMPLE) == set(ValueKind)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_action_table_schema_has_every_key(spec: ActionSpec) -> None:
    rule = profile_schema()["$defs"]["rule"]
    [branch] = [
        b["then"]
        for b in rule["allOf"]
        if b["if"]["properties"].get("action", {}).get("const") == spec.name.value
    ]
    assert list(branch["properties"]) == list(spec.keys)
    assert branch.get("required", []) == list(spec.required)
    assert [o["required"] for o in branch.get("oneOf", [])] == [[k] for k in spec.exactly_one_of]
    for key_name, key in spec.keys.items():
        assert f"#/$defs/{key.kind.value}" in str(branch["properties"][key_name])


def _rule_with_every_key(spec: ActionSpec) -> dict[str, object]:
    rule: dict[str, object] = {"action": spec.name.value}
    for key_name, key in spec.keys.items():
        if key_name not in spec.exactly_one_of[1:]:
            rule[key_name] = EXAMPLE[key.kind][0]
    return rule


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_action_table_loader_reads_every_key(spec: ActionSpec) -> None:
    (rule,) = load_rules([_rule_with_every_key(spec)], "backend")
    assert isinstance(rule.action, spec.model)
    for key_name in spec.exactly_one_of[1:]:
        value = EXAMPLE[spec.keys[key_name].kind][0]
        (rule,) = load_rules([{"action": spec.name.value, key_name: value}], "backend")
        assert getattr(rule.action, spec.keys[key_name].field) is not None


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_action_table_loader_takes_null_for_nullable_keys(spec: ActionSpec) -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(spec.model)}
    for name, key in spec.keys.items():
        if not key.nullable:
            continue
        rule = _rule_with_every_key(spec)
        rule[name] = None
        for other in spec.exactly_one_of:
            if other != name:  # the exclusive key given instead
                rule[other] = EXAMPLE[spec.keys[other].kind][0]
                break
        (loaded,) = load_rules([rule], "backend")
        assert getattr(loaded.action, key.field) == defaults[key.field]


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_action_table_fault_header_reads_every_key(spec: ActionSpec) -> None:
    parts = [spec.name.value]
    for key_name, key in spec.keys.items():
        text = EXAMPLE[key.kind][1]
        if text is not None and key_name not in spec.exactly_one_of[1:]:
            parts.append(f"{key_name}={text}")
    action = parse_fault_header("; ".join(parts)).action
    assert isinstance(action, spec.model)


def test_action_table_drives_the_fault_header_values() -> None:
    respond = parse_fault_header("respond; status=503; body=nope; framing=chunked").action
    assert respond == Respond(status=503, body=Body(data=b"nope"), framing=Framing.CHUNKED)
    assert parse_fault_header("hang; for=3ms").action == Hang(for_s=Fixed(0.003))


def test_action_table_sections_read_by_the_same_kinds() -> None:
    sections = ((RESPONSE_KEYS, Response), (KEEPALIVE_KEYS, Keepalive), (LIMITS_KEYS, Limits))
    for keys, model in sections:
        assert {k.field for k in keys.values()} == {f.name for f in dataclasses.fields(model)}


def test_action_table_faultserver_actions_names_every_action_and_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["actions"]) == 0
    out = capsys.readouterr().out
    for name, spec in ACTIONS.items():
        [line] = [line for line in out.splitlines() if line.strip().startswith(name + " ")]
        assert spec.help in line
        for key in spec.keys:
            assert key in line
