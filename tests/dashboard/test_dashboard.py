"""The dashboard (`GET /`) in headless Chromium against a real server: what it shows, what
its buttons do to real clients, and how it holds up under a burst of events.

Every test ends with the browser's console checked for errors (conftest's `dash`).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.net import connect, get_request, recv_to_fin
from tests.support.wait import wait_until

from .conftest import LAPTOP, PHONE, Page

REPO = Path(__file__).resolve().parents[2]
#: The events the page keeps (dashboard.js MAX_ROWS).
MAX_ROWS = 500


def profile(*listeners: dict[str, Any]) -> dict[str, Any]:
    if not listeners:
        listeners = (listener("backend"),)
    return {"version": 1, "seed": 7, "listeners": list(listeners)}


def listener(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "bind": "127.0.0.1:0", **fields}


def get(srv: Any, path: str, name: str = "backend") -> httpx.Response:
    return httpx.get(srv[name].url + path, timeout=5.0)


# --- what it shows -----------------------------------------------------------------------


def test_dashboard_loads_with_no_console_errors(dash):
    page = dash(profile())
    page.wait_live()
    get(page.srv, "/first")
    page.wait(lambda: any("GET /first" in r["text"] for r in page.rows()), "the request is not shown")
    page.wait(lambda: page.attr('[data-plot="requests"]', "data-last") is not None, "no plot drawn")
    assert page.console_errors() == []
    # the module ran: an error thrown at its start would leave the page "loading"
    assert page.text("#status") == "live"


def test_dashboard_shows_listeners_and_their_modes(dash):
    page = dash(profile(listener("api"), listener("db", accept="refuse"), listener("cache", accept="stall")))
    page.wait_live()
    names = page.js("return [...document.querySelectorAll('article.listener')].map(a => a.dataset.name)")
    assert names == ["api", "db", "cache"]
    for name, mode in (("api", "open"), ("db", "refuse"), ("cache", "stall")):
        card = page.card(name)
        assert page.text(f"{card} .url") == page.srv[name].url
        assert page.attr(f'{card} [data-mode="{mode}"]', "aria-pressed") == "true"
        pressed = page.js(
            "return [...document.querySelectorAll(arguments[0] + ' [aria-pressed=true]')]"
            ".map(b => b.textContent)",
            card)
        assert pressed == [mode]


def test_dashboard_refuse_makes_a_real_connect_fail_and_open_restores_it(dash):
    page = dash(profile())
    page.wait_live()
    srv = page.srv
    port = srv["backend"].port
    card = page.card("backend")

    page.click(f'{card} [data-mode="refuse"]')
    page.wait(lambda: srv["backend"].accept == "refuse", "the click did not switch the mode")
    with pytest.raises(ConnectionRefusedError) as refused:
        socket.create_connection(("127.0.0.1", port), timeout=2.0)
    assert refused.value.errno == errno.ECONNREFUSED
    page.wait(lambda: page.attr(f'{card} [data-mode="refuse"]', "aria-pressed") == "true",
              "the page does not show refuse")
    assert page.text(f"{card} .mode-cause") == "(api)"

    page.click(f'{card} [data-mode="open"]')
    page.wait(lambda: srv["backend"].accept == "open", "the click did not open the listener")
    assert get(srv, "/back").status_code == 200
    page.wait(lambda: page.attr(f'{card} [data-mode="open"]', "aria-pressed") == "true",
              "the page does not show open")
    assert [(e["accept"], e["cause"]) for e in srv.events(type="mode")] == [
        ("open", "profile"), ("refuse", "api"), ("open", "api")]


def test_dashboard_shows_the_event_of_a_real_request_within_1s(dash):
    page = dash(profile())
    page.wait_live()
    path = f"/seen-{uuid.uuid4().hex[:8]}"
    assert get(page.srv, path).status_code == 200
    # from the answer's arrival: the request event is in the page within a second
    wait_until(lambda: any(f"GET {path}" in r["text"] for r in page.rows()),
               timeout=1.0, what=f"a row for GET {path}", interval=0.01)
    top = page.rows()[0]
    newest = page.srv.events()[-1]
    assert top["id"] <= newest["id"]


def test_dashboard_plot_follows_the_requests(dash):
    page = dash(profile())
    page.wait_live()
    plot = '[data-plot="requests"]'
    page.wait(lambda: page.attr(plot, "data-last") is not None, "the requests plot is not drawn")
    before = page.attr(f"{plot} polyline", "points")
    assert page.attr(plot, "data-last") == "0"
    with httpx.Client(base_url=page.srv.url, timeout=5.0) as client:
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            assert client.get("/load").status_code == 200
            time.sleep(0.01)
    page.wait(lambda: float(page.attr(plot, "data-last") or 0) > 0, "the requests plot stays at 0")
    after = page.attr(f"{plot} polyline", "points")
    assert after != before
    # its top point is above the baseline (y grows downwards; the baseline is at 69)
    assert min(float(p.split(",")[1]) for p in after.split()) < 60
    assert float(page.text(f"{page.card('backend')} .rps")) > 0


def test_dashboard_faults_plot_has_a_line_per_action(dash):
    rules = [{"name": "boom", "match": {"path": "/boom"}, "action": "respond", "status": 503},
             {"name": "cut", "match": {"path": "/cut"}, "action": "close"}]
    page = dash(profile(listener("backend", rules=rules)))
    page.wait_live()
    for _ in range(20):
        assert get(page.srv, "/boom").status_code == 503
        with pytest.raises(httpx.RemoteProtocolError):
            get(page.srv, "/cut")
    plot = '[data-plot="faults"]'
    labels = ("return [...document.querySelectorAll(arguments[0])]"
              ".map(e => e.dataset.label || e.textContent)")
    page.wait(lambda: sorted(page.js(labels, f"{plot} polyline")) == ["close", "respond"],
              "no line per action")
    assert page.js(labels, f"{plot} .legend li") == ["close", "respond"]
    cells = ("return [...document.querySelectorAll('.rules tbody tr')]"
             ".map(tr => [...tr.cells].map(c => c.textContent))")
    page.wait(lambda: [r[2] for r in page.js(cells)] == ["20", "20"],
              lambda: f"the rules' counts: {page.js(cells)}")
    rows = page.js(cells)
    assert [r[0] for r in rows] == ["boom", "cut"]
    assert rows[0][1].startswith("respond") and "status=503" in rows[0][1]


# --- the token ---------------------------------------------------------------------------

TOKEN = "s3cret-dashboard-token"


def test_dashboard_with_a_token_asks_for_it_and_refuses_a_wrong_one(dash):
    page = dash(profile(), token=TOKEN, login=False)
    page.expected_errors.append(r"status of 401")  # the page's first try, and the wrong token
    page.wait(lambda: page.visible("#login-form"), "the login is not shown")
    assert not page.visible("#main")
    # nothing of the server is shown before the token
    assert page.js("return document.querySelectorAll('article.listener').length") == 0

    page.type_into("#token", "wrong-token")
    page.click("#login-form button[type=submit]")
    page.wait(lambda: "Wrong token" in page.text("#login-error"), "the wrong token is not refused")
    assert page.visible("#login-form") and not page.visible("#main")
    assert page.js("return sessionStorage.length") == 0

    page.type_into("#token", TOKEN)
    page.click("#login-form button[type=submit]")
    page.wait_live()
    assert not page.visible("#login-form")
    # kept in this tab's sessionStorage only: no cookie, not in the URL
    assert page.js("return sessionStorage.getItem('faultserver.token')") == TOKEN
    assert page.js("return document.cookie") == ""
    assert page.driver.get_cookies() == []
    assert TOKEN not in page.driver.current_url
    # the page's API calls carry it: a switch works
    page.click(f'{page.card("backend")} [data-mode="stall"]')
    page.wait(lambda: page.srv["backend"].accept == "stall", "the click did not switch the mode")

    # a reload keeps it (the same tab); "Forget token" asks again
    page.driver.refresh()
    page.wait_live()
    page.click("#logout")
    page.wait(lambda: page.visible("#login-form"), "the login is not shown after forgetting the token")
    assert page.js("return sessionStorage.length") == 0


def test_dashboard_page_needs_no_token_but_the_api_still_does(faultserver):
    srv = faultserver(profile(), admin=True, token=TOKEN)
    with httpx.Client(base_url=srv.control_url, timeout=5.0) as api:
        assert api.get("/").status_code == 200
        assert api.get("/listeners").status_code == 401
        assert api.get("/events/stream").status_code == 401


# --- the policy ---------------------------------------------------------------------------


def test_dashboard_csp_header_and_no_inline_script(dash):
    page = dash(profile())
    page.wait_live()
    from html.parser import HTMLParser

    with httpx.Client(base_url=page.srv.control_url, timeout=5.0) as api:
        resp = api.get("/")
        for path in ("/", "/dashboard/dashboard.js", "/dashboard/dashboard.css", "/dashboard/favicon.svg"):
            got = api.get(path)
            assert got.status_code == 200, path
            csp = got.headers["content-security-policy"]
            directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
            assert directives["default-src"] == "'none'"
            assert directives["script-src"] == "'self'"
            assert directives["style-src"] == "'self'"
            assert directives["frame-ancestors"] == "'none'"
            assert "unsafe" not in csp
            assert got.headers["x-content-type-options"] == "nosniff"

    class Inline(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.scripts: list[tuple[dict[str, str | None], str]] = []
            self.problems: list[str] = []
            self._in_script = False

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            names = [name for name, _ in attrs]
            if tag == "script":
                self._in_script = True
                self.scripts.append((dict(attrs), ""))
            if tag == "style" or "style" in names:
                self.problems.append(f"inline style: <{tag}>")
            self.problems += [f"handler {name} on <{tag}>" for name in names if name.startswith("on")]
            self.problems += [f"javascript: URL on <{tag}>" for _, v in attrs if v and "javascript:" in v]

        def handle_endtag(self, tag: str) -> None:
            self._in_script = False

        def handle_data(self, data: str) -> None:
            if self._in_script and data.strip():
                self.problems.append(f"inline script: {data[:40]!r}")

    parser = Inline()
    parser.feed(resp.text)
    assert parser.problems == []
    assert [attrs.get("src") for attrs, _ in parser.scripts] == ["/dashboard/dashboard.js"]
    # and the browser enforces the policy: an inline script added to the page does not run
    page.expected_errors.append(r"Content Security Policy")
    ran = page.js(
        "const s = document.createElement('script'); s.textContent = 'window.inlineRan = true';"
        "document.head.append(s); return window.inlineRan === true")
    assert ran is False
    page.wait(lambda: any("Content Security Policy" in m for m in page.console_errors()),
              "no CSP violation reported")


# --- events ------------------------------------------------------------------------------


def quiet_top(page: Page) -> int:
    """Wait until the page shows the server's newest event; its id."""
    newest = page.srv.events()[-1]["id"]
    page.wait(lambda: page.rows() and page.rows()[0]["id"] >= newest,
              lambda: f"the page's newest row is not the server's newest event {newest}")
    return int(newest)


def closed_newest(srv: Any) -> int:
    """After a client closed its connection: the id of that close's event, the newest."""
    return int(wait_until(lambda: srv.events()[-1]["type"] == "peer_close" and srv.events()[-1]["id"],
                          what="the client's close"))


def accounted(page: Page) -> int:
    """The events the page has had: the rows it keeps and those it says it dropped."""
    return page.row_count() + int(page.attr("#dropped", "data-dropped") or 0)


def test_dashboard_keeps_the_newest_rows_and_counts_the_dropped(dash):
    page = dash(profile())
    page.wait_live()
    srv = page.srv
    before = quiet_top(page)
    had = accounted(page)
    # a flood as fast as one client goes (1,500 to 3,000 events a second here), for two
    # seconds and at least 1,000 requests: a request and a response event each. The server
    # samples it for the page (`rate`), the page keeps the newest MAX_ROWS.
    with httpx.Client(base_url=srv.url, timeout=5.0) as client:
        start = time.monotonic()
        sent = 0
        while time.monotonic() - start < 2.0 or sent < 1000:
            assert client.get(f"/burst-{sent}").status_code == 200
            sent += 1
    newest = closed_newest(srv)
    # the page keeps up: the newest event reaches the top
    page.wait(lambda: page.rows()[0]["id"] >= newest,
              lambda: f"the page's newest row is {page.rows()[0]['id']}, the server's {newest}")
    assert page.row_count() == MAX_ROWS
    # every event is a row or counted dropped (left the page, or skipped by the server), once
    dropped = int(page.attr("#dropped", "data-dropped") or 0)
    assert accounted(page) == had + newest - before, (had, before, newest, dropped)
    assert f"{dropped:,} dropped" in page.text("#dropped")
    ids = [r["id"] for r in page.rows()]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == MAX_ROWS

    # a second burst: still MAX_ROWS rows, and more dropped
    with httpx.Client(base_url=srv.url, timeout=5.0) as client:
        for i in range(MAX_ROWS):
            assert client.get(f"/again-{i}").status_code == 200
    newest = srv.events()[-1]["id"]
    page.wait(lambda: page.rows()[0]["id"] >= newest, "the page does not reach the newest event")
    assert page.row_count() == MAX_ROWS
    assert int(page.attr("#dropped", "data-dropped") or 0) > dropped


def test_dashboard_shows_a_burst_of_400_events_whole(dash):
    page = dash(profile())
    page.wait_live()
    srv = page.srv
    before = quiet_top(page)
    had = page.row_count()
    assert had + 400 <= MAX_ROWS
    # 400 events at once, far more than the stream's sustained rate: an accept, 199 requests
    # and their responses, a close
    with httpx.Client(base_url=srv.url, timeout=5.0) as client:
        for i in range(199):
            assert client.get(f"/whole-{i}").status_code == 200
    newest = closed_newest(srv)
    assert newest - before == 400
    page.wait(lambda: page.rows()[0]["id"] >= newest, "the page does not reach the newest event")
    ids = [r["id"] for r in page.rows()]
    assert ids[:400] == list(range(newest, before, -1))
    assert page.row_count() == had + 400
    assert page.attr("#dropped", "data-dropped") == "0"


def test_dashboard_hidden_tab_stops_the_stream_and_catches_up_when_shown(dash):
    from httpx_sse import connect_sse

    # one event stream reader at most: the page's, or this test's once the page let it go
    page = dash({**profile(), "control": {"max_subscribers": 1}})
    page.wait_live()
    srv = page.srv
    before = quiet_top(page)
    had = accounted(page)
    with httpx.Client(base_url=srv.control_url, timeout=5.0) as api:
        with connect_sse(api, "GET", "/events/stream") as source:
            assert source.response.status_code == 503  # the page holds the one place
        page.driver.minimize_window()
        assert page.js("return document.visibilityState") == "hidden"

        def free() -> bool:
            with connect_sse(api, "GET", "/events/stream") as source:
                return source.response.status_code == 200
        wait_until(free, what="the hidden page still reads the event stream")
    with httpx.Client(base_url=srv.url, timeout=5.0) as client:
        for i in range(3):
            assert client.get(f"/while-hidden-{i}").status_code == 200
    newest = closed_newest(srv)
    time.sleep(0.3)
    assert not any("/while-hidden" in r["text"] for r in page.rows())
    page.driver.maximize_window()
    assert page.js("return document.visibilityState") == "visible"
    page.wait(lambda: page.rows()[0]["id"] >= newest, "the shown page does not catch up")
    assert {"GET /while-hidden-0", "GET /while-hidden-2"} <= {r["what"] for r in page.rows()}
    assert accounted(page) == had + newest - before
    assert page.attr("#dropped", "data-dropped") == "0"


def test_dashboard_filters_events_by_listener_and_type(dash):
    page = dash(profile(listener("api"), listener("db")))
    page.wait_live()
    for name in ("api", "db"):
        for i in range(3):
            assert get(page.srv, f"/{name}-{i}", name).status_code == 200
    page.wait(lambda: {"GET /api-2", "GET /db-2"} <= {r["what"] for r in page.rows()},
              "both listeners' requests")

    page.js("const s = document.getElementById('filter-listener'); s.value = 'db';"
            "s.dispatchEvent(new Event('change'))")
    rows = page.rows()
    assert rows and {r["listener"] for r in rows} == {"db"}
    page.js("const s = document.getElementById('filter-type'); s.value = 'request';"
            "s.dispatchEvent(new Event('change'))")
    rows = page.rows()
    assert [r["type"] for r in rows] == ["request"] * 3
    assert ["GET /db-2" in rows[0]["text"], "GET /db-0" in rows[2]["text"]] == [True, True]
    # new events meet the filters too
    assert get(page.srv, "/api-late", "api").status_code == 200
    assert get(page.srv, "/db-late", "db").status_code == 200
    page.wait(lambda: "GET /db-late" in page.rows()[0]["text"], "the new db request is not shown")
    assert all(r["listener"] == "db" and r["type"] == "request" for r in page.rows())


def test_dashboard_row_opens_to_show_its_fields(dash):
    page = dash(profile())
    page.wait_live()
    get(page.srv, "/fields")
    page.wait(lambda: any(r["type"] == "request" for r in page.rows()), "no request row")
    selector = '#event-list > li[data-type="request"] .summary'
    page.click(selector)
    shown = page.wait(lambda: page.js(
        "const pre = document.querySelector('#event-list > li[data-type=\"request\"] pre');"
        "return pre && pre.getClientRects().length > 0 ? pre.textContent : null"), "the row did not open")
    fields = json.loads(shown)
    event = next(e for e in page.srv.events(type="request") if e["id"] == fields["id"])
    assert fields == json.loads(json.dumps(event))
    assert fields["path"] == "/fields" and "fingerprint" in fields


def test_dashboard_highlights_retries(dash):
    rules = [{"name": "first-fails", "times": 1, "action": "close"}]
    page = dash(profile(listener("backend", rules=rules)))
    page.wait_live()
    port = page.srv["backend"].port
    with connect("127.0.0.1", port) as sock:  # the first sending meets a FIN
        sock.sendall(get_request("/pay"))
        assert recv_to_fin(sock) == b""
    with connect("127.0.0.1", port) as sock:  # the same request again, on a new connection
        sock.sendall(get_request("/pay"))
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    retry = wait_until(lambda: next((e for e in page.srv.events(type="request") if e.get("retry")), None),
                       what="no retry event")
    row = f'#event-list > li[data-id="{retry["id"]}"]'
    page.wait(lambda: page.text(row) != "", "the retry is not shown")
    assert "retry" in page.attr(row, "class").split()
    assert page.text(f"{row} .badge") == "retry"
    first = page.srv.events(type="request")[0]
    first_row = page.attr(f'#event-list > li[data-id="{first["id"]}"]', "class")
    assert first_row is not None and "retry" not in first_row.split()


def test_dashboard_pauses_the_events_while_scrolled(dash):
    page = dash(profile())
    page.wait_live()
    with httpx.Client(base_url=page.srv.url, timeout=5.0) as client:
        for i in range(80):
            client.get(f"/fill-{i}")
    page.wait(lambda: page.row_count() >= 160, "the rows did not arrive")
    page.js("const l = document.getElementById('event-list'); l.scrollTop = 400;")
    page.wait(lambda: page.text("#events-state").startswith("paused"), "scrolling does not pause")
    top = page.rows()[0]["id"]
    get(page.srv, "/while-paused")
    page.wait(lambda: "(0 new)" not in page.text("#events-state"), "the page does not count the new events")
    assert page.rows()[0]["id"] == top
    assert not any("/while-paused" in r["text"] for r in page.rows())
    page.click("#follow")
    page.wait(lambda: any("GET /while-paused" in r["text"] for r in page.rows()[:4]),
              "the new row after Follow")
    assert page.text("#events-state") == "following"


# --- actions -----------------------------------------------------------------------------


def test_dashboard_drop_ends_connections_with_fin_or_rst(dash):
    page = dash(profile())
    page.wait_live()
    port = page.srv["backend"].port
    card = page.card("backend")
    for how, ending in (("fin", "eof"), ("rst", "reset")):
        sock = connect("127.0.0.1", port)
        sock.sendall(get_request("/idle"))
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")  # now idle, kept alive
        page.wait(lambda: page.srv["backend"].open_connections == 1, "the connection is not counted")
        page.click(f'{card} [data-how="{how}"]')
        try:
            got = "eof" if sock.recv(1) == b"" else "data"
        except ConnectionResetError:
            got = "reset"
        finally:
            sock.close()
        assert got == ending, how
        page.wait(lambda how=how: page.text(f"{card} .drop-result") == f"1 dropped ({how})",
                  f"the page does not say what {how} dropped")
        page.wait(lambda: page.srv["backend"].open_connections == 0, "the connection is still counted")


def test_dashboard_pause_resume_and_panic(dash):
    phases = [{"duration": "60s"}, {"duration": "60s", "accept": "refuse"}]
    page = dash(profile(listener("backend", schedule={"phases": phases})))
    page.wait_live()
    page.wait(lambda: "backend: phase 1 of 2" in page.text("#phases"), "the phase is not shown")
    srv = page.srv

    page.click("#pause")
    page.wait(lambda: srv.state()["schedule"]["paused"] is True, "pause did nothing")
    page.wait(lambda: page.attr("#schedule", "data-paused") == "true", "the page does not show the pause")
    page.click("#resume")
    page.wait(lambda: srv.state()["schedule"]["paused"] is False, "resume did nothing")
    page.wait(lambda: page.attr("#schedule", "data-paused") == "false", "the page does not show the resume")

    page.click(f'{page.card("backend")} [data-mode="refuse"]')
    page.wait(lambda: srv["backend"].accept == "refuse", "refuse did nothing")
    page.click("#panic")
    page.wait(lambda: srv["backend"].accept == "open", "panic did not open the listener")
    assert srv.state()["schedule"]["paused"] is True
    assert [e["type"] for e in srv.events(type="panic")] == ["panic"]
    page.wait(lambda: page.attr(f'{page.card("backend")} [data-mode="open"]', "aria-pressed") == "true",
              "the page does not show open after the panic")


# --- sizes -------------------------------------------------------------------------------


def _horizontal_overflow(page: Page) -> int:
    """How far the body scrolls sideways, or any element of the page reaches past the
    viewport's right edge (px): a row's overflow would be clipped, not scrolled, so each
    element counts."""
    return int(page.js(
        "const width = document.documentElement.clientWidth;"
        "const body = Math.max(document.documentElement.scrollWidth, document.body.scrollWidth) - width;"
        "const reach = [...document.querySelectorAll('body *')].map(el => el.getBoundingClientRect())"
        " .filter(r => r.width > 0).map(r => Math.ceil(r.right) - width);"
        "return Math.max(body, ...reach)"))


def test_dashboard_fits_a_phone_and_a_laptop(dash):
    rules = [{"name": "a-rule-with-a-rather-long-name-for-a-phone", "match": {"path": "/slow"},
              "delay": "1ms", "action": "respond"}]
    page = dash(profile(listener("backend-with-a-long-name", rules=rules), listener("db")), size=PHONE)
    page.wait_live()
    assert page.js("return window.innerWidth") == PHONE[0]
    long_path = "/" + "x" * 300  # one word, no space to break at
    get(page.srv, long_path, "backend-with-a-long-name")
    get(page.srv, "/slow", "backend-with-a-long-name")
    page.wait(lambda: any(long_path in r["text"] for r in page.rows()), "the long path is not shown")
    page.js("document.querySelector('#event-list > li[data-type=request] .summary').click()")  # open too
    page.wait(lambda: page.js("return !!document.querySelector('#event-list pre')"), "the row did not open")
    # rows out of sight are not laid out (content-visibility): bring them into sight first
    page.js("document.getElementById('event-list').scrollIntoView()")
    page.js("return new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
    assert _horizontal_overflow(page) <= 0
    # one column: the events come below the listeners
    below = page.js("return document.getElementById('events').getBoundingClientRect().top >="
                    " document.getElementById('listeners').getBoundingClientRect().bottom")
    assert below is True

    page.emulate(LAPTOP, mobile=False)
    page.wait(lambda: page.js("return window.innerWidth") == LAPTOP[0], "the window did not grow")
    assert _horizontal_overflow(page) <= 0
    side = page.js("return document.getElementById('events').getBoundingClientRect().left >="
                   " document.getElementById('listeners').getBoundingClientRect().right")
    assert side is True


# --- a screenshot during a chaos run ---------------------------------------------------


@pytest.mark.slow
def test_dashboard_screenshot_during_the_chaos_profile(dash, tmp_path, record_property):
    """profiles/chaos.yaml into its fourth phase (503s, 30 s in) under steady traffic, then a
    screenshot, kept as this test's artifact (FAULTSERVER_UPDATE_SCREENSHOT=1: also written
    to docs/dashboard.png)."""
    page = dash(str(REPO / "profiles" / "chaos.yaml"))
    page.wait_live()
    srv = page.srv
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(timeout=httpx.Timeout(1.0, connect=0.5)) as client:
            i = 0
            while not stop.is_set():
                try:
                    # a connection per request: refuse and stall show, and so do repeats
                    client.get(f"{srv.url}/orders/{i % 7}",
                               headers={"x-request-id": f"r{i % 40}", "connection": "close"})
                except httpx.HTTPError:
                    time.sleep(0.05)
                i += 1
                time.sleep(0.02)

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    try:
        wait_until(lambda: any(e["phase"] == 3 for e in srv.events(type="phase")), timeout=45.0,
                   what="the 503 phase", interval=0.2)
        time.sleep(5.0)
        page.wait(lambda: page.attr(f'{page.card("backend")} [data-mode="open"]', "aria-pressed") == "true",
                  "the page does not show the phase's mode")
        page.wait(lambda: "phase 4 of 5" in page.text("#phases"), "the page does not show phase 4")
        page.wait(lambda: float(page.attr('[data-plot="faults"]', "data-last") or 0) > 0, "no faults plotted")
        shot = tmp_path / "dashboard-chaos.png"
        assert page.driver.save_screenshot(str(shot))
    finally:
        stop.set()
        worker.join(5.0)
    assert shot.read_bytes().startswith(b"\x89PNG")
    record_property("screenshot", str(shot))
    print(f"screenshot: {shot}")
    if os.environ.get("FAULTSERVER_UPDATE_SCREENSHOT") == "1":
        shutil.copy(shot, REPO / "docs" / "dashboard.png")
