"""The report: one row per scenario, as a table for people, as JSON and as Markdown.

Pure code: rows are built from observations and verdicts, then rendered; nothing here
writes a file (the command does).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .analyse import Observation
from .scenarios import Scenario
from .verdicts import Verdict

__all__ = ["Report", "Row", "make_row", "summarise_outcomes"]

COLUMNS = (
    "scenario", "statuses", "latency p50 / max", "retried GET / POST", "upstream opened / reused", "verdict",
)


@dataclass(frozen=True, slots=True)
class Row:
    scenario: Scenario
    observation: Observation
    verdict: Verdict

    @property
    def statuses(self) -> str:
        return summarise_outcomes(self.observation.outcomes)

    @property
    def latency(self) -> str:
        obs = self.observation
        if obs.latency_p50_s is None or obs.latency_max_s is None:
            return "-"
        return f"{obs.latency_p50_s:.2f} / {obs.latency_max_s:.2f} s"

    @property
    def retried(self) -> str:
        return " / ".join(_yes_no(self.observation.retried, m) for m in ("GET", "POST"))

    @property
    def connections(self) -> str:
        return f"{self.observation.opened} / {self.observation.reused}"

    def cells(self) -> tuple[str, ...]:
        return (
            self.scenario.name, self.statuses, self.latency, self.retried, self.connections,
            str(self.verdict),
        )

    def to_json(self) -> dict[str, Any]:
        obs = self.observation
        out: dict[str, Any] = {
            "scenario": self.scenario.name,
            "cause": self.scenario.cause,
            "expects": self.scenario.expects,
            "statuses": list(obs.outcomes),
            "latency_p50_s": _round(obs.latency_p50_s),
            "latency_max_s": _round(obs.latency_max_s),
            "retried": {m: obs.retried.get(m) for m in ("GET", "POST")},
            "upstream_connections_opened": obs.opened,
            "requests_on_reused_connections": obs.reused,
            "verdict": {"level": self.verdict.level.value, "text": self.verdict.text},
            "stopped_early": obs.cut_short,
            "requests": [
                {**r.to_json(), "arrivals": [[a.conn, a.request_on_connection] for a in obs.arrivals_of(r)]}
                for r in obs.replies
            ],
        }
        if obs.read_timeout is not None:
            out["read_timeout"] = obs.read_timeout.to_json()
        if obs.pool is not None:
            out["pool"] = obs.pool.to_json()
        return out


def make_row(scenario: Scenario, observation: Observation, verdict: Verdict) -> Row:
    return Row(scenario, observation, verdict)


def _yes_no(retried: Any, method: str) -> str:
    value = retried.get(method)
    return "-" if value is None else ("yes" if value else "no")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def summarise_outcomes(outcomes: Sequence[str]) -> str:
    """`200 x3, 502`: each outcome once, in the order first seen, with its count."""
    if not outcomes:
        return "-"
    counts = Counter(outcomes)
    return ", ".join(o if counts[o] == 1 else f"{o} x{counts[o]}" for o in dict.fromkeys(outcomes))


@dataclass(frozen=True, slots=True)
class Report:
    """A whole run: where it probed, when, for how long, and its rows."""

    gateway: str
    backend: str
    started: str
    duration_s: float
    version: str
    rows: tuple[Row, ...]
    skipped: tuple[str, ...] = ()

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.scenario.name == name)

    def heading(self) -> str:
        return (
            f"faultserver {self.version} probe of {self.gateway} (backend {self.backend}), "
            f"{self.started}, {self.duration_s:.0f} s"
        )

    def _footer(self) -> list[str]:
        if not self.skipped:
            return []
        return [f"not run (--max-duration reached): {', '.join(self.skipped)}"]

    def to_table(self) -> str:
        """A fixed-width table for a terminal; the verdict column is never cut."""
        rows = [COLUMNS, *(r.cells() for r in self.rows)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
        lines = [self.heading(), ""]
        for n, row in enumerate(rows):
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
            if n == 0:
                lines.append("  ".join("-" * w for w in widths) + "  " + "-" * len(COLUMNS[-1]))
        return "\n".join([*lines, *self._footer()]) + "\n"

    def to_markdown(self) -> str:
        header = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
        lines = [f"**{self.heading()}**", "", *header]
        for row in self.rows:
            cells = [c.replace("|", "\\|") for c in row.cells()]
            cells[0] = f"`{cells[0]}`"
            lines.append("| " + " | ".join(cells) + " |")
        footer = self._footer()
        return "\n".join([*lines, *(["", *footer] if footer else [])]) + "\n"

    def to_json(self) -> str:
        return json.dumps(
            {
                "gateway": self.gateway,
                "backend": self.backend,
                "started": self.started,
                "duration_s": round(self.duration_s, 3),
                "faultserver": self.version,
                "rows": [r.to_json() for r in self.rows],
                "skipped": list(self.skipped),
            },
            indent=2,
        ) + "\n"
