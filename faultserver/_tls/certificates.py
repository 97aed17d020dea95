"""Throwaway certificate authorities, one leaf certificate per certificate fault, a user's PEM pair.

Theory of operation. `Authority.generate()` makes the CA a client is told to trust
(`ca_pem`, written to a file by `write_ca`). `authority.issue(names, mode)` makes the leaf a
listener shows; each `CertificateMode` but `VALID` makes a certificate that fails
verification for exactly one reason, for a client that trusts `ca_pem` and connects to one
of `names`:

    valid          signed by the authority, SAN = names, valid now           verifies
    expired        as valid, but its validity ended a day ago                 X509 error 10
    not_yet_valid  as valid, but its validity starts in a day                 X509 error 9
    wrong_host     signed by the authority, SAN = wrong-host.invalid only     hostname mismatch
    self_signed    the leaf signs itself                                      X509 error 18
    untrusted_ca   signed by another CA, one no client is told about          X509 error 20

The chain a listener sends is the leaf alone, in every mode: the client holds the root it
trusts, and the untrusted CA must stay unsent (sent, it turns error 20 into error 19,
"self-signed certificate in certificate chain").

Cost. Keys are EC P-256: one takes 30 µs to make, where RSA-2048 takes 50 to 100 ms, and
every TLS client of the last decade takes them. An authority makes its leaf key once and
signs each certificate with it; `issue` then only builds and signs one certificate (about
0.2 ms), cheap enough for start-up and for a live switch of `tls.certificate`. The
untrusted CA is made once per process. Reusing one leaf key across modes is sound here:
what a client checks (validity, names, issuer) lives in the certificate, never in the key,
and the key never leaves the process. A client that pins the public key (curl
`--pinnedpubkey`) sees the same key in every mode, which is what a renewed certificate
looks like too.

Time is an argument (`now`), the wall clock by default.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .._errors import FaultserverError
from .._profile.model import CertificateMode  # one enum: the profile's `tls.certificate` values

__all__ = [
    "BACKDATE",
    "DEFAULT_CA_NAME",
    "FAULT_MARGIN",
    "MAX_PEM_BYTES",
    "VALID_FOR",
    "WRONG_HOST_NAME",
    "Authority",
    "CertificateMode",
    "CertifiedKey",
    "TLSMaterialError",
    "load_pair",
    "write_ca",
]

DEFAULT_CA_NAME = "faultserver throwaway CA"
#: How far before `now` a certificate's validity starts: a client whose clock runs a little
#: behind the server's still accepts it.
BACKDATE = timedelta(hours=1)
#: How long a valid leaf lasts. The CA lasts ten times as long, so a leaf issued late in a
#: long run still ends before its issuer does.
VALID_FOR = timedelta(days=30)
#: How far outside its validity an expired or not-yet-valid leaf is: far more than any
#: client's clock skew, and no run crosses the edge by itself.
FAULT_MARGIN = timedelta(days=1)
#: The only name a `wrong_host` leaf carries. `.invalid` is reserved (RFC 2606): no client
#: ever connects to it.
WRONG_HOST_NAME = "wrong-host.invalid"
#: A PEM file larger than this is refused unread: a certificate chain is a few KiB.
MAX_PEM_BYTES = 1024 * 1024

_CURVE = ec.SECP256R1()
_HASH = hashes.SHA256()
_UNTRUSTED_CA_NAME = "faultserver untrusted CA (no client trusts it)"
_SWAPPED = " (it holds {}: are the certificate and key swapped?)"
#: A CN is at most 64 characters (RFC 5280 ub-common-name).
_CN_MAX = 64


class TLSMaterialError(FaultserverError):
    """A certificate or key file that cannot be used, or a CA file that cannot be written.

    The message is one line without a location, naming the file and what is wrong with it
    (`cert.pem: not a PEM certificate: ...`); the profile loader puts the location in front.
    """


@dataclass(frozen=True, slots=True)
class CertifiedKey:
    """A certificate chain and its private key: what a listener's `ssl.SSLContext` loads.

    `chain_pem`: the leaf first, then any certificate a client needs to reach its root (none
    for a generated leaf; a user's file as given). `key_pem`: the leaf's private key,
    unencrypted PKCS#8. `not_before`, `not_after`: the leaf's validity, aware UTC datetimes.
    `sha256`: the leaf's SHA-256 fingerprint (of its DER), upper-case hex pairs joined by
    colons, as `openssl x509 -noout -fingerprint -sha256` prints it. `names`: the leaf's
    subject alternative names, DNS names and IP addresses in certificate order. `mode`: the
    fault it was issued for; None for a user's own pair.
    """

    chain_pem: bytes
    key_pem: bytes
    not_before: datetime
    not_after: datetime
    sha256: str
    names: tuple[str, ...]
    mode: CertificateMode | None

    def describe(self) -> dict[str, object]:
        """JSON-ready, for `GET /listeners` and events: mode, names, validity, fingerprint."""
        return {
            "mode": None if self.mode is None else self.mode.value,
            "names": list(self.names),
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "sha256": self.sha256,
        }

    def load_into(self, context: ssl.SSLContext) -> None:
        """Load the chain and key into a server context.

        `ssl` loads certificates from files only: they pass through a private temporary
        directory (mode 0700) that is removed before this returns.
        """
        with tempfile.TemporaryDirectory(prefix="faultserver-tls-") as private:
            chain_path = os.path.join(private, "chain.pem")
            key_path = os.path.join(private, "key.pem")
            _write_file(chain_path, self.chain_pem, 0o600)
            _write_file(key_path, self.key_pem, 0o600)
            context.load_cert_chain(chain_path, key_path)

    def __repr__(self) -> str:
        mode = "user pair" if self.mode is None else self.mode.value
        return f"<CertifiedKey {mode} {', '.join(self.names)} sha256={self.sha256[:11]}...>"


class Authority:
    """A throwaway CA: the one a client is told to trust (`ca_pem`), and the leaves it issues."""

    __slots__ = ("_certificate", "_key", "_leaf_key", "_leaf_key_pem", "ca_pem")

    def __init__(
        self,
        certificate: x509.Certificate,
        key: ec.EllipticCurvePrivateKey,
        leaf_key: ec.EllipticCurvePrivateKey,
    ) -> None:
        """Use `Authority.generate()`: this takes a CA certificate, its key and the leaves' key."""
        self._certificate = certificate
        self._key = key
        self._leaf_key = leaf_key
        self._leaf_key_pem = _key_pem(leaf_key)
        #: The CA certificate in PEM: what a client's `cafile`/`--cacert`/`verify=` holds.
        self.ca_pem = certificate.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def generate(cls, common_name: str = DEFAULT_CA_NAME, *, now: datetime | None = None) -> Authority:
        """A new CA with a fresh key, valid from `now` (less `BACKDATE`) for 300 days."""
        now = _utc(now)
        key = ec.generate_private_key(_CURVE)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:_CN_MAX])])
        public = key.public_key()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + 10 * VALID_FOR)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, _HASH)
        )
        return cls(certificate, key, ec.generate_private_key(_CURVE))

    def to_pems(self) -> tuple[bytes, bytes, bytes]:
        """The CA certificate, its key and the leaves' key, in PEM (`from_pems` reads them):
        how a `run --workers N` parent gives each worker the CA its clients were told to trust."""
        return self.ca_pem, _key_pem(self._key), self._leaf_key_pem

    @classmethod
    def from_pems(cls, pems: tuple[bytes, bytes, bytes]) -> Authority:
        ca_pem, key_pem, leaf_key_pem = pems
        key = serialization.load_pem_private_key(key_pem, password=None)
        leaf_key = serialization.load_pem_private_key(leaf_key_pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert isinstance(leaf_key, ec.EllipticCurvePrivateKey)
        return cls(x509.load_pem_x509_certificate(ca_pem), key, leaf_key)

    def issue(
        self,
        names: Sequence[str],
        mode: CertificateMode = CertificateMode.VALID,
        *,
        now: datetime | None = None,
    ) -> CertifiedKey:
        """A leaf for `names` (DNS names and IP addresses) that fails verification as `mode` says.

        ValueError when `names` is empty or holds something neither an IP address nor an
        ASCII DNS name.
        """
        mode = CertificateMode(mode)
        now = _utc(now)
        wanted = _alt_names(names)
        start, end = now - BACKDATE, now + VALID_FOR
        if mode is CertificateMode.EXPIRED:
            start, end = now - VALID_FOR - FAULT_MARGIN, now - FAULT_MARGIN
        elif mode is CertificateMode.NOT_YET_VALID:
            start, end = now + FAULT_MARGIN, now + FAULT_MARGIN + VALID_FOR
        shown = _alt_names([WRONG_HOST_NAME]) if mode is CertificateMode.WRONG_HOST else wanted
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names_of(shown)[0][:_CN_MAX])])
        leaf_public = self._leaf_key.public_key()
        # A self-signed leaf keeps a leaf's shape (CA:FALSE, no keyCertSign) and differs from a
        # valid one by its issuer alone: OpenSSL reports it as error 18 all the same, and
        # clients that refuse a CA certificate as a leaf (rustls: CaUsedAsEndEntity) still
        # report an unknown issuer.
        if mode is CertificateMode.SELF_SIGNED:
            issuer_name, issuer_key = subject, self._leaf_key
        else:
            issuer = _untrusted_authority() if mode is CertificateMode.UNTRUSTED_CA else self
            issuer_name, issuer_key = issuer._certificate.subject, issuer._key
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(leaf_public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(shown), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
            )
            .sign(issuer_key, _HASH)
        )
        return CertifiedKey(
            chain_pem=certificate.public_bytes(serialization.Encoding.PEM),
            key_pem=self._leaf_key_pem,
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            sha256=_fingerprint(certificate),
            names=names_of(shown),
            mode=mode,
        )

    def __repr__(self) -> str:
        common_name = self._certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        return f"<Authority {common_name!r}>"


def load_pair(cert_path: str, key_path: str) -> CertifiedKey:
    """A user's certificate chain (PEM, leaf first) and its unencrypted private key (PEM).

    TLSMaterialError when a file cannot be read, holds no PEM certificate (or key), the key
    is encrypted, or the key is not the leaf's. An expired or otherwise unverifiable
    certificate is taken as is: the user asked for it.
    """
    cert_data = _read_pem(cert_path, "certificate")
    key_data = _read_pem(key_path, "private key")
    try:
        chain = x509.load_pem_x509_certificates(cert_data)
    except ValueError:
        hint = _SWAPPED.format("a private key") if b"PRIVATE KEY-" in cert_data else ""
        raise TLSMaterialError(
            f"{cert_path}: not a PEM certificate: expected a '-----BEGIN CERTIFICATE-----' block{hint}"
        ) from None
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except TypeError:  # cryptography's word for "encrypted, and no password given"
        raise TLSMaterialError(
            f"{key_path}: the private key is encrypted; faultserver needs it unencrypted "
            f"(openssl pkey -in {key_path} -out PLAIN.pem)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        hint = _SWAPPED.format("a certificate") if b"CERTIFICATE-" in key_data else ""
        raise TLSMaterialError(
            f"{key_path}: not a PEM private key: expected a '-----BEGIN PRIVATE KEY-----' block{hint}"
        ) from None
    if _spki(key.public_key()) != _spki(chain[0].public_key()):
        raise TLSMaterialError(f"{key_path}: the private key does not match the certificate in {cert_path}")
    if not isinstance(key, _SIGNING_KEYS):
        raise TLSMaterialError(f"{key_path}: a {type(key).__name__} cannot sign a TLS handshake")
    pem = serialization.Encoding.PEM
    return CertifiedKey(
        chain_pem=b"".join(certificate.public_bytes(pem) for certificate in chain),
        key_pem=_key_pem(key),
        not_before=chain[0].not_valid_before_utc,
        not_after=chain[0].not_valid_after_utc,
        sha256=_fingerprint(chain[0]),
        names=names_of(_san(chain[0])),
        mode=None,
    )


def write_ca(authority: Authority, directory: str, listener_name: str) -> str:
    """Write `authority.ca_pem` to `<directory>/<listener_name>-ca.pem`, mode 0644; its path.

    The directory is the caller's, already made. A file already there is replaced.
    ValueError for a listener name that is not a plain file name part; TLSMaterialError
    when the file cannot be written.
    """
    if not listener_name or os.sep in listener_name or listener_name in (".", ".."):
        raise ValueError(f"listener name {listener_name!r} cannot be part of a file name")
    path = os.path.join(directory, f"{listener_name}-ca.pem")
    try:
        _write_file(path, authority.ca_pem, 0o644)
    except OSError as exc:
        raise TLSMaterialError(f"{path}: cannot write the CA certificate: {exc.strerror or exc}") from None
    return path


def names_of(alt_names: Sequence[x509.GeneralName]) -> tuple[str, ...]:
    """The DNS names and IP addresses among subject alternative names, as text."""
    found: list[str] = []
    for name in alt_names:
        if isinstance(name, x509.DNSName | x509.IPAddress):
            found.append(str(name.value))
    return tuple(found)


# --- helpers --------------------------------------------------------------------------

# Key types OpenSSL can sign a handshake with (TLS 1.2 and 1.3); DH and X25519 keys cannot.
_SIGNING_KEYS = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
    dsa.DSAPrivateKey,
)


@functools.cache
def _untrusted_authority() -> Authority:
    """The issuer of `untrusted_ca` leaves: one per process, its certificate never written."""
    return Authority.generate(_UNTRUSTED_CA_NAME)


def _alt_names(names: Sequence[str]) -> list[x509.GeneralName]:
    if isinstance(names, str) or not names:
        raise ValueError(f"a certificate needs a list of one or more names, not {names!r}")
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
            continue
        except ValueError:
            pass
        if not name or not name.isascii() or any(c.isspace() or c in "/:@" for c in name):
            raise ValueError(f"{name!r} is neither an IP address nor an ASCII DNS name")
        alt_names.append(x509.DNSName(name))
    return alt_names


def _san(certificate: x509.Certificate) -> list[x509.GeneralName]:
    try:
        return list(certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    """digitalSignature (what an ECDHE handshake signs with), plus keyCertSign and cRLSign for a CA."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: CertificateIssuerPrivateKeyTypes | dsa.DSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _spki(public: object) -> bytes:
    to_bytes = getattr(public, "public_bytes", None)
    if to_bytes is None:
        return b""
    spki: bytes = to_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return spki


def _fingerprint(certificate: x509.Certificate) -> str:
    digest = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _read_pem(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_PEM_BYTES + 1)
    except OSError as exc:
        raise TLSMaterialError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    if len(data) > MAX_PEM_BYTES:
        raise TLSMaterialError(f"{path}: larger than {MAX_PEM_BYTES} bytes, not a PEM {what}")
    return data


def _write_file(path: str, data: bytes, mode: int) -> None:
    """Write `data` to `path` with exactly `mode` (whatever the umask); never through a symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb", closefd=False) as file:
            file.write(data)
    finally:
        os.close(fd)


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError(f"now must be an aware datetime, not {now!r}")
    return now.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
