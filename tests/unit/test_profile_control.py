"""The `control` section: the admin API's bind, token, allowed hosts and reader cap."""

from __future__ import annotations

import pytest

from faultserver import ProfileError
from faultserver._profile.load import load_profile_text
from faultserver._profile.model import Control

HEAD = "version: 1\nlisteners: [{name: a, bind: '127.0.0.1:0'}]\n"


def problems(text: str) -> list[str]:
    with pytest.raises(ProfileError) as info:
        load_profile_text(HEAD + text, source="p.yaml")
    return [str(p) for p in info.value.problems]


def test_control_allowed_hosts_are_names_and_addresses_normalised():
    text = "control: {allowed_hosts: [FaultServer.Internal., '::1', 10.0.0.7], max_subscribers: 5}\n"
    assert load_profile_text(HEAD + text).control == Control(
        allowed_hosts=("faultserver.internal", "::1", "10.0.0.7"), max_subscribers=5
    )


def test_control_defaults_allow_no_more_hosts_and_the_servers_reader_cap():
    assert load_profile_text(HEAD).control == Control(allowed_hosts=(), max_subscribers=None)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "control: {allowed_hosts: ['http://x:1']}",
            "p.yaml:3:27: control.allowed_hosts[0]: expected a host name such as "
            "'faultserver.internal' (no scheme, no port), got 'http://x:1'",
        ),
        (
            'control: {allowed_hosts: ["a.b\\n"]}',  # a real newline: YAML reads "\\n"
            "p.yaml:3:27: control.allowed_hosts[0]: expected a host name such as "
            "'faultserver.internal' (no scheme, no port), got 'a.b\\n'",
        ),
        (
            "control: {allowed_hosts: x}",
            "p.yaml:3:26: control.allowed_hosts: expected a list of host names, got 'x'",
        ),
        (
            "control: {max_subscribers: 0}",
            "p.yaml:3:28: control.max_subscribers: expected an integer from 1 to 10000, got 0",
        ),
    ],
)
def test_control_bad_values_are_located_problems(text, problem):
    assert problems(text + "\n") == [problem]
