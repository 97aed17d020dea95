"""The dashboard: `GET /` and its three assets, plain files shipped in `dashboard/`.

The page is static: it holds no data and no secret, and reads everything through the
admin API's own endpoints with the token the user types (kept in `sessionStorage`). So
its paths alone pass the guard without a token; `Host` and `Origin` are still checked
(`guard.py`), so a page of another site cannot load it through DNS rebinding either.

Every answer carries a Content-Security-Policy that allows scripts, styles, images and
connections from this origin only and nothing inline, and `nosniff`: a field of an event
(a path a client sent) can never run as script, and no other site may frame the page.
The files are read through `importlib.resources` once, on first use, so an installed
wheel serves them as the source tree does. No route takes a file name from the request.
"""

from __future__ import annotations

import functools
from importlib import resources

from quart import Response, request

__all__ = ["ASSETS", "PAGE_HEADERS", "PATHS", "asset", "serve_page"]

#: path -> (file in `dashboard/`, content type)
ASSETS: dict[str, tuple[str, str]] = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/dashboard/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
    "/dashboard/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
PATHS = frozenset(ASSETS)

#: The policy: this origin's files only, nothing inline, no frames, no form posts.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-cache"),
)


@functools.cache
def asset(name: str) -> bytes:
    """The bytes of one of the dashboard's files (from the installed package)."""
    return resources.files("faultserver._admin").joinpath("dashboard", name).read_bytes()


async def serve_page() -> Response:
    """The file of `ASSETS` registered at this request's path."""
    name, content_type = ASSETS[request.path]
    resp = Response(asset(name), content_type=content_type)
    for header, value in PAGE_HEADERS:
        resp.headers[header] = value
    return resp
