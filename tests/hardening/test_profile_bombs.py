"""Profiles as hostile input: YAML bombs through `faultserver validate`, `run` and `PUT /profile`.

Each bomb ends in exit status 2 and one line per problem in the form
`FILE:LINE:COLUMN: [PATH: ]message`, quickly and never with a traceback. (The hypothesis fuzz
of the loader is tests/unit/test_profile_fuzz.py; these are the named, worst-case inputs.)
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.support.cli import run_cli, serve_cli

#: Generous: each of these takes about 0.2 s here.
QUICK_S = 5.0
PROBLEM_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<column>\d+): (?P<message>.+)$")


def _billion_laughs() -> str:
    """Ten levels of nine aliases each: 9**10 (3.5 billion) strings once expanded."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    lines.append("version: 1")
    lines.append("listeners: *a9")
    return "\n".join(lines) + "\n"


def _big_number_profile() -> str:
    huge = "1" + "0" * 400  # 10**400
    return (
        "version: 1\n"
        "listeners:\n"
        "  - name: backend\n"
        f"    bind: 127.0.0.1:{huge}\n"
        f"    backlog: {huge}\n"
        f"    max_connections: {huge}\n"
        "    rules:\n"
        "      - action: close\n"
        f"        times: {huge}\n"
        "        probability: 1e400\n"
        "      - action: hang\n"
        "        for: 1e400s\n"
    )


BOMBS: dict[str, tuple[bytes, list[str]]] = {
    "billion-laughs": (
        _billion_laughs().encode(),
        ["profile has more than 100000 values (each use of an alias counts again)"],
    ),
    "nesting-10000-flow": (
        b"version: 1\nlisteners: " + b"[" * 10_000 + b"]" * 10_000 + b"\n",
        [],  # PyYAML's own flow-depth check or ours, located; any one-line message
    ),
    "nesting-10000-block": (
        b"version: 1\nlisteners:\n" + b"- " * 10_000 + b"1\n",
        ["nesting deeper than 100 levels"],
    ),
    "nesting-10000-mappings": (
        b"version: 1\nx-deep: " + b"{a: " * 10_000 + b"1" + b"}" * 10_000 + b"\n",
        ["nesting deeper than 100 levels"],
    ),
    "numbers-10-to-the-400": (
        _big_number_profile().encode(),
        [
            "listeners[0].bind: expected a port from 0 to 65535, "
            "got '1000000000000000000000000000'... (401 characters)",
            "listeners[0].backlog: expected an integer from 0 to 65535, "
            "got 1000000000000000000000000000...000000",
            "listeners[0].rules[0].probability: expected a number from 0 to 1, got '1e400'",
            "listeners[0].rules[1].for: expected a duration such as 1.5, '250ms', '2s', '1m' or '1h', "
            "got '1e400s'",
        ],
    ),
    "integer-of-5000-digits": (  # past Python's int-from-string limit of 4300 digits
        b"version: 1\nseed: 1" + b"0" * 5000 + b"\nlisteners:\n  - name: b\n    bind: 127.0.0.1:0\n",
        ["seed: number too large, got 1000000000000000000000000000...000000"],
    ),
    "non-utf8-bytes": (
        b"version: 1\nlisteners:\n  - name: \xff\xfe\x80\n    bind: 127.0.0.1:0\n",
        ["expected UTF-8 text, got byte 0xff (invalid start byte)"],
    ),
    "utf16-file": (
        "version: 1\nlisteners: []\n".encode("utf-16"),
        ["expected UTF-8 text, got byte 0xff (invalid start byte)"],
    ),
    "nul-bytes": (
        b"version: 1\x00\nlisteners:\x00\x00\n",
        ["invalid YAML: character U+0000 is not allowed"],
    ),
    "python-object-tag": (
        b"version: 1\nlisteners:\n  - name: b\n    bind: 127.0.0.1:0\n"
        b"    response: !!python/object/apply:os.system ['touch pwned']\n",
        ["listeners[0].response: unsupported tag '!!python/object/apply:os.system'"],
    ),
}


def _check_problem_lines(out: str, source: str, messages: list[str]) -> None:
    lines = out.splitlines()
    assert lines, "no problem reported"
    for line in lines:
        match = PROBLEM_LINE.match(line)
        assert match, f"not a FILE:LINE:COLUMN: problem line: {line!r}"
        assert match["file"] == source
        assert len(line) < 300, line  # long values are shortened, never dumped
    for message in messages:
        assert any(line.endswith(": " + message) for line in lines), (message, lines)


@pytest.mark.parametrize("data, messages", list(BOMBS.values()), ids=list(BOMBS))
def test_profile_bomb_validate_exits_2_with_problem_lines(tmp_path, data, messages):
    path = tmp_path / "bomb.yaml"
    path.write_bytes(data)
    done, took = run_cli("validate", str(path), cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert took < QUICK_S
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr == ""
    _check_problem_lines(done.stdout, str(path), messages)
    assert not (tmp_path / "pwned").exists()


def test_profile_bomb_50mb_file_is_refused_unread(tmp_path):
    path = tmp_path / "big.yaml"
    with open(path, "wb") as f:
        f.write(b"version: 1\nlisteners: []\n# ")
        f.truncate(50 * 1024 * 1024)  # 50 MB, mostly NUL bytes
    done, took = run_cli("validate", str(path))
    assert done.returncode == 2
    assert took < QUICK_S
    assert done.stdout == f"{path}:1:1: profile is larger than the limit of 1MiB\n"
    assert done.stderr == ""


def test_profile_bomb_run_exits_2_without_traceback(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_billion_laughs())
    done, took = run_cli("run", str(path))
    assert done.returncode == 2
    assert took < QUICK_S
    assert done.stdout == ""
    assert re.fullmatch(
        re.escape(str(path))
        + r":\d+:\d+: profile has more than 100000 values \(each use of an alias counts again\)\n",
        done.stderr,
    ), done.stderr


def test_profile_bomb_validate_reports_each_file(tmp_path):
    """Several bombs at once: each file's problems, every one exit status 2 overall."""
    paths = []
    for name, (data, _) in BOMBS.items():
        path = tmp_path / f"{name}.yaml"
        path.write_bytes(data)
        paths.append(str(path))
    good = tmp_path / "good.yaml"
    good.write_text("version: 1\nlisteners:\n  - name: b\n    bind: 127.0.0.1:0\n")
    done, took = run_cli("validate", *paths, str(good))
    assert done.returncode == 2
    assert took < QUICK_S * 2
    assert "Traceback" not in done.stdout + done.stderr
    reported = {PROBLEM_LINE.match(line)["file"] for line in done.stdout.splitlines()[:-1]}
    assert reported == set(paths)
    assert done.stdout.splitlines()[-1] == f"{good}: ok"


@pytest.fixture(scope="module")
def bombed(tmp_path_factory):
    """One server for every bomb (each must leave it unchanged); at the end it must stop with
    status 0 and no traceback in its log."""
    yield from serve_cli(
        tmp_path_factory.mktemp("bombs"), "version: 1\nlisteners:\n  - name: backend\n    bind: 127.0.0.1:0\n"
    )


@pytest.mark.parametrize(
    "name", ["billion-laughs", "nesting-10000-flow", "numbers-10-to-the-400", "non-utf8-bytes"]
)
def test_profile_bomb_put_profile_is_400_and_server_unchanged(bombed, name):
    data, _ = BOMBS[name]
    with httpx.Client(base_url=bombed.control_url, timeout=10) as admin:
        before = admin.get("/profile").json()
        r = admin.put("/profile", content=data, headers={"content-type": "application/yaml"})
        assert r.status_code == 400
        assert r.headers["content-type"] == "application/json"
        body = r.json()
        assert isinstance(body["error"], str) and body["error"]
        assert admin.get("/profile").json() == before
        assert admin.get("/healthz").status_code == 200
    assert "Traceback" not in bombed.log()
    assert not Path("pwned").exists()
