"""A TLS listener's run-time state: its CA, the certificate in force and the server context.

One `ListenerTLS` lives as long as its listener, across reloads, so that a client told to
trust a generated CA keeps trusting it: a reload or a certificate switch issues a new leaf
from the same throwaway CA. Switching the certificate builds a new `ssl.SSLContext`; a
handshake uses the context in force when it starts, so connections already made keep theirs.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import shutil
import ssl
import tempfile
from collections.abc import Sequence

from .._profile.model import TLS, CertificateMode, ClientAuth, Protocol
from .._profile.tls import TLS_VERSIONS
from .certificates import Authority, CertifiedKey, load_pair, write_ca

__all__ = ["CAFiles", "ListenerTLS", "certificate_names"]

_VERIFY = {ClientAuth.OPTIONAL: ssl.CERT_OPTIONAL, ClientAuth.REQUIRED: ssl.CERT_REQUIRED}


class CAFiles:
    """Where generated CAs are written: a folder the user chose (`--ca-dir`), kept, or a
    private temporary folder, removed by `remove()` at exit."""

    def __init__(self, directory: str | None = None) -> None:
        self._given = directory
        self._made: str | None = None
        #: listener name -> the CA its certificates come from, instead of a new one
        #: (`run --workers N`: every worker issues from the parent's CA)
        self.authorities: dict[str, Authority] = {}

    @property
    def directory(self) -> str:
        if self._given is not None:
            os.makedirs(self._given, exist_ok=True)
            return self._given
        if self._made is None:
            self._made = tempfile.mkdtemp(prefix="faultserver-ca-")
        return self._made

    def remove(self) -> None:
        if self._made is not None:
            shutil.rmtree(self._made, ignore_errors=True)
            self._made = None


def certificate_names(host: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """What a generated certificate is for: the listener's host (unless a wildcard
    address), localhost, 127.0.0.1, ::1, then the profile's `names`, each once."""
    wanted = []
    try:
        if not ipaddress.ip_address(host).is_unspecified:
            wanted.append(host)
    except ValueError:
        wanted.append(host)
    wanted += ["localhost", "127.0.0.1", "::1", *names]
    return tuple(dict.fromkeys(name.lower() for name in wanted))


class ListenerTLS:
    """The CA (when generated), the certificate in force and the context handshakes use."""

    def __init__(self, name: str, host: str, files: CAFiles) -> None:
        self.name = name
        self.host = host
        self._files = files
        self.authority: Authority | None = None
        #: the generated CA's file, for clients to trust (None: the user's own certificate)
        self.ca_path: str | None = None
        self.config = TLS()
        self.certified: CertifiedKey | None = None
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        #: what each certificate mode was issued as (a schedule switches back and forth)
        self._made: dict[CertificateMode, tuple[CertifiedKey, ssl.SSLContext]] = {}

    def configure(self, config: TLS, protocols: Sequence[Protocol] = (Protocol.HTTP1,)) -> None:
        """Put `config` in force (a start or a reload); a generated CA is made once. ALPN
        offers `config.alpn`, or else the listener's `protocols`, h2 first."""
        if not config.alpn:
            offered = sorted((p.value for p in protocols), key=lambda name: name != "h2")
            config = dataclasses.replace(config, alpn=tuple(offered))
        if config.generate:
            if self.authority is None:
                self.authority = self._files.authorities.get(self.name) or Authority.generate(
                    f"faultserver throwaway CA for {self.name}"
                )
                self.ca_path = write_ca(self.authority, self._files.directory, self.name)
            certified = self.authority.issue(certificate_names(self.host, config.names), config.certificate)
        else:
            assert config.cert_path is not None and config.key_path is not None
            certified = load_pair(config.cert_path, config.key_path)
        self.context = server_context(config, certified)
        self.config, self.certified = config, certified
        self._made = {config.certificate: (certified, self.context)} if config.generate else {}

    @property
    def mode(self) -> CertificateMode | None:
        """The generated certificate's mode in force (None: the user's own certificate)."""
        return self.certified.mode if self.certified is not None else None

    def use_certificate(self, mode: CertificateMode) -> None:
        """Show a certificate made for `mode` from the next handshake on (generated only);
        each mode is issued once per configuration, then reused."""
        if self.authority is None:
            raise ValueError(
                f"listener {self.name} serves its own certificate (cert, key); only a "
                "listener with generate: true can switch certificates"
            )
        made = self._made.get(mode)
        if made is None:
            certified = self.authority.issue(certificate_names(self.host, self.config.names), mode)
            made = self._made[mode] = (certified, server_context(self.config, certified))
        self.certified, self.context = made

    def describe_sha256(self) -> str:
        """The fingerprint of the certificate in force."""
        assert self.certified is not None
        return self.certified.sha256

    def describe(self) -> dict[str, object]:
        """JSON-ready, for `GET /listeners`."""
        config = self.config
        assert self.certified is not None
        return {
            "generated": config.generate,
            "ca": self.ca_path,
            "min_version": config.min_version,
            "max_version": config.max_version,
            "alpn": list(config.alpn),
            "client_auth": config.client_auth.value,
            "certificate": self.certified.describe(),
        }


def server_context(config: TLS, certified: CertifiedKey) -> ssl.SSLContext:
    """The server side of every handshake: versions, ALPN, client certificates, the chain."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if config.min_version is not None:
        context.minimum_version = TLS_VERSIONS[config.min_version]
    if config.max_version is not None:
        context.maximum_version = TLS_VERSIONS[config.max_version]
    context.set_alpn_protocols(list(config.alpn))
    if config.client_auth is not ClientAuth.NONE:
        context.verify_mode = _VERIFY[config.client_auth]
        context.load_verify_locations(cafile=config.client_ca_path)
    certified.load_into(context)
    return context
