"""The dashboard in a real browser: Debian's headless Chromium, driven by Selenium through
Debian's chromedriver (`apt-get install -y chromium chromium-driver`; .ci/run does).

Selenium is given both binaries' paths, so Selenium Manager never runs (it would try to
download a driver). Each test gets a fresh browser profile, and its server through the
`faultserver` fixture (`faultserver.testing.running()` underneath), with the admin API.

`dash(profile)` starts both and opens the page; at the end of the test the browser's
console must hold no error (a test that expects some, the login's 401s, says so with
`page.expected_errors`). The page's state is read with small scripts that return plain
data, so that a row replaced meanwhile never raises a stale-element error.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.wait import wait_until

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
#: The timeout for anything that should happen (a browser on a shared machine is slow to start).
LONG_S = 10.0
LAPTOP = (1280, 900)
PHONE = (390, 844)


def _need_browser() -> Any:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium; .ci/run does)")
    if CHROMEDRIVER is None:
        pytest.skip("chromedriver is not installed (apt-get install -y chromium-driver; .ci/run does)")
    return pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')"
    )


def start_browser(profile_dir: Path, size: tuple[int, int] = LAPTOP) -> Any:
    """Headless Chromium with its console kept (`goog:loggingPrefs`) and no network of its own."""
    webdriver = _need_browser()
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={size[0]},{size[1]}",
        f"--user-data-dir={profile_dir}",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        "--disable-extensions",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


class Page:
    """The dashboard of one server, open in one browser."""

    def __init__(self, driver: Any, srv: Any) -> None:
        self.driver = driver
        self.srv = srv
        #: console errors the test expects (regexes); any other fails the test at its end
        self.expected_errors: list[str] = []
        self._console: list[dict[str, Any]] = []

    # --- reading the page ---------------------------------------------------------------

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def visible(self, selector: str) -> bool:
        return bool(self.js(
            "const el = document.querySelector(arguments[0]);"
            "return !!el && el.getClientRects().length > 0;", selector))

    def text(self, selector: str) -> str:
        return str(self.js("const el = document.querySelector(arguments[0]); return el ? el.textContent : ''",
                           selector))

    def attr(self, selector: str, name: str) -> str | None:
        value = self.js(
            "const el = document.querySelector(arguments[0]);"
            "return el ? el.getAttribute(arguments[1]) : null",
            selector, name)
        return None if value is None else str(value)

    def rows(self) -> list[dict[str, Any]]:
        """The event rows shown, newest first: id, type, listener, `what` (the summary's
        last part: `GET /path`), `text` (the whole summary line), classes."""
        return list(self.js(
            "return [...document.querySelectorAll('#event-list > li')].map(li => ({"
            " id: Number(li.dataset.id), type: li.dataset.type,"
            " text: li.querySelector('.summary').textContent,"
            " what: li.querySelector('.what').textContent,"
            " listener: li.querySelector('.listener').textContent, classes: li.className}))"))

    def row_count(self) -> int:
        return int(self.js("return document.querySelectorAll('#event-list > li').length"))

    def card(self, name: str) -> str:
        """The CSS selector of a listener's card."""
        return f'article.listener[data-name="{name}"]'

    def wait(
        self, predicate: Callable[[], Any], what: str | Callable[[], str], timeout: float = LONG_S
    ) -> Any:
        return wait_until(predicate, timeout=timeout, what=what, interval=0.02)

    def wait_live(self) -> None:
        """The page is following the event stream and has drawn every listener."""
        self.wait(lambda: self.attr("#status", "data-state") == "live",
                  lambda: f"the page is not live (status {self.text('#status')!r}, "
                  f"error {self.text('#error')!r})")
        for name in self.srv.listeners:
            self.wait(lambda name=name: self.text(f"{self.card(name)} .url") != "",
                      f"listener {name!r} is not shown")

    def emulate(self, size: tuple[int, int], mobile: bool) -> None:
        """Lay the page out at `size` (CSS pixels), as a phone when `mobile`: headless
        Chromium's window is at least 500 px wide, so a phone's width is emulated (DevTools'
        device metrics, as its device toolbar does)."""
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": mobile,
        })

    def click(self, selector: str) -> None:
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.CSS_SELECTOR, selector).click()

    def type_into(self, selector: str, text: str) -> None:
        from selenium.webdriver.common.by import By

        element = self.driver.find_element(By.CSS_SELECTOR, selector)
        element.clear()
        element.send_keys(text)

    # --- the console --------------------------------------------------------------------

    def console(self) -> list[dict[str, Any]]:
        """Every console entry so far (the driver hands each one out once: they are kept)."""
        self._console.extend(self.driver.get_log("browser"))
        return list(self._console)

    def console_errors(self) -> list[str]:
        return [entry["message"] for entry in self.console() if entry["level"] == "SEVERE"]

    def unexpected_errors(self) -> list[str]:
        return [message for message in self.console_errors()
                if not any(re.search(pattern, message) for pattern in self.expected_errors)]


@pytest.fixture
def dash(faultserver: Any, tmp_path: Path) -> Iterator[Callable[..., Page]]:
    """`page = dash(profile, token=None, size=LAPTOP, login=True)`: a server with its admin
    API, and its dashboard open in headless Chromium (after the login when there is a token
    and `login`). Every browser is closed before the servers stop."""
    _need_browser()
    pages: list[Page] = []

    def open_page(profile: Any, *, token: str | None = None, size: tuple[int, int] = LAPTOP,
                  login: bool = True) -> Page:
        srv = faultserver(profile, admin=True, token=token)
        driver = start_browser(tmp_path / f"chromium-{len(pages)}", LAPTOP)
        page = Page(driver, srv)
        pages.append(page)
        if size != LAPTOP:
            page.emulate(size, mobile=size[0] < 600)
        driver.get(srv.control_url + "/")
        if token is not None and login:
            page.wait(lambda: page.visible("#token"), "the login form is not shown")
            page.type_into("#token", token)
            page.click("#login-form button[type=submit]")
            page.expected_errors.append(r"status of 401")  # the first try, without the token
        return page

    yield open_page
    failures = []
    for page in pages:
        try:
            errors = page.unexpected_errors()
        except Exception as exc:  # the browser died: that is the failure to show
            errors = [f"cannot read the console: {exc!r}"]
        finally:
            page.driver.quit()
        if errors:
            failures.append(errors)
    if failures and sys.exc_info()[0] is None:
        pytest.fail(f"console errors in the page: {failures}")
