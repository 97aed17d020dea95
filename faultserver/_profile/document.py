"""The top level of a profile: `version`, `seed`, `fault_header`, `listeners`, `control`."""

from __future__ import annotations

import ipaddress
import re

from .binds import Binds
from .check import Checker, check_each
from .describe import did_you_mean
from .listener import check_listeners
from .model import TLS, CertificateMode, Control, Profile
from .nodes import BadNode, MapNode, Node, ScalarNode, SeqNode, describe, is_null, non_null, plain
from .tls import check_tls
from .values import build, check_header_name

__all__ = ["MAX_SEED", "MIN_SEED", "SUPPORTED_VERSIONS", "TOP_KEYS", "check_profile", "foreign_document"]

#: Profile versions this faultserver reads.
SUPPORTED_VERSIONS = (1,)
TOP_KEYS = ("version", "seed", "fault_header", "listeners", "control")
#: A seed is a 64-bit integer, signed or unsigned (negative seeds were always accepted).
MIN_SEED = -(2**63)
MAX_SEED = 2**64 - 1
CONTROL_KEYS = ("bind", "token", "allowed_hosts", "max_subscribers", "tls")
#: The most event-stream readers a profile may allow at once.
MAX_SUBSCRIBERS = 10_000
#: A DNS name: dot-separated labels of letters, digits and inner hyphens (a final dot allowed).
_DNS_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")
#: No key longer than this is close enough to a top-level key to be a typo of one.
_LONGEST_TYPO = 2 * max(len(key) for key in TOP_KEYS)


def check_profile(c: Checker, root: Node) -> Profile | None:
    """The whole profile, or None when anything in it (or in building it) was a problem."""
    foreign = foreign_document(root)
    if foreign is not None:
        c.problem(root, "", foreign, again=True)  # the only problem of such a document
        return None
    assert isinstance(root, MapNode)
    fields = c.fields(root, "", TOP_KEYS, required=("version", "listeners"))
    assert fields is not None
    binds = Binds()
    given: dict[str, object] = {}
    if "version" in fields:
        given["version"] = _check_version(c, fields["version"])
    if (seed := non_null(fields, "seed")) is not None:
        given["seed"] = c.integer(seed, "seed", sane=(MIN_SEED, MAX_SEED))
    if "fault_header" in fields:
        header = fields["fault_header"]
        given["fault_header"] = None if is_null(header) else check_header_name(c, header, "fault_header")
    if "control" in fields:
        given["control"] = _check_control(c, fields["control"], "control", binds)
    if "listeners" in fields:
        given["listeners"] = check_listeners(c, fields["listeners"], "listeners", binds)
    binds.check_clashes(c)
    if c.problems or c.errors:
        return None
    return build(Profile, {"source": c.source, "raw": plain(root), **given})


def foreign_document(root: Node) -> str | None:
    """The one problem of a document that is not a profile at all, or None.

    Such a document may be any file (someone's password file): its problem quotes
    nothing of it, and no other problem is reported. It is not a mapping, or a mapping none
    of whose keys is the format's (`version`, ..., an `x-` key) or a typo of one.
    """
    if not isinstance(root, MapNode):
        return f"expected a mapping at the top of the profile, got {_what_instead(root)}"
    keys = root.entries
    if keys and not any(_is_profile_key(key) for key in keys):
        return (
            f"expected a profile (a mapping of {', '.join(TOP_KEYS)}), "
            f"got a mapping with none of these keys"
        )
    return None


def _is_profile_key(key: str) -> bool:
    if key in TOP_KEYS or key.startswith("x-"):
        return True
    return len(key) <= _LONGEST_TYPO and did_you_mean(key, TOP_KEYS) is not None


def _what_instead(root: Node) -> str:
    """What the document is instead of a mapping, without quoting any of it: a file that is
    not a profile may be anything, a password file included."""
    if isinstance(root, ScalarNode):
        if root.value is None:
            return "an empty document" if root.text == "" else "null"
        if isinstance(root.value, bool):
            return "a boolean"
        return "a string" if isinstance(root.value, str) else "a number"
    if isinstance(root, BadNode):
        return "a value that YAML cannot read"
    return describe(root)


def _check_version(c: Checker, node: Node) -> int | None:
    value = node.value if isinstance(node, ScalarNode) else None
    if isinstance(value, int) and not isinstance(value, bool) and value in SUPPORTED_VERSIONS:
        return value
    supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
    message = f"unsupported version {describe(node)} (supported versions: {supported})"
    c.problem(node, "version", message)
    return None


def _check_control(c: Checker, node: Node, path: str, binds: Binds) -> Control | None:
    if is_null(node):
        return Control()
    mark = c.mark()
    fields = c.fields(node, path, CONTROL_KEYS)
    if fields is None:
        return None
    given: dict[str, object] = {}
    if (hosts := non_null(fields, "allowed_hosts")) is not None:
        given["allowed_hosts"] = _check_allowed_hosts(c, hosts, f"{path}.allowed_hosts")
    if (subscribers := non_null(fields, "max_subscribers")) is not None:
        given["max_subscribers"] = c.integer(subscribers, f"{path}.max_subscribers", 1, MAX_SUBSCRIBERS)
    if (bind := non_null(fields, "bind")) is not None:
        given["bind"] = binds.read(c, bind, path)
    if (token_node := non_null(fields, "token")) is not None:
        token = c.string(token_node, f"{path}.token", "a non-empty string or null")
        if token == "":
            c.problem(token_node, f"{path}.token", "expected a non-empty string or null, got ''")
        given["token"] = token
    if (tls := non_null(fields, "tls")) is not None:
        given["tls"] = _check_control_tls(c, tls, f"{path}.tls")
    return build(Control, given) if c.clean_since(mark) else None


def _check_control_tls(c: Checker, node: Node, path: str) -> TLS | None:
    """The admin API's TLS: a listener's keys, with a certificate that is meant to work."""
    tls = check_tls(c, node, path)
    if tls is not None and tls.certificate is not CertificateMode.VALID:
        assert isinstance(node, MapNode)
        c.problem(
            node.entries["certificate"][1],
            f"{path}.certificate",
            "the admin API shows a valid certificate (certificate faults are for listeners)",
        )
        return None
    return tls


def _check_allowed_hosts(c: Checker, node: Node, path: str) -> tuple[str, ...] | None:
    if not isinstance(node, SeqNode):
        c.problem(node, path, f"expected a list of host names, got {describe(node)}")
        return None
    return check_each(c, node, path, lambda item, where, _: _check_host_name(c, item, where))


def _check_host_name(c: Checker, node: Node, path: str) -> str | None:
    """A DNS name or an IP literal, as a `Host` header names it without its port; lower case."""
    text = c.string(node, path, "a host name")
    if text is None:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if len(text) > 253 or not _DNS_NAME.fullmatch(text):
        c.problem(
            node, path,
            f"expected a host name such as 'faultserver.internal' (no scheme, no port), got {describe(node)}",
        )
        return None
    return text.lower().rstrip(".")
