"""Running the client programs of `clients/` against faultserver, and reading what they print.

Every program takes `URL SCENARIO` pairs (each pair a "run" with its own client and pool; the
runs go at once) and prints one JSON line per request: `status`, or `error` and `message`
(and for Node `code` and `cause`), and `ms`. `cell()` makes one comparable string of a line,
with the ports that change from run to run replaced by PORT, so a test asserts exact text.

A matrix row (`Row`) is one profile, one scenario and what the client must report.
`run_rows()` starts one faultserver per row and runs all rows in one process of the client
(so a module pays for one JVM start, and the rows that wait for a timeout wait together);
`check_rows()` compares every row at once, so a failure shows every cell that differs.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.support.profiles import EXTRA, PROFILES, TEXT_OK, one_listener

__all__ = [
    "CLIENTS_DIR",
    "RACE",
    "RACE_TRIES",
    "Observed",
    "Probe",
    "ProbeError",
    "Row",
    "cell",
    "check_race",
    "check_rows",
    "frequencies",
    "normalize",
    "profile_for",
    "race_outcomes",
    "report",
    "run_race",
    "run_rows",
]

#: The client programs' sources.
CLIENTS_DIR = Path(__file__).resolve().parent / "clients"

#: How long one client process may run before the test fails (each row ends within seconds).
PROBE_TIMEOUT_S = 60.0

#: The race row's tries (each with a new client: a request, then one on the same connection).
RACE_TRIES = 20

#: `keepalive: {max_requests: 1}`: every connection is closed (FIN, no `Connection: close`)
#: right after its first answer, so a client that reuses it at once races the FIN.
RACE = "max-requests-1"

_PROFILES: dict[str, Any] = {RACE: one_listener(response=TEXT_OK, keepalive={"max_requests": 1})}


def profile_for(name: str) -> str | dict[str, Any]:
    """profiles/NAME.yaml when the repository ships it, else a row of the shared fault table."""
    path = PROFILES / f"{name}.yaml"
    if path.is_file():
        return str(path)
    if name in _PROFILES:
        return _PROFILES[name]
    return EXTRA[name]


# --- one line, one cell ---------------------------------------------------------------------

#: An address with a port: the backend's, the gateway's, or the client's own ephemeral port.
_ADDRESS = re.compile(r"(127\.0\.0\.1|localhost|\[::1\]):\d+")
#: HttpAsyncClient numbers its connections per JVM (`http-outgoing-7`).
_CONNECTION_ID = re.compile(r"http-outgoing-\d+")


def normalize(text: str) -> str:
    return _CONNECTION_ID.sub("http-outgoing-N", _ADDRESS.sub(r"\1:PORT", text))


def _error(fields: Mapping[str, Any]) -> str:
    text = f"{fields['error']}: {fields['message']}"
    if fields.get("code") is not None:
        text += f" ({fields['code']})"
    return text


def cell(line: Mapping[str, Any]) -> str:
    """`200`, or `ERROR: MESSAGE (CODE) <- CAUSE: MESSAGE (CODE)`, ports as PORT."""
    if "error" not in line:
        return str(line["status"])
    text = _error(line)
    if line.get("cause"):
        text += " <- " + _error(line["cause"])
    return normalize(text)


# --- client processes -----------------------------------------------------------------------


class ProbeError(AssertionError):
    """A client program failed to run, or printed something that is not one of its lines."""


@dataclasses.dataclass(frozen=True)
class Probe:
    """A built client program: `run([(url, scenario), ...])` gives each run's lines."""

    name: str
    command: tuple[str, ...]
    #: the program's version line for the MATRIX | versions report
    version: str = ""

    def run(self, pairs: Sequence[tuple[str, str]], timeout: float = PROBE_TIMEOUT_S) -> list[list[dict]]:
        args = [part for pair in pairs for part in pair]
        proc = subprocess.run(
            [*self.command, *args],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        runs: list[list[dict]] = [[] for _ in pairs]
        for text in proc.stdout.splitlines():
            try:
                line = json.loads(text)
                runs[line["run"]].append(line)
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise ProbeError(f"{self.name} printed {text!r}, not a request line ({exc})\n"
                                 f"stderr:\n{proc.stderr}") from None
        if proc.returncode != 0:
            raise ProbeError(f"{self.name} exited with {proc.returncode}\nstderr:\n{proc.stderr}")
        return runs


# --- matrix rows --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Row:
    """One cell of the matrix: a profile, a scenario of the client programs, the expected cells."""

    cause: str  # the MATRIX line's cause
    profile: str  # profiles/NAME.yaml, or a name of the shared fault table (EXTRA)
    scenario: str  # get, get2, post2, burst6, seq10 (see clients/D504Probe.java)
    #: one cell per request, in request order (or sorted, when `unordered`)
    expect: tuple[str, ...]
    #: the paths faultserver saw again on a new connection (`srv.retries()`)
    retried: tuple[str, ...] = ()
    #: bounds in seconds for every failed request's time, where the time is the outcome
    failed_in_s: tuple[float, float] | None = None
    #: the requests run at once (burst6): which of them gets a connection varies
    unordered: bool = False


@dataclasses.dataclass
class Observed:
    """What one row's client printed, and what its faultserver saw."""

    lines: list[dict]
    retried: list[str]

    @property
    def cells(self) -> list[str]:
        return [cell(line) for line in self.lines]

    def failed_s(self) -> list[float]:
        return [line["ms"] / 1000 for line in self.lines if "error" in line]


def run_rows(faultserver: Any, probe: Probe, rows: Mapping[str, Row]) -> dict[str, Observed]:
    """One faultserver per row, all rows in one run of `probe`; lines in request order."""
    servers = {key: faultserver(profile_for(row.profile)) for key, row in rows.items()}
    runs = probe.run([(servers[key].url, row.scenario) for key, row in rows.items()])
    observed = {}
    for (key, _row), lines in zip(rows.items(), runs, strict=True):
        lines.sort(key=_request_order)
        observed[key] = Observed(lines, [e["path"] for e in servers[key].retries()])
    return observed


def _request_order(line: Mapping[str, Any]) -> tuple[int, str]:
    """/1 before /2, /seq-2 before /seq-10: the number in the path, then the path."""
    number = re.search(r"\d+", line["req"])
    return (int(number.group()) if number else -1, line["req"])


def check_rows(client: str, rows: Mapping[str, Row], observed: Mapping[str, Observed],
               extra: Callable[[Observed], Mapping[str, Any]] | None = None) -> None:
    """Print each row's MATRIX line, then assert every row at once."""
    got, want = {}, {}
    for key, row in rows.items():
        seen = observed[key]
        cells = sorted(seen.cells) if row.unordered else seen.cells
        report(client, row.cause, got=_counted(cells) if row.unordered else cells,
               retried=seen.retried or "no", **_times(seen), **(extra(seen) if extra else {}))
        got[key] = (cells, seen.retried)
        want[key] = (sorted(row.expect) if row.unordered else list(row.expect), list(row.retried))
    assert got == want
    for key, row in rows.items():
        if row.failed_in_s is not None:
            low, high = row.failed_in_s
            took = observed[key].failed_s()
            assert took and all(low <= t < high for t in took), f"{key}: failed after {took} s"


def _times(seen: Observed) -> dict[str, str]:
    ms = [line["ms"] for line in seen.lines]
    if len(ms) == 1:
        return {"took": f"{ms[0] / 1000:.2f}s"}
    return {"took": "/".join(f"{m / 1000:.2f}" for m in ms) + " s"}


def _counted(cells: Iterable[str]) -> str:
    counts = collections.Counter(cells)
    return ", ".join(f"{n} x {c}" for c, n in sorted(counts.items(), key=lambda item: -item[1]))


# --- the keep-alive race ------------------------------------------------------------------


def race_outcomes(lines: Iterable[Mapping[str, Any]]) -> collections.Counter[str]:
    """How often each cell came back for the requests sent at once on a reused connection."""
    return collections.Counter(
        re.sub(r"/r-\d+", "/r-N", cell(line)) for line in lines if line["req"].startswith("/r-")
    )


def check_race(client: str, method: str, counts: collections.Counter[str], faces: Iterable[str]) -> None:
    """Print the race row's frequencies; assert every try ended in one of the expected faces
    (regular expressions: an answer, or one of the names this client gives the FIN or RST)."""
    report(client, f"{RACE} ({method} at once, {RACE_TRIES} tries)", outcomes=frequencies(counts))
    assert sum(counts.values()) == RACE_TRIES
    patterns = [re.compile(face) for face in faces]
    unexpected = [c for c in counts if not any(p.fullmatch(c) for p in patterns)]
    assert not unexpected, f"{client} {method}: outcomes that are not a face of the race: {unexpected}"


def run_race(faultserver: Any, probe: Probe) -> dict[str, collections.Counter[str]]:
    """The race row for GET and for POST, at once (a faultserver each): outcome frequencies.

    Every try starts a new client, sends /w-N and, as soon as it is answered, /r-N on the
    same connection, which the server closed (FIN) right after its answer. Which comes
    first at the client, the FIN or the reuse, is the race: only its frequencies are stable.
    """
    methods = {"GET": "race20", "POST": "race20post"}
    servers = {method: faultserver(profile_for(RACE)) for method in methods}
    runs = probe.run([(servers[method].url, scenario) for method, scenario in methods.items()])
    return {method: race_outcomes(lines) for method, lines in zip(methods, runs, strict=True)}


def report(client: str, cause: str, **observed: Any) -> None:
    """Print the observed cell; the README's table is copied from these lines."""
    cells = " | ".join(f"{k}={v}" for k, v in observed.items())
    print(f"\nMATRIX | {client} | {cause} | {cells}")


def frequencies(counts: collections.Counter[str]) -> str:
    return _counted(counts.elements())

