"""Every problem the loader reports, one test per message, pinned as the user reads it:
`FILE:LINE:COLUMN: PATH: message` (the profile format's "Errors")."""

from __future__ import annotations

from pathlib import Path

import pytest

from faultserver._errors import ProfileError
from faultserver._profile.load import (
    MAX_INPUT_BYTES,
    load_profile_data,
    load_profile_file,
    load_profile_text,
    load_rules,
)

#: lines 1-4; a listener's own keys go on line 5 and after, at column 5
HEAD = "version: 1\nlisteners:\n  - name: a\n    bind: 127.0.0.1:0\n"


def problems(text: str, source: str = "p.yaml") -> list[str]:
    with pytest.raises(ProfileError) as info:
        load_profile_text(text, source)
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)
    return [str(p) for p in info.value.problems]


def one(text: str) -> str:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def listener(*lines: str) -> str:
    """HEAD plus listener keys, from line 5, column 5."""
    return HEAD + "".join(f"    {line}\n" for line in lines)


def rule(*lines: str) -> str:
    """HEAD plus one rule: its first key on line 6 at column 9, the next ones below it."""
    first, *rest = lines
    return HEAD + "    rules:\n" + f"      - {first}\n" + "".join(f"        {x}\n" for x in rest)


def data_problems(data: object) -> list[str]:
    with pytest.raises(ProfileError) as info:
        load_profile_data(data)
    return [str(p) for p in info.value.problems]


# --- the spec's example ------------------------------------------------------------------


def test_error_spec_example_unknown_action() -> None:
    text = (
        "version: 1\n"
        "# line 2\n"
        "listeners:\n"
        "  - name: backend\n"
        "    bind: 127.0.0.1:8080\n"
        "    accept: open\n"
        "    response:\n"
        "      status: 200\n"
        "    keepalive:\n"
        "      idle_close: 5s\n"
        "    rules:\n"
        "    - action: close\n"
        "      times: 1\n"
        "    - action: clse\n"
    )
    assert problems(text, "profiles/broken.yaml") == [
        "profiles/broken.yaml:14:15: listeners[0].rules[1].action: unknown action 'clse' "
        "(did you mean 'close'? expected one of: respond, close, reset, hang, partial, dribble, "
        "garbage, delay, goaway, rst_stream, forward)"
    ]


# --- reading ---------------------------------------------------------------------------


def test_error_file_missing(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.yaml")
    with pytest.raises(
        ProfileError, match=r"^.*/nope\.yaml:1:1: cannot read file: No such file or directory$"
    ):
        load_profile_file(path)


def test_error_file_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"^.*:1:1: cannot read file: Is a directory$"):
        load_profile_file(str(tmp_path))


def test_error_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"version: 1\nlisteners:\n  - name: caf\xe9\n")
    with pytest.raises(ProfileError) as info:
        load_profile_file(str(path))
    assert str(info.value) == (
        f"{path}:3:14: expected UTF-8 text, got byte 0xe9 (invalid continuation byte)"
    )


def test_error_file_too_large(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (MAX_INPUT_BYTES + 1))
    with pytest.raises(ProfileError) as info:
        load_profile_file(str(path))
    assert str(info.value) == f"{path}:1:1: profile is larger than the limit of 1MiB"


def test_error_text_too_large() -> None:
    assert (
        one("#" * (MAX_INPUT_BYTES + 1)) == "p.yaml:1:1: profile is larger than the limit of 1MiB"
    )


# --- YAML ------------------------------------------------------------------------------


def test_error_yaml_syntax() -> None:
    assert one("version: 1\nlisteners: [\n") == (
        "p.yaml:3:1: invalid YAML: while parsing a flow node, did not find expected node content"
    )


def test_error_yaml_tab_indent() -> None:
    assert one("version: 1\n\tlisteners: []\n") == (
        "p.yaml:2:1: invalid YAML: while scanning a plain scalar, "
        "found a tab character that violates indentation"
    )


def test_error_yaml_control_character() -> None:
    assert one("version: 1\nseed: \x07\n") == (
        "p.yaml:2:7: invalid YAML: character U+0007 is not allowed"
    )


def test_error_yaml_lone_surrogate() -> None:
    assert one("version: 1\nseed: '\ud800'\n") == (
        "p.yaml:2:8: invalid YAML: character U+D800 is not allowed"
    )


def test_error_yaml_two_documents() -> None:
    assert one("version: 1\n---\nversion: 1\n") == (
        "p.yaml:2:1: invalid YAML: expected a single document in the stream, "
        "but found another document"
    )


def test_error_yaml_undefined_alias() -> None:
    assert one("version: 1\nlisteners: *nope\n") == (
        "p.yaml:2:12: invalid YAML: found undefined alias 'nope'"
    )


def test_error_yaml_duplicate_anchor() -> None:
    assert one("x-a: &a 1\nx-b: &a 2\n") == (
        "p.yaml:2:6: invalid YAML: found duplicate anchor 'a'; first occurrence, second occurrence"
    )


def test_error_yaml_nesting_too_deep() -> None:
    # the top mapping and 99 more are fine; the 101st collection, at column 9 + 99 * 4, is not
    assert one("x-deep: " + "{a: " * 200) == "p.yaml:1:405: nesting deeper than 100 levels"


def test_error_yaml_nesting_too_deep_through_aliases() -> None:
    lines = ["x-0: &a0 [1]"] + [f"x-{i}: &a{i} [*a{i - 1}]" for i in range(1, 120)]
    found = one("\n".join(lines) + "\n")
    assert found == "p.yaml:1:11: nesting deeper than 100 levels (with aliases expanded)"


def test_error_yaml_billion_laughs() -> None:
    lines = ['x-a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"x-{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    # located at the value being built when the count ran out: one of the first "lol"s
    assert one("\n".join(lines) + "\n") == (
        "p.yaml:1:45: profile has more than 100000 values (each use of an alias counts again)"
    )


def test_error_yaml_recursive_alias() -> None:
    assert one(HEAD + "x-loop: &loop [*loop]\n") == (
        "p.yaml:5:9: x-loop[0]: an alias refers to a value that contains it"
    )


def test_error_yaml_unsupported_tag() -> None:
    assert one(listener("backlog: !!python/object:os.system 1")) == (
        "p.yaml:5:14: listeners[0].backlog: unsupported tag '!!python/object:os.system'"
    )


def test_error_yaml_unsupported_local_tag() -> None:
    assert one(listener("backlog: !mine [1]")) == (
        "p.yaml:5:14: listeners[0].backlog: unsupported tag '!mine'"
    )


def test_error_yaml_unsupported_collection_tag() -> None:
    assert one(listener("rules: !!set {a}")) == (
        "p.yaml:5:12: listeners[0].rules: unsupported tag '!!set'"
    )


def test_error_yaml_number_too_large() -> None:
    assert one(f"seed: {'9' * 5000}\n" + HEAD) == (
        "p.yaml:1:7: seed: number too large, got 9999999999999999999999999999...999999"
    )


def test_error_yaml_duplicate_key() -> None:
    assert one(listener("backlog: 1", "backlog: 2")) == (
        "p.yaml:6:5: listeners[0].backlog: duplicate key 'backlog'"
    )


def test_error_yaml_non_string_key() -> None:
    assert one(listener("1: one")) == "p.yaml:5:5: listeners[0]: expected a string key, got 1"


def test_error_yaml_boolean_key() -> None:
    assert one(HEAD + "on: push\n") == "p.yaml:5:1: expected a string key, got true"


def test_error_yaml_merge_of_a_scalar() -> None:
    assert one(listener("<<: 3")) == (
        "p.yaml:5:9: listeners[0]: expected a mapping or a list of mappings to merge (<<), got 3"
    )


# --- data without positions ------------------------------------------------------------


def test_error_data_has_no_positions() -> None:
    assert data_problems(
        {"version": 1, "listeners": [{"name": "a", "bind": "127.0.0.1:0", "accept": "x"}]}
    ) == [
        "<data>:0:0: listeners[0].accept: unknown accept mode 'x' (expected one of: "
        "open, refuse, stall)"
    ]


def test_error_data_unsupported_value() -> None:
    assert data_problems({"version": 1, "listeners": [{"name": "a", "bind": b"127.0.0.1:0"}]}) == [
        "<data>:0:0: listeners[0].bind: unsupported value of type bytes"
    ]


def test_error_data_non_string_key() -> None:
    assert data_problems(
        {"version": 1, "listeners": [{"name": "a", "bind": "127.0.0.1:0", 7: 1}]}
    ) == ["<data>:0:0: listeners[0]: expected a string key, got 7"]


def test_error_data_cycle() -> None:
    loop: dict[str, object] = {}
    loop["x-loop"] = loop
    assert data_problems(loop) == ["<data>:0:0: nesting deeper than 100 levels"]


def test_error_data_too_many_values() -> None:
    assert data_problems({"x-many": [[0] * 1000] * 101}) == [
        "<data>:0:0: profile has more than 100000 values (each use of an alias counts again)"
    ]


def test_error_load_rules_paths_start_at_rules() -> None:
    with pytest.raises(ProfileError) as info:
        load_rules([{"action": "reset"}, {"action": "close", "drian": "1s"}], "backend")
    assert str(info.value) == (
        "<api>:0:0: rules[1].drian: unknown key 'drian' for action 'close' (did you mean 'drain'?)"
    )


def test_error_load_rules_not_a_list() -> None:
    with pytest.raises(
        ProfileError, match=r"^<api>:0:0: rules: expected a list of rules, got a mapping$"
    ):
        load_rules({"action": "reset"}, "backend")


# --- top level -------------------------------------------------------------------------


def test_error_top_level_empty_document() -> None:
    assert one("# nothing here\n") == (
        "p.yaml:1:1: expected a mapping at the top of the profile, got an empty document"
    )


def test_error_top_level_not_a_mapping() -> None:
    assert one("- version: 1\n") == (
        "p.yaml:1:1: expected a mapping at the top of the profile, got a list"
    )


def test_error_top_level_unknown_key_did_you_mean() -> None:
    assert one(HEAD + "sed: 1\n") == "p.yaml:5:1: sed: unknown key 'sed' (did you mean 'seed'?)"


def test_error_top_level_unknown_key_expected() -> None:
    assert one(HEAD + "profile: 1\n") == (
        "p.yaml:5:1: profile: unknown key 'profile' "
        "(expected one of: version, seed, fault_header, listeners, control)"
    )


def test_error_top_level_missing_version() -> None:
    assert one("listeners:\n  - {name: a, bind: '127.0.0.1:0'}\n") == (
        "p.yaml:1:1: missing required key 'version'"
    )


def test_error_top_level_missing_listeners() -> None:
    assert one("version: 1\n") == "p.yaml:1:1: missing required key 'listeners'"


def test_error_version_unsupported() -> None:
    assert one(HEAD.replace("version: 1", "version: 2")) == (
        "p.yaml:1:10: version: unsupported version 2 (supported versions: 1)"
    )


def test_error_version_string() -> None:
    assert one(HEAD.replace("version: 1", "version: '1'")) == (
        "p.yaml:1:10: version: unsupported version '1' (supported versions: 1)"
    )


def test_error_seed_boolean() -> None:
    assert one(HEAD + "seed: true\n") == "p.yaml:5:7: seed: expected an integer, got true"


def test_error_seed_float() -> None:
    assert one(HEAD + "seed: 1.5\n") == "p.yaml:5:7: seed: expected an integer, got 1.5"


def test_error_fault_header_not_a_token() -> None:
    assert one(HEAD + "fault_header: 'x fault'\n") == (
        "p.yaml:5:15: fault_header: expected a header name (an HTTP token), got 'x fault'"
    )


def test_error_control_not_a_mapping() -> None:
    assert one(HEAD + "control: 127.0.0.1:1\n") == (
        "p.yaml:5:10: control: expected a mapping, got '127.0.0.1:1'"
    )


def test_error_control_token_empty() -> None:
    assert one(HEAD + "control: {token: ''}\n") == (
        "p.yaml:5:18: control.token: expected a non-empty string or null, got ''"
    )


def test_error_control_token_not_a_string() -> None:
    assert one(HEAD + "control: {token: 1234}\n") == (
        "p.yaml:5:18: control.token: expected a non-empty string or null, got 1234"
    )


def test_error_listeners_empty() -> None:
    assert one("version: 1\nlisteners: []\n") == (
        "p.yaml:2:12: listeners: expected a list of one or more listeners, got an empty list"
    )


def test_error_listener_not_a_mapping() -> None:
    assert one("version: 1\nlisteners: [backend]\n") == (
        "p.yaml:2:13: listeners[0]: expected a mapping, got 'backend'"
    )


# --- listeners -------------------------------------------------------------------------


def test_error_listener_missing_bind() -> None:
    assert one("version: 1\nlisteners:\n  - name: a\n") == (
        "p.yaml:3:5: listeners[0]: missing required key 'bind'"
    )


def test_error_listener_unknown_key() -> None:
    assert one(listener("acept: open")) == (
        "p.yaml:5:5: listeners[0].acept: unknown key 'acept' (did you mean 'accept'?)"
    )


def test_error_listener_name_pattern() -> None:
    assert one(HEAD.replace("name: a", "name: Backend")) == (
        "p.yaml:3:11: listeners[0].name: "
        "expected a name of lower-case letters, digits, '_' and '-', got 'Backend'"
    )


def test_error_listener_name_not_a_string() -> None:
    assert one(HEAD.replace("name: a", "name: [a]")) == (
        "p.yaml:3:11: listeners[0].name: expected a name of [a-z0-9_-], got a list"
    )


def test_error_listener_name_duplicate() -> None:
    text = HEAD + "  - name: a\n    bind: 127.0.0.1:0\n"
    assert (
        one(text)
        == "p.yaml:5:11: listeners[1].name: duplicate listener name 'a' (also listeners[0])"
    )


def test_error_bind_duplicate() -> None:
    text = (
        "version: 1\nlisteners:\n  - {name: a, bind: '127.0.0.1:80'}\n"
        "  - {name: b, bind: 'localhost:80'}\n"
    )
    assert (
        one(text)
        == "p.yaml:4:21: listeners[1].bind: duplicate bind '127.0.0.1:80' (also listeners[0])"
    )


def test_error_bind_overlaps_wildcard() -> None:
    text = (
        "version: 1\nlisteners:\n  - {name: a, bind: '127.0.0.1:80'}\n"
        "  - {name: b, bind: '0.0.0.0:80'}\n"
    )
    assert one(text) == (
        "p.yaml:4:21: listeners[1].bind: bind '0.0.0.0:80' overlaps '127.0.0.1:80' of listeners[0]"
    )


def test_error_bind_control_duplicate() -> None:
    text = "version: 1\ncontrol: {bind: '[::1]:80'}\nlisteners:\n  - {name: a, bind: '[::1]:80'}\n"
    assert one(text) == "p.yaml:4:21: listeners[0].bind: duplicate bind '[::1]:80' (also control)"


def test_error_bind_not_host_port() -> None:
    assert one(HEAD.replace("127.0.0.1:0", "8080")) == (
        "p.yaml:4:11: listeners[0].bind: "
        "expected host:port such as '127.0.0.1:8080' or '[::1]:8080', got 8080"
    )


def test_error_bind_ipv6_without_brackets() -> None:
    assert one(HEAD.replace("127.0.0.1:0", "'::1:80'")) == (
        "p.yaml:4:11: listeners[0].bind: expected host:port such as '127.0.0.1:8080' or "
        "'[::1]:8080' (an IPv6 host goes in brackets), got '::1:80'"
    )


def test_error_bind_ipv4_in_brackets() -> None:
    assert one(HEAD.replace("127.0.0.1:0", "'[127.0.0.1]:80'")) == (
        "p.yaml:4:11: listeners[0].bind: expected host:port such as '127.0.0.1:8080' or "
        "'[::1]:8080' (brackets go around an IPv6 host only), got '[127.0.0.1]:80'"
    )


def test_error_bind_port_out_of_range() -> None:
    assert one(HEAD.replace("127.0.0.1:0", "127.0.0.1:65536")) == (
        "p.yaml:4:11: listeners[0].bind: expected a port from 0 to 65535, got '65536'"
    )


def test_error_bind_host_name() -> None:
    assert one(HEAD.replace("127.0.0.1:0", "example.com:80")) == (
        "p.yaml:4:11: listeners[0].bind: expected an IP address or 'localhost' as host, "
        "got 'example.com'"
    )


def test_error_accept_unknown() -> None:
    assert one(listener("accept: stal")) == (
        "p.yaml:5:13: listeners[0].accept: "
        "unknown accept mode 'stal' (did you mean 'stall'? expected one of: open, refuse, stall)"
    )


def test_error_accept_not_a_string() -> None:
    assert one(listener("accept: false")) == (
        "p.yaml:5:13: listeners[0].accept: "
        "expected an accept mode (one of: open, refuse, stall), got false"
    )


def test_error_backlog_range() -> None:
    assert one(listener("backlog: 70000")) == (
        "p.yaml:5:14: listeners[0].backlog: expected an integer from 0 to 65535, got 70000"
    )


def test_error_backlog_boolean() -> None:
    assert one(listener("backlog: yes")) == (
        "p.yaml:5:14: listeners[0].backlog: expected an integer from 0 to 65535, got true"
    )


def test_error_max_connections_zero() -> None:
    assert one(listener("max_connections: 0")) == (
        "p.yaml:5:22: listeners[0].max_connections: expected an integer of 1 or more, got 0"
    )


def test_error_response_status_range() -> None:
    assert one(listener("response: {status: 600}")) == (
        "p.yaml:5:24: listeners[0].response.status: expected an integer from 100 to 599, got 600"
    )


def test_error_response_unknown_key() -> None:
    assert one(listener("response: {code: 200}")) == (
        "p.yaml:5:16: listeners[0].response.code: "
        "unknown key 'code' (expected one of: status, headers, body, framing, grpc)"
    )


def test_error_response_headers_not_a_mapping() -> None:
    assert one(listener("response: {headers: [a]}")) == (
        "p.yaml:5:25: listeners[0].response.headers: "
        "expected a mapping of header names to values, got a list"
    )


def test_error_response_header_name() -> None:
    assert one(listener("response: {headers: {'a b': c}}")) == (
        "p.yaml:5:26: listeners[0].response.headers['a b']: "
        "expected a header name (an HTTP token), got 'a b'"
    )


def test_error_response_header_value_type() -> None:
    assert one(listener("response: {headers: {x-a: null}}")) == (
        "p.yaml:5:31: listeners[0].response.headers.x-a: expected a string or a number, got null"
    )


def test_error_response_header_value_newline() -> None:
    assert one(listener('response: {headers: {x-a: "b\\r\\nx-evil: 1"}}')) == (
        "p.yaml:5:31: listeners[0].response.headers.x-a: "
        "expected a header value without CR, LF or NUL characters"
    )


def test_error_response_body_type() -> None:
    assert one(listener("response: {body: 3}")) == (
        "p.yaml:5:22: listeners[0].response.body: expected a string or {size: SIZE}, got 3"
    )


def test_error_response_body_unknown_key() -> None:
    assert problems(listener("response: {body: {bytes: 3}}")) == [
        "p.yaml:5:22: listeners[0].response.body: missing required key 'size'",
        "p.yaml:5:23: listeners[0].response.body.bytes: unknown key 'bytes' (expected "
        "one of: size)",
    ]


def test_error_response_body_missing_size() -> None:
    assert problems(listener("response: {body: {}}")) == [
        "p.yaml:5:22: listeners[0].response.body: missing required key 'size'"
    ]


def test_error_response_body_size_unit() -> None:
    assert one(listener("response: {body: {size: 1 MB/s}}")) == (
        "p.yaml:5:29: listeners[0].response.body.size: "
        "expected a size such as 512, '512B', '4KiB', '1MiB' or '1KB', got '1 MB/s'"
    )


def test_error_response_framing() -> None:
    assert one(listener("response: {framing: chunky}")) == (
        "p.yaml:5:25: listeners[0].response.framing: "
        "unknown framing 'chunky' (did you mean 'chunked'? expected one of: length, chunked, close)"
    )


def test_error_keepalive_max_requests() -> None:
    assert one(listener("keepalive: {max_requests: 1.5}")) == (
        "p.yaml:5:31: listeners[0].keepalive.max_requests: "
        "expected an integer of 1 or more, got 1.5"
    )


def test_error_keepalive_not_a_mapping() -> None:
    assert one(listener("keepalive: 5s")) == (
        "p.yaml:5:16: listeners[0].keepalive: expected a mapping, got '5s'"
    )


def test_error_limits_header_timeout_zero() -> None:
    assert one(listener("limits: {header_timeout: 0s}")) == (
        "p.yaml:5:30: listeners[0].limits.header_timeout: expected a duration above 0, got '0s'"
    )


def test_error_limits_max_header_bytes_zero() -> None:
    assert one(listener("limits: {max_header_bytes: 0}")) == (
        "p.yaml:5:32: listeners[0].limits.max_header_bytes: expected a size above 0, got 0"
    )


# --- units -----------------------------------------------------------------------------


def test_error_duration_unit() -> None:
    assert one(listener("keepalive: {idle_close: 5 sec}")) == (
        "p.yaml:5:29: listeners[0].keepalive.idle_close: "
        "expected a duration such as 1.5, '250ms', '2s', '1m' or '1h', got '5 sec'"
    )


def test_error_duration_negative() -> None:
    assert one(listener("keepalive: {idle_close: -1}")) == (
        "p.yaml:5:29: listeners[0].keepalive.idle_close: expected a duration of 0 or more, got -1"
    )


def test_error_duration_too_long() -> None:
    assert one(listener("keepalive: {idle_close: 9000h}")) == (
        "p.yaml:5:29: listeners[0].keepalive.idle_close: "
        "duration '9000h' is longer than the limit of one year"
    )


def test_error_duration_not_finite() -> None:
    assert one(listener("keepalive: {idle_close: .inf}")) == (
        "p.yaml:5:29: listeners[0].keepalive.idle_close: expected a finite number, got .inf"
    )


def test_error_duration_nan() -> None:
    assert one(listener("keepalive: {idle_close: .nan}")) == (
        "p.yaml:5:29: listeners[0].keepalive.idle_close: expected a finite number, got .nan"
    )


def test_error_duration_huge_integer() -> None:
    assert one(listener(f"keepalive: {{idle_close: {'9' * 30}}}")) == (
        "p.yaml:5:29: listeners[0].keepalive.idle_close: "
        "number too large, got 999999999999999999999999999999"
    )


def test_error_duration_long_string_is_shortened() -> None:
    assert one(listener(f"keepalive: {{idle_close: {'x' * 100}}}")) == (
        "p.yaml:5:29: listeners[0].keepalive.idle_close: expected a duration such as 1.5, "
        "'250ms', '2s', '1m' or '1h', got 'xxxxxxxxxxxxxxxxxxxxxxxxxxxx'... (100 characters)"
    )


def test_error_size_unit() -> None:
    assert one(rule("action: garbage", "bytes: 4 kilobytes")) == (
        "p.yaml:7:16: listeners[0].rules[0].bytes: "
        "expected a size such as 512, '512B', '4KiB', '1MiB' or '1KB', got '4 kilobytes'"
    )


def test_error_size_fraction() -> None:
    assert one(rule("action: garbage", "bytes: 1.5")) == (
        "p.yaml:7:16: listeners[0].rules[0].bytes: expected a whole number of bytes, got 1.5"
    )


def test_error_size_fraction_of_a_unit() -> None:
    assert one(rule("action: garbage", "bytes: 0.5B")) == (
        "p.yaml:7:16: listeners[0].rules[0].bytes: size '0.5B' is not a whole number of bytes"
    )


def test_error_size_too_large() -> None:
    assert one(rule("action: garbage", "bytes: 2GiB")) == (
        "p.yaml:7:16: listeners[0].rules[0].bytes: size '2GiB' is larger than the limit of 1GiB"
    )


def test_error_size_negative() -> None:
    assert one(rule("action: garbage", "bytes: -1")) == (
        "p.yaml:7:16: listeners[0].rules[0].bytes: expected a size of 0 or more, got -1"
    )


def test_error_rate_without_per_second() -> None:
    assert one(rule("action: dribble", "rate: 1KiB")) == (
        "p.yaml:7:15: listeners[0].rules[0].rate: "
        "expected a rate such as '1KiB/s' or '100B/s', got '1KiB'"
    )


def test_error_rate_zero() -> None:
    assert one(rule("action: dribble", "rate: 0B/s")) == (
        "p.yaml:7:15: listeners[0].rules[0].rate: expected a rate above 0, got '0B/s'"
    )


def test_error_comparison() -> None:
    assert one(rule("action: close", "match: {request_on_connection: '~2'}")) == (
        "p.yaml:7:40: listeners[0].rules[0].match.request_on_connection: "
        "expected an int or a comparison such as '>=2', '<3', '==1', got '~2'"
    )


def test_error_comparison_zero() -> None:
    assert one(rule("action: close", "match: {request_on_connection: 0}")) == (
        "p.yaml:7:40: listeners[0].rules[0].match.request_on_connection: "
        "expected a request number of 1 or more, got 0"
    )


# --- distributions ---------------------------------------------------------------------


def test_error_distribution_empty() -> None:
    assert one(rule("action: close", "delay: {}")) == (
        "p.yaml:7:16: listeners[0].rules[0].delay: expected a duration or a distribution "
        "({uniform: [LOW, HIGH]}, {normal: {mean, stddev}} or {lognormal: {median, sigma}}), "
        "got an empty mapping"
    )


def test_error_distribution_two_at_once() -> None:
    assert one(
        rule("action: close", "delay: {uniform: [1s, 2s], normal: {mean: 1s, stddev: 0}}")
    ) == (
        "p.yaml:7:16: listeners[0].rules[0].delay: expected one distribution, got 2: "
        "uniform, normal"
    )


def test_error_distribution_unknown() -> None:
    assert one(rule("action: close", "delay: {unifrom: [1s, 2s]}")) == (
        "p.yaml:7:17: listeners[0].rules[0].delay.unifrom: unknown distribution 'unifrom' "
        "(did you mean 'uniform'? expected one of: uniform, normal, lognormal)"
    )


def test_error_distribution_uniform_not_a_pair() -> None:
    assert one(rule("action: close", "delay: {uniform: [1s]}")) == (
        "p.yaml:7:26: listeners[0].rules[0].delay.uniform: "
        "expected a list of two durations [LOW, HIGH], got a list"
    )


def test_error_distribution_uniform_item() -> None:
    assert one(rule("action: close", "delay: {uniform: [1s, soon]}")) == (
        "p.yaml:7:31: listeners[0].rules[0].delay.uniform[1]: "
        "expected a duration such as 1.5, '250ms', '2s', '1m' or '1h', got 'soon'"
    )


def test_error_distribution_uniform_low_above_high() -> None:
    assert one(rule("action: close", "delay: {uniform: [300ms, 100ms]}")) == (
        "p.yaml:7:26: listeners[0].rules[0].delay.uniform: "
        "expected LOW <= HIGH, got LOW '300ms' > HIGH '100ms'"
    )


def test_error_distribution_normal_stddev() -> None:
    assert one(rule("action: close", "delay: {normal: {mean: 200ms, stddev: -20ms}}")) == (
        "p.yaml:7:47: listeners[0].rules[0].delay.normal.stddev: "
        "expected a duration such as 1.5, '250ms', '2s', '1m' or '1h', got '-20ms'"
    )


def test_error_distribution_normal_missing_stddev() -> None:
    assert one(rule("action: close", "delay: {normal: {mean: 200ms}}")) == (
        "p.yaml:7:25: listeners[0].rules[0].delay.normal: missing required key 'stddev'"
    )


def test_error_distribution_normal_not_a_mapping() -> None:
    assert one(rule("action: close", "delay: {normal: 200ms}")) == (
        "p.yaml:7:25: listeners[0].rules[0].delay.normal: "
        "expected {mean: DURATION, stddev: DURATION}, got '200ms'"
    )


def test_error_distribution_lognormal_sigma() -> None:
    assert one(rule("action: close", "delay: {lognormal: {median: 100ms, sigma: 11}}")) == (
        "p.yaml:7:51: listeners[0].rules[0].delay.lognormal.sigma: "
        "expected a number from 0 to 10, got 11"
    )


def test_error_distribution_lognormal_median_zero() -> None:
    assert one(rule("action: close", "delay: {lognormal: {median: 0, sigma: 1}}")) == (
        "p.yaml:7:37: listeners[0].rules[0].delay.lognormal.median: "
        "expected a duration above 0, got 0"
    )


def test_error_distribution_lognormal_unknown_key() -> None:
    assert one(rule("action: close", "delay: {lognormal: {median: 1s, sigma: 1, mean: 1s}}")) == (
        "p.yaml:7:51: listeners[0].rules[0].delay.lognormal.mean: "
        "unknown key 'mean' (did you mean 'median'?)"
    )


def test_error_plain_duration_not_a_distribution() -> None:
    assert one(rule("action: close", "drain: {uniform: [1s, 2s]}")) == (
        "p.yaml:7:16: listeners[0].rules[0].drain: "
        "expected a plain duration such as '2s' here, not a mapping"
    )


# --- rules -----------------------------------------------------------------------------


def test_error_rules_not_a_list() -> None:
    assert one(listener("rules: {action: close}")) == (
        "p.yaml:5:12: listeners[0].rules: expected a list of rules, got a mapping"
    )


def test_error_rule_not_a_mapping() -> None:
    assert one(listener("rules: [close]")) == (
        "p.yaml:5:13: listeners[0].rules[0]: expected a rule (a mapping with an action), "
        "got 'close'"
    )


def test_error_rule_missing_action() -> None:
    assert (
        one(rule("name: x")) == "p.yaml:6:9: listeners[0].rules[0]: missing required key 'action'"
    )


def test_error_rule_unknown_action() -> None:
    assert one(rule("action: fin")) == (
        "p.yaml:6:17: listeners[0].rules[0].action: unknown action 'fin' "
        "(expected one of: respond, close, reset, hang, partial, dribble, garbage, delay, "
        "goaway, rst_stream, forward)"
    )


def test_error_rule_action_not_a_string() -> None:
    assert one(rule("action: [close]")) == (
        "p.yaml:6:17: listeners[0].rules[0].action: expected an action "
        "(one of: respond, close, reset, hang, partial, dribble, garbage, delay, "
        "goaway, rst_stream, forward), "
        "got a list"
    )


def test_error_rule_unknown_key_without_action() -> None:
    # with no valid action, any action's key is allowed, and the rest are unknown
    assert problems(rule("action: fin", "tims: 1", "bytes: 1")) == [
        "p.yaml:6:17: listeners[0].rules[0].action: unknown action 'fin' "
        "(expected one of: respond, close, reset, hang, partial, dribble, garbage, delay, goaway, "
        "rst_stream, forward)",
        "p.yaml:7:9: listeners[0].rules[0].tims: unknown key 'tims' (did you mean 'times'?)",
    ]


def test_error_rule_key_did_you_mean() -> None:
    assert one(rule("action: close", "drian: 1s")) == (
        "p.yaml:7:9: listeners[0].rules[0].drian: "
        "unknown key 'drian' for action 'close' (did you mean 'drain'?)"
    )


def test_error_rule_key_of_another_action() -> None:
    assert one(rule("action: close", "bytes: 10")) == (
        "p.yaml:7:9: listeners[0].rules[0].bytes: key 'bytes' does not apply to action 'close' "
        "(it belongs to partial, garbage; close takes: drain, close_notify)"
    )


def test_error_rule_key_of_another_action_for_reset() -> None:
    assert one(rule("action: reset", "drain: 1s")) == (
        "p.yaml:7:9: listeners[0].rules[0].drain: key 'drain' does not apply to action 'reset' "
        "(it belongs to close; reset takes no keys of its own)"
    )


def test_error_rule_key_unknown() -> None:
    assert one(rule("action: close", "color: red")) == (
        "p.yaml:7:9: listeners[0].rules[0].color: unknown key 'color' for action 'close' "
        "(expected one of: name, at, match, probability, times, delay, action, drain, close_notify)"
    )


def test_error_rule_name_not_a_string() -> None:
    assert one(rule("name: 5", "action: reset")) == (
        "p.yaml:6:15: listeners[0].rules[0].name: expected a rule name (a string), got 5"
    )


def test_error_rule_name_empty() -> None:
    assert one(rule("name: ''", "action: reset")) == (
        "p.yaml:6:15: listeners[0].rules[0].name: "
        "expected a non-empty rule name without control characters, got ''"
    )


def test_error_rule_name_duplicate() -> None:
    text = HEAD + "    rules:\n      - {name: x, action: reset}\n      - {name: x, action: close}\n"
    assert one(text) == (
        "p.yaml:7:16: listeners[0].rules[1].name: duplicate rule name 'x' (also "
        "listeners[0].rules[0])"
    )


def test_error_rule_name_duplicate_of_a_default_name() -> None:
    text = HEAD + "    rules:\n      - {action: reset}\n      - {name: rule-0, action: close}\n"
    assert one(text) == (
        "p.yaml:7:16: listeners[0].rules[1].name: "
        "duplicate rule name 'rule-0' (also listeners[0].rules[0])"
    )


def test_error_rule_at_unknown() -> None:
    assert one(rule("at: accept", "action: reset")) == (
        "p.yaml:6:13: listeners[0].rules[0].at: unknown 'at' value 'accept' "
        "(expected one of: request, connect, handshake)"
    )


def test_error_rule_at_not_a_string() -> None:
    assert one(rule("at: 1", "action: reset")) == (
        "p.yaml:6:13: listeners[0].rules[0].at: "
        "expected an 'at' value (one of: request, connect, handshake), got 1"
    )


def test_error_rule_probability_range() -> None:
    assert one(rule("action: reset", "probability: 1.5")) == (
        "p.yaml:7:22: listeners[0].rules[0].probability: expected a number from 0 to 1, got 1.5"
    )


def test_error_rule_probability_nan() -> None:
    assert one(rule("action: reset", "probability: .nan")) == (
        "p.yaml:7:22: listeners[0].rules[0].probability: expected a number from 0 to 1, got .nan"
    )


def test_error_rule_probability_string() -> None:
    assert one(rule("action: reset", "probability: 50%")) == (
        "p.yaml:7:22: listeners[0].rules[0].probability: expected a number from 0 to 1, got '50%'"
    )


def test_error_rule_times_zero() -> None:
    assert one(rule("action: reset", "times: 0")) == (
        "p.yaml:7:16: listeners[0].rules[0].times: expected an integer of 1 or more, got 0"
    )


def test_error_rule_times_boolean() -> None:
    assert one(rule("action: reset", "times: true")) == (
        "p.yaml:7:16: listeners[0].rules[0].times: expected an integer of 1 or more, got true"
    )


def test_error_rule_respond_status() -> None:
    assert one(rule("action: respond", "status: 99")) == (
        "p.yaml:7:17: listeners[0].rules[0].status: expected an integer from 100 to 599, got 99"
    )


def test_error_rule_partial_missing_bytes() -> None:
    assert one(rule("action: partial")) == (
        "p.yaml:6:17: listeners[0].rules[0]: missing required key 'bytes' for action 'partial'"
    )


def test_error_rule_partial_then() -> None:
    assert one(rule("action: partial", "bytes: 1", "then: rst")) == (
        "p.yaml:8:15: listeners[0].rules[0].then: unknown 'then' action 'rst' "
        "(did you mean 'reset'? expected one of: close, reset, hang)"
    )


def test_error_rule_partial_then_not_a_string() -> None:
    assert one(rule("action: partial", "bytes: 1", "then: null")) == (
        "p.yaml:8:15: listeners[0].rules[0].then: "
        "expected a 'then' action (one of: close, reset, hang), got null"
    )


def test_error_rule_dribble_needs_interval_or_rate() -> None:
    assert one(rule("action: dribble", "chunk: 1")) == (
        "p.yaml:6:17: listeners[0].rules[0]: "
        "action 'dribble' needs 'interval' (with an optional 'chunk') or 'rate'"
    )


def test_error_rule_dribble_interval_and_rate() -> None:
    assert one(rule("action: dribble", "interval: 1s", "rate: 1B/s")) == (
        "p.yaml:8:15: listeners[0].rules[0].rate: "
        "action 'dribble' takes 'interval' or 'rate', not both"
    )


def test_error_rule_dribble_chunk_zero() -> None:
    assert one(rule("action: dribble", "interval: 1s", "chunk: 0B")) == (
        "p.yaml:8:16: listeners[0].rules[0].chunk: expected a size above 0, got '0B'"
    )


def test_error_rule_connect_action() -> None:
    assert one(rule("at: connect", "action: partial", "bytes: 1")) == (
        "p.yaml:7:17: listeners[0].rules[0].action: action 'partial' cannot run at: connect, "
        "where no request has been read (expected one of: close, reset, hang, garbage, delay)"
    )


def test_error_rule_connect_match() -> None:
    assert one(rule("at: connect", "action: close", "match: {path: /x}")) == (
        "p.yaml:8:17: listeners[0].rules[0].match.path: "
        "cannot match on path at: connect, where no request has been read"
    )


def test_error_rule_connect_match_request_on_connection() -> None:
    assert one(rule("at: connect", "action: reset", "match: {request_on_connection: 1}")) == (
        "p.yaml:8:17: listeners[0].rules[0].match.request_on_connection: "
        "cannot match on request_on_connection at: connect, where no request has been read"
    )


# --- match -----------------------------------------------------------------------------


def test_error_match_unknown_key() -> None:
    assert one(rule("action: close", "match: {methods: GET}")) == (
        "p.yaml:7:17: listeners[0].rules[0].match.methods: "
        "unknown key 'methods' (did you mean 'method'?)"
    )


def test_error_match_method_empty_list() -> None:
    assert one(rule("action: close", "match: {method: []}")) == (
        "p.yaml:7:25: listeners[0].rules[0].match.method: "
        "expected a method or a non-empty list of methods, got an empty list"
    )


def test_error_match_method_not_a_token() -> None:
    assert one(rule("action: close", "match: {method: [GET, 'P O']}")) == (
        "p.yaml:7:31: listeners[0].rules[0].match.method[1]: "
        "expected an HTTP method such as 'GET', got 'P O'"
    )


def test_error_match_path_not_a_string() -> None:
    assert one(rule("action: close", "match: {path: 3}")) == (
        "p.yaml:7:23: listeners[0].rules[0].match.path: "
        "expected a glob such as '/api/*' or {regex: ...}, got 3"
    )


def test_error_match_path_regex_invalid() -> None:
    assert one(rule("action: close", "match: {path: {regex: '(a'}}")) == (
        "p.yaml:7:31: listeners[0].rules[0].match.path.regex: "
        "invalid regex: missing ), unterminated subpattern at position 0"
    )


def test_error_match_path_regex_not_a_string() -> None:
    assert one(rule("action: close", "match: {path: {regex: [a]}}")) == (
        "p.yaml:7:31: listeners[0].rules[0].match.path.regex: "
        "expected a regular expression (a string), got a list"
    )


def test_error_match_path_mapping_without_regex() -> None:
    assert problems(rule("action: close", "match: {path: {}}")) == [
        "p.yaml:7:23: listeners[0].rules[0].match.path: missing required key 'regex'"
    ]


def test_error_match_headers_not_a_mapping() -> None:
    assert one(rule("action: close", "match: {headers: x-a}")) == (
        "p.yaml:7:26: listeners[0].rules[0].match.headers: "
        "expected a mapping of header names to globs, got 'x-a'"
    )


def test_error_match_headers_duplicate_in_another_case() -> None:
    assert one(rule("action: close", "match: {headers: {X-A: 1, x-a: 2}}")) == (
        "p.yaml:7:35: listeners[0].rules[0].match.headers.x-a: "
        "duplicate header 'x-a' (header names ignore case)"
    )


# --- schedule --------------------------------------------------------------------------


def test_error_schedule_missing_phases() -> None:
    assert one(listener("schedule: {repeat: true}")) == (
        "p.yaml:5:15: listeners[0].schedule: missing required key 'phases'"
    )


def test_error_schedule_phases_empty() -> None:
    assert one(listener("schedule: {phases: []}")) == (
        "p.yaml:5:24: listeners[0].schedule.phases: "
        "expected a list of one or more phases, got an empty list"
    )


def test_error_schedule_repeat() -> None:
    assert one(listener("schedule: {repeat: 2, phases: [{duration: 1s}]}")) == (
        "p.yaml:5:24: listeners[0].schedule.repeat: expected true or false, got 2"
    )


def test_error_phase_missing_duration() -> None:
    assert one(listener("schedule: {phases: [{accept: refuse}]}")) == (
        "p.yaml:5:25: listeners[0].schedule.phases[0]: missing required key 'duration'"
    )


def test_error_phase_duration_zero() -> None:
    assert one(listener("schedule: {phases: [{duration: 0}]}")) == (
        "p.yaml:5:36: listeners[0].schedule.phases[0].duration: expected a duration above 0, got 0"
    )


def test_error_phase_duration_distribution() -> None:
    assert one(listener("schedule: {phases: [{duration: {uniform: [1s, 2s]}}]}")) == (
        "p.yaml:5:36: listeners[0].schedule.phases[0].duration: "
        "expected a plain duration such as '2s' here, not a mapping"
    )


def test_error_phase_unknown_key() -> None:
    assert one(listener("schedule: {phases: [{duration: 1s, acept: stall}]}")) == (
        "p.yaml:5:40: listeners[0].schedule.phases[0].acept: "
        "unknown key 'acept' (did you mean 'accept'?)"
    )


def test_error_phase_rule_path() -> None:
    assert one(listener("schedule: {phases: [{duration: 1s, rules: [{action: clse}]}]}")) == (
        "p.yaml:5:57: listeners[0].schedule.phases[0].rules[0].action: unknown action 'clse' "
        "(did you mean 'close'? expected one of: respond, close, reset, hang, partial, dribble, "
        "garbage, delay, goaway, rst_stream, forward)"
    )


# --- every problem, in file order --------------------------------------------------------


def test_error_every_problem_is_reported_in_file_order() -> None:
    text = (
        "listeners:\n"
        "  - name: B\n"
        "    bind: nowhere\n"
        "    rules: [{action: close, drian: 1}]\n"
        "version: 3\n"
        "seed: x\n"
    )
    assert problems(text) == [
        "p.yaml:2:11: listeners[0].name: "
        "expected a name of lower-case letters, digits, '_' and '-', got 'B'",
        "p.yaml:3:11: listeners[0].bind: "
        "expected host:port such as '127.0.0.1:8080' or '[::1]:8080', got 'nowhere'",
        "p.yaml:4:29: listeners[0].rules[0].drian: "
        "unknown key 'drian' for action 'close' (did you mean 'drain'?)",
        "p.yaml:5:10: version: unsupported version 3 (supported versions: 1)",
        "p.yaml:6:7: seed: expected an integer, got 'x'",
    ]


def test_error_x_keys_are_ignored_but_header_names_are_not() -> None:
    text = listener("x-anything: {at: all}", "response: {headers: {x-a: [1]}}")
    assert one(text) == (
        "p.yaml:6:31: listeners[0].response.headers.x-a: expected a string or a number, got a list"
    )


def test_error_yaml_explicit_tag_with_a_bad_value() -> None:
    assert one(listener("backlog: !!int ten")) == (
        "p.yaml:5:14: listeners[0].backlog: expected a value of !!int, got 'ten'"
    )


def test_error_columns_count_characters_not_bytes() -> None:
    text = "version: 1\nlisteners: [{name: a, bind: '127.0.0.1:0', x-é: 'éé😀', backlog: x}]\n"
    assert one(text) == (
        "p.yaml:2:65: listeners[0].backlog: expected an integer from 0 to 65535, got 'x'"
    )
