"""Shipped profiles by name (`_shipped.py`): which names there are, what a name resolves to,
that a path that exists wins, and the one-line error for a name that names nothing."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest

from faultserver import ProfileError, UsageError
from faultserver._shipped import (
    find_shipped,
    is_name,
    load_cli_profile,
    resolve_profile,
    shipped_names,
    shipped_summary,
)

REPO_PROFILES = Path(__file__).resolve().parents[2] / "profiles"
NAMES = sorted(p.stem for p in REPO_PROFILES.glob("*.yaml"))


def test_shipped_names_are_the_repository_profiles():
    assert "fin" in NAMES and "fin-rst" in NAMES
    assert shipped_names() == NAMES


def test_find_shipped_gives_the_file_of_a_name():
    assert Path(find_shipped("fin")).read_text() == (REPO_PROFILES / "fin.yaml").read_text()
    assert find_shipped("nope") is None
    assert find_shipped("fin.yaml") is None  # a path, not a name
    assert find_shipped("../profiles/fin") is None


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("fin", True),
        ("connect-timeout", True),
        ("fin.yaml", False),
        ("./fin", False),
        ("", False),
        ("-", False),
    ],
)
def test_is_name(text, name):
    assert is_name(text) is name


def test_resolve_profile_a_path_that_exists_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_profile("fin") == find_shipped("fin")
    (tmp_path / "fin").write_text("version: 1\n")
    assert resolve_profile("fin") == "fin"
    # a path that does not exist is left to the loader, which names the missing file
    assert resolve_profile("missing.yaml") == "missing.yaml"


def test_resolve_profile_unknown_name_is_one_line_naming_the_shipped_profiles(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expected = (
        f"profile not found: fni (relative to {tmp_path}): not a file, nor a shipped profile "
        f"(did you mean 'fin'? shipped profiles: {', '.join(NAMES)})"
    )
    with pytest.raises(UsageError, match=f"^{re.escape(expected)}$"):
        resolve_profile("fni")


def test_shipped_summary_is_the_first_sentence_of_the_opening_comment():
    assert shipped_summary("fin") == 'D504CO "Connection is closed".'
    for name in NAMES:
        summary = shipped_summary(name)
        assert summary and "\n" not in summary and not summary.startswith(f"{name}.yaml")


def test_load_cli_profile_reads_standard_input_once():
    profile = load_cli_profile("-", io.BytesIO(b"version: 1\nlisteners: [{name: b, bind: '127.0.0.1:0'}]\n"))
    assert [listener.name for listener in profile.listeners] == ["b"]


def test_load_cli_profile_problems_on_standard_input_say_stdin():
    with pytest.raises(ProfileError) as caught:
        load_cli_profile("-", io.BytesIO(b"version: 1\nlisteners:\n  - name: b\n    bind: nowhere\n"))
    assert [str(p).split(": ")[0] for p in caught.value.problems] == ["<stdin>:4:11"]
    with pytest.raises(ProfileError, match=r"^<stdin>:2:1: expected UTF-8 text, got byte 0xff"):
        load_cli_profile("-", io.BytesIO(b"version: 1\n\xff\n"))


def test_setup_maps_the_data_package_onto_profiles():
    # the wheel carries profiles/ as faultserver/profiles (checked by building one: see
    # tests/cli/test_cli_profiles.py::test_wheel_carries_the_shipped_profiles)
    setup = (REPO_PROFILES.parent / "setup.py").read_text()
    assert '"faultserver.profiles"' in setup and '{"faultserver.profiles": "profiles"}' in setup
    assert os.path.isdir(REPO_PROFILES)
