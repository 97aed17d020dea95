"""The container image's recipe (issue 14). No container engine runs on the project's
machines and no image can be pulled, so the Containerfile is parsed and each claim that
can be checked without building is checked: two stages, a slim base, the wheel built in
the first and installed in the second, a non-root user, the entrypoint and command, the
exposed ports (those of the default profile and the admin API), a health check on
/healthz, that every file it copies exists and is not excluded from the build context,
and that nothing is written outside /tmp at run time. The build itself runs where an
engine is present (`scripts/build-image.sh`), and is skipped here otherwise."""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from faultserver._profile.load import load_profile_file

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "Containerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(ARGs before the first FROM, the stages): instructions with continuations joined."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "a continuation at the end of the file"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif not stages:
            assert keyword == "ARG", f"only ARG may come before FROM, got {line!r}"
            key, _, value = rest.partition("=")
            args[key] = value
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


@pytest.fixture(scope="module")
def recipe() -> tuple[dict[str, str], list[Stage]]:
    return parse(CONTAINERFILE.read_text())


def _exec_form(value: str) -> list[str]:
    parsed = json.loads(value)
    assert isinstance(parsed, list) and all(isinstance(x, str) for x in parsed), value
    return parsed


def test_containerfile_is_multi_stage_on_a_slim_python(recipe):
    args, stages = recipe
    assert len(stages) == 2
    build, final = stages
    assert build.name == "build" and final.name is None
    for stage in stages:
        base = stage.base.replace("${PYTHON_IMAGE}", args.get("PYTHON_IMAGE", ""))
        assert base.startswith("python:3.") and base.endswith("-slim"), base
        assert ":" in base and not base.endswith(":latest")  # a pinned tag


def test_containerfile_builds_the_wheel_then_installs_only_it(recipe):
    _, (build, final) = recipe
    assert any("pip wheel --no-deps --wheel-dir /dist ." in run for run in build.all("RUN"))
    assert "--from=build /dist/ /tmp/dist/" in final.all("COPY")
    [install] = [run for run in final.all("RUN") if "pip install" in run]
    assert "pip install /tmp/dist/*.whl" in install and "rm -rf /tmp/dist" in install
    # the source is never copied into the final image, only the wheel and the default profile
    sources = [c.split()[0] for c in final.all("COPY") if not c.startswith("--from")]
    assert sources == ["deploy/container/profile.yaml"]


def test_containerfile_runs_as_a_non_root_user_declared_after_the_installs(recipe):
    _, (_, final) = recipe
    keywords = [kw for kw, _ in final.instructions]
    [user] = final.all("USER")
    uid, _, gid = user.partition(":")
    assert (
        uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    )  # numeric: runAsNonRoot can check it
    assert keywords.index("USER") > max(i for i, kw in enumerate(keywords) if kw == "RUN")
    assert any(f"--uid {uid}" in run for run in final.all("RUN"))


def test_containerfile_entrypoint_command_and_signal(recipe):
    _, (_, final) = recipe
    assert _exec_form(final.all("ENTRYPOINT")[-1]) == ["faultserver"]
    assert _exec_form(final.all("CMD")[-1]) == ["run", "/etc/faultserver/profile.yaml"]
    assert final.all("STOPSIGNAL") == ["SIGTERM"]  # SIGTERM: the FIN shutdown, exit 0


def test_containerfile_exposes_the_default_profile_s_port_and_the_admin_api(recipe):
    _, (_, final) = recipe
    exposed = {int(p) for line in final.all("EXPOSE") for p in line.split()}
    assert exposed == {8080, 8474}
    profile = load_profile_file(str(ROOT / "deploy/container/profile.yaml"))
    assert {listener.port for listener in profile.listeners} <= exposed
    assert all(listener.host == "0.0.0.0" for listener in profile.listeners)
    env = " ".join(final.all("ENV"))
    assert "FAULTSERVER_CONTROL=127.0.0.1:8474" in env  # no token in the image: loopback only


def test_containerfile_healthcheck_asks_healthz_on_the_control_port(recipe):
    _, (_, final) = recipe
    [check] = final.all("HEALTHCHECK")
    options, _, command = check.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = _exec_form(command)
    assert argv[:2] == ["python", "-c"]
    assert "/healthz" in argv[2] and "FAULTSERVER_CONTROL" in argv[2]
    compile(argv[2], "<healthcheck>", "exec")  # the one-liner is valid Python


def test_containerfile_is_read_only_root_friendly(recipe):
    _, (_, final) = recipe
    env = " ".join(final.all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # no __pycache__ written at run time
    assert final.all("WORKDIR") == ["/tmp"]  # the one writable place (an emptyDir in Kubernetes)
    assert not final.all("VOLUME")


def _ignored(path: str, patterns: list[str]) -> bool:
    parts = path.split("/")
    for pattern in patterns:
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            if fnmatch.fnmatch(prefix, pattern) or fnmatch.fnmatch(prefix, pattern.removeprefix("**/")):
                return True
    return False


@pytest.mark.parametrize("ignore_file", [".containerignore", ".dockerignore"])
def test_every_copied_file_exists_and_is_in_the_build_context(recipe, ignore_file):
    _, stages = recipe
    patterns = [
        line.strip()
        for line in (ROOT / ignore_file).read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for stage in stages:
        for copy in stage.all("COPY"):
            if copy.startswith("--from"):
                continue
            *sources, _dest = shlex.split(copy)
            for source in sources:
                path = ROOT / source
                assert path.exists(), f"COPY {source}: no such file in the repository"
                assert not _ignored(source.rstrip("/"), patterns), f"COPY {source}: excluded by {ignore_file}"
    assert (ROOT / ".containerignore").read_text().splitlines()[2:] == (
        ROOT / ".dockerignore"
    ).read_text().splitlines()[2:]


def test_the_build_stage_s_files_make_a_wheel_with_the_shipped_profiles(recipe, tmp_path):
    """The build stage as the engine would run it: only the files its COPY lines name, in a
    directory of their own, then `pip wheel --no-deps` (setuptools from PyPI, as in the
    image). The wheel must carry the shipped profiles, so `faultserver run fin` works."""
    import zipfile

    _, (build, _) = recipe
    context = tmp_path / "src"
    context.mkdir()
    for copy in build.all("COPY"):
        *sources, _dest = shlex.split(copy)
        for source in sources:
            path = ROOT / source
            if path.is_dir():
                shutil.copytree(
                    path, context / source.rstrip("/"), ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                )
            else:
                shutil.copy2(path, context / source)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--wheel-dir", str(tmp_path / "dist"), "."],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=context,
    )
    if done.returncode != 0 and "Could not find a version that satisfies" in done.stderr:
        pytest.skip(f"no package index reachable for setuptools: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr
    [wheel] = (tmp_path / "dist").glob("faultserver-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "faultserver/profiles/fin.yaml" in names
    assert "faultserver/_ctl.py" in names and "faultserver/py.typed" in names


def test_build_script_is_valid_bash_and_finds_an_engine():
    script = ROOT / "scripts/build-image.sh"
    assert os.access(script, os.X_OK)
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    assert "-f Containerfile" in text and "podman docker" in text


def test_the_image_builds_where_an_engine_runs():
    """Only where podman or docker can build (not on this project's machines)."""
    engine = next((e for e in ("podman", "docker") if shutil.which(e)), None)
    if engine is None:
        pytest.skip("no container engine (podman, docker) installed")
    if subprocess.run([engine, "info"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip(f"{engine} is installed but cannot run (no daemon or no permission)")
    done = subprocess.run(
        ["bash", str(ROOT / "scripts/build-image.sh"), "faultserver:test"],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "ENGINE": engine},
    )
    if done.returncode != 0 and ("pull" in done.stderr.lower() or "registry" in done.stderr.lower()):
        pytest.skip(f"{engine} cannot fetch the base image here: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr
