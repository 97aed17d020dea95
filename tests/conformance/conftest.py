"""Fixtures for the conformance modules: the client programs, built once per session, and Caddy.

- `java_probe`: clients/D504Probe.java compiled with `javac` against Debian's HttpAsyncClient
  4.1 jars (/usr/share/java), run with `java`.
- `go_probe`: clients/probe.go built with `go build` (standard library only, no network:
  GOPROXY=off, GOTOOLCHAIN=local, CGO_ENABLED=0), its build cache in pytest's cache folder
  when there is one, so later sessions build in a blink.
- `node_fetch`, `node_http`: clients/probe.mjs run by `node` (built-ins only, no build).
- `caddy`: `caddy(upstream_port, **options)` starts Caddy as a reverse proxy in front of
  faultserver, every file it writes in the test's tmp folder, and stops it at the test's end.

A missing tool skips the tests that need it, with the apt package that brings it; `.ci/run`
installs them all. Test modules reach these only through the fixtures (no imports from here).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# check_rows() asserts a whole matrix in one comparison: show the difference, cell by cell
pytest.register_assert_rewrite("tests.conformance._probes")

from faultserver._processes import START_TIMEOUT_S, free_port, stop_group, wait_listening  # noqa: E402
from tests.conformance._probes import CLIENTS_DIR, Probe  # noqa: E402
from tests.support.wait import wait_until  # noqa: E402

#: Where Debian's libhttpasyncclient-java and its dependencies put their jars.
JAR_DIR = Path("/usr/share/java")
#: HttpAsyncClient 4.1 and what it needs, in Debian's packages: libhttpasyncclient-java,
#: libhttpcore-java (httpcore, httpcore-nio), libhttpclient-java, libcommons-logging-java.
JARS = ("httpasyncclient.jar", "httpcore-nio.jar", "httpcore.jar", "httpclient.jar", "commons-logging.jar")
#: How long a build may take (a fresh Go cache builds net/http once: seconds).
BUILD_TIMEOUT_S = 300.0
#: The Node major version whose messages (undici 6) the tests pin.
NODE_MAJOR = 20


def _tool(name: str, apt: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install -y {apt}; .ci/run does)")
    return path


def _build(command: list[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, **kwargs)
    if proc.returncode != 0:
        pytest.fail(f"building {what} failed ({' '.join(command)}):\n{proc.stdout}{proc.stderr}")
    return proc


def _first_line(command: list[str]) -> str:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=30)
    return (proc.stdout + proc.stderr).strip().splitlines()[0]


@pytest.fixture(scope="session")
def java_probe(tmp_path_factory: pytest.TempPathFactory) -> Probe:
    """D504Probe compiled once per session against the HttpAsyncClient 4.1 jars."""
    javac = _tool("javac", "default-jdk-headless")
    java = _tool("java", "default-jdk-headless")
    missing = [jar for jar in JARS if not (JAR_DIR / jar).is_file()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not in {JAR_DIR} (apt-get install -y libhttpasyncclient-java; "
                    ".ci/run does)")
    classes = tmp_path_factory.mktemp("java-probe")
    classpath = ":".join(str(JAR_DIR / jar) for jar in JARS)
    _build([javac, "-nowarn", "-d", str(classes), "-cp", classpath, str(CLIENTS_DIR / "D504Probe.java")],
           "D504Probe.java")
    jars = sorted(p.name for p in JAR_DIR.glob("http*-4.*.jar"))  # versioned names: the releases
    return Probe(
        "java",
        # C1 only and the serial collector: a short-lived JVM starts faster
        (java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", f"{classes}:{classpath}", "D504Probe"),
        version=f"{_first_line([java, '-version'])}; {', '.join(jars)}",
    )


@pytest.fixture(scope="session")
def go_probe(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Probe:
    """probe.go built once per session (standard library only)."""
    go = _tool("go", "golang-go")
    out = tmp_path_factory.mktemp("go-probe")
    pytest_cache = getattr(request.config, "cache", None)  # None with -p no:cacheprovider
    cache = pytest_cache.mkdir("conformance-go") if pytest_cache is not None else out
    env = {
        **os.environ,
        "GOCACHE": str(cache / "build"),
        "GOPATH": str(cache / "path"),
        "GO111MODULE": "on",  # a lone file needs no go.mod
        "GOFLAGS": "",
        "GOPROXY": "off",  # nothing to download, and nothing may be
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",  # no C compiler needed; the probe dials IP addresses only
    }
    binary = out / "probe"
    _build([go, "build", "-o", str(binary), str(CLIENTS_DIR / "probe.go")], "probe.go", env=env, cwd=out)
    return Probe("go", (str(binary),), version=_first_line([go, "version"]))


def _node() -> tuple[str, str]:
    node = _tool("node", "nodejs")
    version = _first_line([node, "--version"])
    major = int(version.lstrip("v").split(".")[0])
    if major < NODE_MAJOR:
        pytest.skip(f"node {version}: the tests pin the messages of Node {NODE_MAJOR}+ (undici 6)")
    return node, version


@pytest.fixture(scope="session")
def node_fetch() -> Probe:
    """probe.mjs with Node's built-in fetch (undici)."""
    node, version = _node()
    undici = _first_line([node, "-p", "process.versions.undici"])
    return Probe("node-fetch", (node, str(CLIENTS_DIR / "probe.mjs"), "fetch"),
                 version=f"node {version}, undici {undici}")


@pytest.fixture(scope="session")
def node_http() -> Probe:
    """probe.mjs with node:http and an Agent({keepAlive: true, maxSockets: 2})."""
    node, version = _node()
    return Probe("node-http", (node, str(CLIENTS_DIR / "probe.mjs"), "http"), version=f"node {version}")


# --- Caddy ----------------------------------------------------------------------------------

#: How long Caddy may take to listen after its start.
#: How long a log line may take to appear after the client got its answer.
LOG_WAIT_S = 3.0


@dataclasses.dataclass(frozen=True)
class CaddyOptions:
    """What a test may set on Caddy's reverse_proxy http transport."""

    dial_timeout: str = "1s"
    response_header_timeout: str = "2s"
    #: Go's Transport.MaxConnsPerHost (0: no limit)
    max_conns_per_host: int = 0


class Caddy:
    """Caddy (`caddy run`, JSON config, admin off, no automatic HTTPS) in front of one upstream.

    Its log (JSON lines, level DEBUG) goes to a file: `http.log.error` has one line per failed
    request, its `msg` the error; `http.handlers.reverse_proxy` logs each `upstream roundtrip`
    with an `error` field when the transport gave up.
    """

    def __init__(self, folder: Path, upstream_port: int, **options: Any) -> None:
        self.folder = folder
        self.upstream_port = upstream_port
        self.options = CaddyOptions(**options)
        self.log_file = folder / "caddy.log"
        self.output = folder / "output.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _config(self) -> dict[str, Any]:
        o = self.options
        transport: dict[str, Any] = {
            "protocol": "http",
            "dial_timeout": o.dial_timeout,
            "response_header_timeout": o.response_header_timeout,
            "keep_alive": {"enabled": True},
        }
        if o.max_conns_per_host:
            transport["max_conns_per_host"] = o.max_conns_per_host
        return {
            "admin": {"disabled": True, "config": {"persist": False}},
            "storage": {"module": "file_system", "root": str(self.folder / "storage")},
            "logging": {"logs": {"default": {
                "writer": {"output": "file", "filename": str(self.log_file)},
                "encoder": {"format": "json"},
                "level": "DEBUG",
            }}},
            "apps": {"http": {"servers": {"gateway": {
                "listen": [f"127.0.0.1:{self.port}"],
                "automatic_https": {"disable": True},
                "logs": {},  # access and error log lines
                "routes": [{"handle": [{
                    "handler": "reverse_proxy",
                    "upstreams": [{"dial": f"127.0.0.1:{self.upstream_port}"}],
                    "transport": transport,
                }]}],
            }}}},
        }

    def start(self, binary: str) -> Caddy:
        self.port = free_port()
        config = self.folder / "caddy.json"
        config.write_text(json.dumps(self._config(), indent=1))
        home = str(self.folder)
        env = {**os.environ, "HOME": home, "XDG_DATA_HOME": f"{home}/data",
               "XDG_CONFIG_HOME": f"{home}/config"}
        with open(self.output, "ab") as out:
            self.proc = subprocess.Popen(
                [binary, "run", "--config", str(config)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,
            )
        if not wait_listening(self.proc, self.port, START_TIMEOUT_S):
            output = self.output.read_text(errors="replace")
            raise RuntimeError(f"caddy did not start on {self.url}:\n{output}")
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_group(proc)  # its own group: only the caddy we started

    def log(self) -> list[dict[str, Any]]:
        if not self.log_file.exists():
            return []
        lines = []
        for text in self.log_file.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(text))
            except ValueError:
                continue  # a line being written
        return lines

    def log_lines(self, logger: str, uri: str) -> list[dict[str, Any]]:
        """The lines of `logger` for requests to `uri` (the path Caddy received)."""
        return [
            line for line in self.log()
            if line.get("logger") == logger and line.get("request", {}).get("uri") == uri
        ]

    def wait_access(self, uri: str) -> dict[str, Any]:
        """The access log line of a request (written when Caddy is done with it)."""
        found: list[dict[str, Any]] = wait_until(
            lambda: self.log_lines("http.log.access", uri), LOG_WAIT_S,
            lambda: f"caddy's access line for {uri}; log:\n{self.log_file.read_text(errors='replace')}",
            interval=0.02,
        )
        return found[0]


@pytest.fixture
def caddy(tmp_path: Path) -> Iterator[Any]:
    """`caddy(upstream_port, dial_timeout="1s", response_header_timeout="2s", max_conns_per_host=0)`."""
    binary = _tool("caddy", "caddy")
    started: list[Caddy] = []
    lock = threading.Lock()  # tests start several at once, from threads

    def start(upstream_port: int, **options: Any) -> Caddy:
        with lock:
            folder = tmp_path / f"caddy-{len(started)}"
            folder.mkdir()
            gateway = Caddy(folder, upstream_port, **options)
            started.append(gateway)
        return gateway.start(binary)

    try:
        yield start
    finally:
        for gateway in started:
            gateway.stop()


@pytest.fixture(scope="session")
def caddy_version() -> str:
    return _first_line([_tool("caddy", "caddy"), "version"])
