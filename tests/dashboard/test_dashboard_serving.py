"""How the dashboard's files are served and shipped, without a browser: the guard lets the
page (and only the page) through without a token, the files come from the installed package
through importlib.resources, and a wheel carries them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from fnmatch import fnmatch
from importlib import resources
from pathlib import Path

import httpx
import pytest

from faultserver._admin.guard import RequestGuard, RequestHead
from faultserver._admin.pages import ASSETS, CSP, PATHS, asset

REPO = Path(__file__).resolve().parents[2]
TOKEN = "page-token"
LOCAL = ("127.0.0.1", 8474)
HOST = "127.0.0.1:8474"


def head(method: str, path: str, **headers: str) -> RequestHead:
    return RequestHead(method, path, {"host": HOST, **headers}, LOCAL)


def status(guard: RequestGuard, h: RequestHead) -> int:
    refusal = guard.check(h)
    return 200 if refusal is None else refusal.status


def test_guard_lets_the_pages_through_without_a_token_but_checks_host_and_origin():
    guard = RequestGuard(TOKEN, (), "http", PATHS)
    for path in sorted(PATHS):
        assert status(guard, head("GET", path)) == 200
        assert status(guard, head("HEAD", path)) == 200
        assert status(guard, RequestHead("GET", path, {"host": "attacker.example:8474"}, LOCAL)) == 403
        assert status(guard, head("GET", path, origin="http://attacker.example:8474")) == 403
        assert status(guard, head("GET", path, origin="http://127.0.0.1:8474")) == 200
        assert status(guard, head("POST", path)) == 401  # only reads pass
    for path in ("/listeners", "/events/stream", "/state", "/dashboard/", "/index.html"):
        assert status(guard, head("GET", path)) == 401
    # without `pages`, the guard is as before: every path but the probes needs the token
    assert status(RequestGuard(TOKEN), head("GET", "/")) == 401


def test_dashboard_files_are_served_with_their_type_and_policy(faultserver):
    profile = {"version": 1, "listeners": [{"name": "b", "bind": "127.0.0.1:0"}]}
    srv = faultserver(profile, admin=True, token=TOKEN)
    with httpx.Client(base_url=srv.control_url, timeout=5.0) as api:
        for path, (name, content_type) in ASSETS.items():
            got = api.get(path)
            assert got.status_code == 200, path
            assert got.headers["content-type"] == content_type
            assert got.headers["content-security-policy"] == CSP
            assert got.headers["x-content-type-options"] == "nosniff"
            assert got.headers["x-frame-options"] == "DENY"
            assert got.content == asset(name)
            assert api.head(path).status_code == 200
        # the API itself still needs the token; no other file is served
        assert api.get("/listeners").status_code == 401
        assert api.get("/dashboard/nope.js").status_code == 401
        authed = {"authorization": f"Bearer {TOKEN}"}
        for path in ("/dashboard/nope.js", "/dashboard/", "/index.html", "/dashboard/../pyproject.toml"):
            assert api.get(path, headers=authed).status_code == 404, path
        refused = api.get("/", headers={"host": "attacker.example"})
        assert refused.status_code == 403


def test_dashboard_files_are_all_shipped_and_found_through_importlib_resources():
    folder = resources.files("faultserver._admin").joinpath("dashboard")
    on_disk = sorted(entry.name for entry in folder.iterdir() if entry.is_file())
    assert on_disk == sorted(name for name, _ in ASSETS.values())
    for name in on_disk:
        assert asset(name) == folder.joinpath(name).read_bytes() and asset(name)
    # and pyproject's package-data names each of them (a non-editable install has them)
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    globs = data["faultserver._admin.dashboard"]
    for name in on_disk:
        assert any(fnmatch(name, pattern) for pattern in globs), name


@pytest.mark.slow
def test_wheel_carries_the_dashboard_and_serves_it_from_there(tmp_path):
    # built from a copy: pip builds in the source tree, and leaves build/ there
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("faultserver", "profiles"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        capture_output=True, text=True, timeout=600,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("faultserver-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n for n in names if n.startswith("faultserver/_admin/dashboard/"))
    assert shipped == sorted(f"faultserver/_admin/dashboard/{name}" for name, _ in ASSETS.values())
    # unpacked and put first on the path, it is the wheel's faultserver that serves the page
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(wheel).extractall(unpacked)
    script = (
        "import faultserver._admin.pages as p, json;"
        "print(json.dumps([p.__file__, {n: len(p.asset(n)) for n, _ in p.ASSETS.values()}]))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(unpacked), "PATH": "/usr/bin:/bin"}, cwd=tmp_path, check=True)
    where, sizes = json.loads(out.stdout)
    assert where.startswith(str(unpacked))
    assert sizes == {name: len(asset(name)) for name, _ in ASSETS.values()}


def test_event_stream_rate_skips_what_is_over_it_and_says_so(faultserver):
    """`GET /events/stream?rate=N` (without `burst`: each chunk its part of N): a burst beyond the rate is
    skipped, told in `missed` notices, and every event is either sent or counted missed."""
    from httpx_sse import connect_sse

    srv = faultserver({"version": 1, "listeners": [{"name": "b", "bind": "127.0.0.1:0"}]}, admin=True)
    with httpx.Client(base_url=srv.control_url, timeout=5.0) as api:
        assert api.get("/events/stream?rate=0").json() == {
            "error": "rate must be 1 or more (events a second), got 0"}
        assert api.get("/events/stream?rate=x").status_code == 400
        with connect_sse(api, "GET", "/events/stream", params={"rate": 50}) as source:
            with httpx.Client(base_url=srv["b"].url, timeout=5.0) as client:
                for i in range(300):  # 600 events, as fast as one client goes
                    assert client.get(f"/r{i}").status_code == 200
            last = srv.events()[-1]["id"]
            first = srv.events(path="/r0")[0]["id"]
            sent, missed = [], 0
            for sse in source.iter_sse():
                if sse.event == "missed":
                    missed += json.loads(sse.data)["missed"]
                elif sse.event == "message":
                    sent.append(json.loads(sse.data)["id"])
                if sent and sent[-1] >= last:
                    break
    assert missed > 0
    after = [i for i in sent if i >= first]
    assert len(after) < last - first + 1  # fewer than all were sent ...
    assert len(sent) + missed >= last - first + 1  # ... and the rest were counted
    assert sent == sorted(sent)
