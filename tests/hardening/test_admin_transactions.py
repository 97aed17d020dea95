"""Putting a profile in force is one transaction, one at a time (issue 19 item 9, the admin side).

A `PUT /profile` that fails changes nothing, and every later request works as before; two
`PUT /profile` at once are applied one after the other, each answered 200 (or 409), never 500.
"""

from __future__ import annotations

import socket
import threading

import pytest

from tests.support.cli import start_cli

PROFILE = "version: 1\nseed: 7\nlisteners:\n  - name: backend\n    bind: 127.0.0.1:0\n"
YAML = {"content-type": "application/yaml"}


@pytest.fixture
def srv(tmp_path):
    server = start_cli(tmp_path, PROFILE)
    yield server
    server.kill()


def assert_everything_still_works(api) -> None:
    assert api.post("/reset").status_code == 200
    assert api.put("/profile", content=PROFILE.encode(), headers=YAML).status_code == 200
    assert api.patch("/listeners/backend", json={"accept": "refuse"}).status_code == 200
    assert api.patch("/listeners/backend", json={"accept": "open"}).status_code == 200
    assert api.get("/profile").status_code == 200


def test_admin_put_profile_that_cannot_be_built_changes_nothing(srv):
    """A seed that validates but that the server cannot use: the old profile stays in force."""
    huge_seed = "0x" + "f" * 4000
    with srv.client() as api:
        before = api.get("/profile").json()
        body = PROFILE.replace("seed: 7", f"seed: {huge_seed}")
        r = api.put("/profile", content=body.encode(), headers=YAML)
        assert r.status_code in (400, 409), r.text  # 400 once the loader bounds seeds, 409 until then
        assert r.headers["content-type"] == "application/json"
        assert api.get("/profile").json() == before
        assert_everything_still_works(api)
    assert "Traceback" not in srv.log()


def test_admin_put_profile_whose_second_bind_fails_changes_nothing(srv):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    first_port = free.getsockname()[1]
    free.close()
    body = (
        PROFILE + f"  - name: first\n    bind: 127.0.0.1:{first_port}\n"
        f"  - name: second\n    bind: 127.0.0.1:{port}\n"
    )
    try:
        with srv.client() as api:
            r = api.put("/profile", content=body.encode(), headers=YAML)
            assert (r.status_code, r.json()) == (
                409, {"error": f"listener second: cannot bind 127.0.0.1:{port}: Address already in use"}
            )
            assert [entry["name"] for entry in api.get("/listeners").json()["listeners"]] == ["backend"]
            # the first one was bound, then closed again: its port is free
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", first_port))
            assert_everything_still_works(api)
    finally:
        taken.close()


def test_admin_concurrent_put_profile_are_applied_one_at_a_time(srv):
    profiles = [
        PROFILE + "  - name: a\n    bind: 127.0.0.1:0\n    accept: stall\n",
        PROFILE.replace("backend", "other") + "  - name: b\n    bind: 127.0.0.1:0\n    accept: refuse\n",
    ]
    statuses: list[int] = []
    errors: list[BaseException] = []

    def put(body: str) -> None:
        try:
            with srv.client(timeout=30) as api:
                for _ in range(5):
                    statuses.append(api.put("/profile", content=body.encode(), headers=YAML).status_code)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(body,)) for body in profiles for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(statuses) == 20 and set(statuses) <= {200, 409}, statuses
    with srv.client() as api:
        names = sorted(entry["name"] for entry in api.get("/listeners").json()["listeners"])
        assert names in (["a", "backend"], ["b", "other"])  # one profile, whole
        assert_everything_still_works(api)
    assert "Traceback" not in srv.log()
