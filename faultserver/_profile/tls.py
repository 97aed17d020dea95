"""`tls` on a listener: the user's PEM pair, or a generated certificate and what it gets wrong.

The files a profile names are read here, at load time, so that a missing file, a key that
does not belong to its certificate or an unreadable CA is a located problem and nothing
starts. Paths are relative to the profile's folder (to the working folder for a profile
that is not a file).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping

from .check import Checker
from .model import TLS, CertificateMode, ClientAuth
from .nodes import MapNode, Node, ScalarNode, SeqNode, describe, is_null

__all__ = ["SERVED_ALPN", "TLS_KEYS", "TLS_VERSIONS", "check_ca_file", "check_tls", "pair_problem"]

TLS_KEYS = (
    "generate",
    "cert",
    "key",
    "names",
    "certificate",
    "min_version",
    "max_version",
    "alpn",
    "client_auth",
    "client_ca",
)
#: The versions a listener may be limited to, as written in a profile.
TLS_VERSIONS: Mapping[str, ssl.TLSVersion] = {
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}
#: The ALPN protocols a listener may offer: what it serves (`h2` only with `protocols: [h2]`:
#: the listener check says so).
SERVED_ALPN = ("h2", "http/1.1", "http/1.0")
#: A DNS name or IP literal a generated certificate may carry.
MAX_NAME_CHARS = 253
MAX_NAMES = 100


def check_tls(c: Checker, node: Node, path: str) -> TLS | None:
    """The `tls` mapping: either `generate: true` or `cert` and `key`, and the options."""
    if is_null(node):
        return None
    mark = c.mark()
    fields = c.fields(node, path, TLS_KEYS)
    if fields is None:
        return None
    assert isinstance(node, MapNode)
    given: dict[str, object] = {}
    generate = c.boolean(fields["generate"], f"{path}.generate") if "generate" in fields else False
    if generate:
        given["generate"] = True
        for key in ("cert", "key"):
            if key in fields:
                c.problem(
                    fields[key], f"{path}.{key}", f"'{key}' goes with a PEM pair, not with generate: true"
                )
        if "names" in fields:
            given["names"] = _check_names(c, fields["names"], f"{path}.names")
        if "certificate" in fields:
            given["certificate"] = c.member(
                fields["certificate"], f"{path}.certificate", list(CertificateMode), "certificate"
            )
    elif generate is not None:
        _check_pair(c, node, fields, path, given)
    for key in ("min_version", "max_version"):
        if key in fields:
            given[key] = _check_version(c, fields[key], f"{path}.{key}")
    low, high = given.get("min_version"), given.get("max_version")
    if isinstance(low, str) and isinstance(high, str) and TLS_VERSIONS[low] > TLS_VERSIONS[high]:
        c.problem(
            fields["max_version"], f"{path}.max_version", f"max_version {high} is below min_version {low}"
        )
    if "alpn" in fields:
        given["alpn"] = _check_alpn(c, fields["alpn"], f"{path}.alpn")
    _check_client_auth(c, fields, path, given)
    if not c.clean_since(mark):
        return None
    return TLS(**given)  # type: ignore[arg-type]


def _check_pair(
    c: Checker, node: MapNode, fields: Mapping[str, Node], path: str, given: dict[str, object]
) -> None:
    missing = [key for key in ("cert", "key") if key not in fields]
    if missing:
        c.problem(node, path, "expected generate: true, or both 'cert' and 'key' (PEM files)")
        return
    for key in ("names", "certificate"):
        if key in fields:
            c.problem(fields[key], f"{path}.{key}", f"'{key}' goes with generate: true, not with a PEM pair")
    mark = c.mark()
    cert = _check_file(c, fields["cert"], f"{path}.cert", "a certificate")
    key_path = _check_file(c, fields["key"], f"{path}.key", "a private key")
    if not c.clean_since(mark) or cert is None or key_path is None:
        return
    problem = pair_problem(cert, key_path)
    if problem is not None:
        c.problem(fields["key"], f"{path}.key", problem)
        return
    given["cert_path"] = cert
    given["key_path"] = key_path


def pair_problem(cert: str, key: str) -> str | None:
    """Why the TLS library cannot use this certificate and key together (None: it can)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            return f"the key {key} does not belong to the certificate {cert}"
        return f"cannot use {cert} with {key}: not a PEM certificate and its private key ({exc.reason})"
    except OSError as exc:
        return f"cannot read {cert} or {key}: {exc.strerror or exc}"
    return None


def _check_file(c: Checker, node: Node, path: str, what: str) -> str | None:
    """A readable regular file, as an absolute path (relative ones from the profile's folder)."""
    name = c.string(node, path, f"the path of {what} (PEM)")
    if name is None:
        return None
    base = os.path.dirname(os.path.abspath(c.source)) if not c.source.startswith("<") else os.getcwd()
    full = os.path.normpath(os.path.join(base, os.path.expanduser(name)))
    try:
        with open(full, "rb"):
            pass
    except OSError as exc:
        c.problem(node, path, f"cannot read {what} at {full}: {exc.strerror or exc}")
        return None
    if not os.path.isfile(full):
        c.problem(node, path, f"expected {what} file, got a folder or device at {full}")
        return None
    return full


def _check_names(c: Checker, node: Node, path: str) -> tuple[str, ...] | None:
    items = node.items if isinstance(node, SeqNode) else None
    if items is None or len(items) > MAX_NAMES:
        c.problem(
            node,
            path,
            f"expected a list of up to {MAX_NAMES} host names or IP addresses, got {describe(node)}",
        )
        return None
    names = []
    for i, item in enumerate(items):
        value = item.value if isinstance(item, ScalarNode) else None
        if (
            not isinstance(value, str)
            or not value
            or len(value) > MAX_NAME_CHARS
            or not value.isascii()
            or any(ch.isspace() or ch in "/\\" for ch in value)
        ):
            c.problem(item, f"{path}[{i}]", f"expected a host name or an IP address, got {describe(item)}")
            continue
        names.append(value.lower())
    return tuple(names)


def _check_version(c: Checker, node: Node, path: str) -> str | None:
    value = node.value if isinstance(node, ScalarNode) else None
    text = node.text if isinstance(node, ScalarNode) and node.text is not None else value
    if isinstance(value, float):
        text = f"{value:g}"  # `min_version: 1.2` is a YAML number
    if isinstance(text, str) and text in TLS_VERSIONS:
        return text
    c.problem(node, path, f'expected a TLS version, "1.2" or "1.3", got {describe(node)}')
    return None


def _check_alpn(c: Checker, node: Node, path: str) -> tuple[str, ...] | None:
    items = node.items if isinstance(node, SeqNode) else None
    if not items:
        c.problem(
            node, path, f"expected a non-empty list of protocols such as [http/1.1], got {describe(node)}"
        )
        return None
    protocols = []
    for i, item in enumerate(items):
        value = item.value if isinstance(item, ScalarNode) else None
        if value not in SERVED_ALPN:
            c.problem(
                item,
                f"{path}[{i}]",
                f"expected one of: {', '.join(SERVED_ALPN)} (what this listener serves), "
                f"got {describe(item)}",
            )
            continue
        assert isinstance(value, str)
        protocols.append(value)
    return tuple(protocols)


def _check_client_auth(c: Checker, fields: Mapping[str, Node], path: str, given: dict[str, object]) -> None:
    auth = ClientAuth.NONE
    if "client_auth" in fields:
        auth = c.member(fields["client_auth"], f"{path}.client_auth", list(ClientAuth), "client_auth") or auth
        given["client_auth"] = auth
    if "client_ca" in fields:
        ca = _check_file(c, fields["client_ca"], f"{path}.client_ca", "a CA certificate")
        if ca is not None:
            problem = _ca_problem(ca)
            if problem is not None:
                c.problem(fields["client_ca"], f"{path}.client_ca", problem)
            given["client_ca_path"] = ca
    elif auth is not ClientAuth.NONE:
        node = fields["client_auth"]
        c.problem(
            node,
            f"{path}.client_auth",
            f"client_auth: {auth.value} needs client_ca (the CA that signs client certificates)",
        )


def check_ca_file(c: Checker, node: Node, path: str) -> str | None:
    """A readable file of PEM CA certificates, as an absolute path (proxy mode's
    `upstream_tls.ca`)."""
    full = _check_file(c, node, path, "a CA certificate")
    problem = _ca_problem(full) if full is not None else None
    if problem is not None:
        c.problem(node, path, problem)
        return None
    return full


def _ca_problem(path: str) -> str | None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_verify_locations(cafile=path)
    except (ssl.SSLError, OSError) as exc:
        return f"cannot use {path} as a CA file (PEM certificates): {exc}"
    return None
