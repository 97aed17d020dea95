"""Throwaway CAs and certificate faults, asserted as real clients report them; a user's PEM pair.

Each certificate mode is served by a real TLS server on 127.0.0.1 (the stdlib `ssl` in a
thread), and the test asserts what a client that trusts the authority's CA sees: Python's
`ssl.SSLCertVerificationError` (`verify_code`, `verify_message`), and curl's exit code and
message. The expected texts are OpenSSL 3's and curl 7.88's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import stat
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from ipaddress import ip_address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from faultserver._tls import Authority, CertificateMode, CertifiedKey, TLSMaterialError, load_pair, write_ca
from faultserver._tls.certificates import BACKDATE, FAULT_MARGIN, VALID_FOR, WRONG_HOST_NAME

NAMES = ("127.0.0.1", "::1", "localhost")
TIMEOUT_S = 10.0
NOW = datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)

Mode = CertificateMode


@pytest.fixture(scope="module")
def authority() -> Authority:
    return Authority.generate()


@pytest.fixture(scope="module")
def ca_file(authority: Authority, tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_ca(authority, str(tmp_path_factory.mktemp("ca")), "backend")


@contextmanager
def serving(certified: CertifiedKey) -> Iterator[int]:
    """A TLS server on 127.0.0.1 that answers `200 ok` to anyone who completes a handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certified.load_into(context)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # the listener was closed: the test is over
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.settimeout(TIMEOUT_S)
                    tls.recv(4096)
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            except (OSError, ssl.SSLError):
                conn.close()  # the client refused the certificate, as it should

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (close alone does not, on Linux)
        listener.close()
        thread.join(TIMEOUT_S)


def python_verdict(port: int, ca_pem: bytes, host: str) -> tuple[int, str] | None:
    """None when the handshake verifies, else what `ssl` says: (verify_code, verify_message)."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw:
            with context.wrap_socket(raw, server_hostname=host):
                return None
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_code, exc.verify_message


PYTHON_VERDICTS = {
    Mode.VALID: None,
    Mode.EXPIRED: (10, "certificate has expired"),
    Mode.NOT_YET_VALID: (9, "certificate is not yet valid"),
    Mode.WRONG_HOST: (64, "IP address mismatch, certificate is not valid for '127.0.0.1'."),
    Mode.SELF_SIGNED: (18, "self-signed certificate"),
    Mode.UNTRUSTED_CA: (20, "unable to get local issuer certificate"),
}


@pytest.mark.parametrize(("mode", "verdict"), PYTHON_VERDICTS.items(), ids=[m.value for m in PYTHON_VERDICTS])
def test_certificate_mode_python_ssl_verdict(
    authority: Authority, mode: CertificateMode, verdict: tuple[int, str] | None
) -> None:
    with serving(authority.issue(NAMES, mode)) as port:
        assert python_verdict(port, authority.ca_pem, "127.0.0.1") == verdict
        by_name = verdict
        if mode is Mode.WRONG_HOST:
            by_name = (62, "Hostname mismatch, certificate is not valid for 'localhost'.")
        assert python_verdict(port, authority.ca_pem, "localhost") == by_name


def test_certificate_mode_strict_python_client_agrees(authority: Authority) -> None:
    # Python 3.13's default context adds VERIFY_X509_STRICT; each certificate passes it, so
    # a strict client fails for the same reason as any other
    for mode, verdict in PYTHON_VERDICTS.items():
        with serving(authority.issue(NAMES, mode)) as port:
            context = ssl.create_default_context(cadata=authority.ca_pem.decode())
            context.verify_flags |= ssl.VERIFY_X509_STRICT
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw:
                    context.wrap_socket(raw, server_hostname="127.0.0.1").close()
                seen = None
            except ssl.SSLCertVerificationError as exc:
                seen = (exc.verify_code, exc.verify_message)
            assert seen == verdict, mode


CURL_VERDICTS = {
    Mode.VALID: (0, ""),
    Mode.EXPIRED: (60, "curl: (60) SSL certificate problem: certificate has expired"),
    Mode.NOT_YET_VALID: (60, "curl: (60) SSL certificate problem: certificate is not yet valid"),
    Mode.WRONG_HOST: (
        60, "curl: (60) SSL: no alternative certificate subject name matches target host name '127.0.0.1'"
    ),
    Mode.SELF_SIGNED: (60, "curl: (60) SSL certificate problem: self-signed certificate"),
    Mode.UNTRUSTED_CA: (60, "curl: (60) SSL certificate problem: unable to get local issuer certificate"),
}


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize(("mode", "verdict"), CURL_VERDICTS.items(), ids=[m.value for m in CURL_VERDICTS])
def test_certificate_mode_curl_verdict(
    authority: Authority, ca_file: str, mode: CertificateMode, verdict: tuple[int, str]
) -> None:
    with serving(authority.issue(NAMES, mode)) as port:
        done = subprocess.run(
            ["curl", "-sS", "--max-time", "10", "--cacert", ca_file, f"https://127.0.0.1:{port}/"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S + 5,
        )
    first_line = done.stderr.partition("\n")[0]
    assert (done.returncode, first_line) == verdict, done.stderr
    assert done.stdout == ("ok" if mode is Mode.VALID else "")


# --- what each mode issues ------------------------------------------------------------------


def test_authority_issue_validity_per_mode(authority: Authority) -> None:
    windows = {mode: authority.issue(NAMES, mode, now=NOW) for mode in Mode}
    valid = (NOW - BACKDATE, NOW + VALID_FOR)
    assert {mode: (c.not_before, c.not_after) for mode, c in windows.items()} == {
        Mode.VALID: valid,
        Mode.EXPIRED: (NOW - VALID_FOR - FAULT_MARGIN, NOW - FAULT_MARGIN),
        Mode.NOT_YET_VALID: (NOW + FAULT_MARGIN, NOW + FAULT_MARGIN + VALID_FOR),
        Mode.WRONG_HOST: valid,
        Mode.SELF_SIGNED: valid,
        Mode.UNTRUSTED_CA: valid,
    }


def test_authority_issue_names_and_issuers(authority: Authority) -> None:
    ca = x509.load_pem_x509_certificate(authority.ca_pem)
    leaves = {mode: leaf_of(authority.issue(NAMES, mode)) for mode in Mode}
    assert authority.issue(NAMES).names == NAMES
    assert authority.issue(NAMES, Mode.WRONG_HOST).names == (WRONG_HOST_NAME,)
    alt_names = leaves[Mode.VALID].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert alt_names.get_values_for_type(x509.IPAddress) == [ip_address("127.0.0.1"), ip_address("::1")]
    assert alt_names.get_values_for_type(x509.DNSName) == ["localhost"]
    for mode in (Mode.VALID, Mode.EXPIRED, Mode.NOT_YET_VALID, Mode.WRONG_HOST):
        leaves[mode].verify_directly_issued_by(ca)
    self_signed = leaves[Mode.SELF_SIGNED]
    self_signed.verify_directly_issued_by(self_signed)
    assert leaves[Mode.UNTRUSTED_CA].issuer not in (ca.subject, self_signed.subject)
    # one untrusted CA per process, and one leaf key per authority
    assert leaf_of(authority.issue(["a.test"], Mode.UNTRUSTED_CA)).issuer == leaves[Mode.UNTRUSTED_CA].issuer
    assert len({authority.issue(NAMES, mode).key_pem for mode in Mode}) == 1
    assert Authority.generate().issue(NAMES).key_pem != authority.issue(NAMES).key_pem


def test_authority_issue_chain_is_the_leaf_alone(authority: Authority) -> None:
    for mode in Mode:
        assert len(x509.load_pem_x509_certificates(authority.issue(NAMES, mode).chain_pem)) == 1


def test_certified_key_describe_is_json_ready(authority: Authority) -> None:
    certified = authority.issue(NAMES, Mode.EXPIRED, now=NOW)
    leaf = leaf_of(certified)
    assert certified.sha256 == ":".join(f"{b:02X}" for b in leaf.fingerprint(hashes.SHA256()))
    assert json.loads(json.dumps(certified.describe())) == {
        "mode": "expired",
        "names": ["127.0.0.1", "::1", "localhost"],
        "not_before": "2030-05-01T12:00:00Z",
        "not_after": "2030-05-31T12:00:00Z",
        "sha256": certified.sha256,
    }
    assert "PRIVATE" not in repr(certified)  # a log line never shows the key


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ([], r"^a certificate needs a list of one or more names, not \[\]$"),
        ("localhost", r"^a certificate needs a list of one or more names, not 'localhost'$"),
        (["café.test"], r"^'café.test' is neither an IP address nor an ASCII DNS name$"),
        (["a b"], r"^'a b' is neither an IP address nor an ASCII DNS name$"),
        ([""], r"^'' is neither an IP address nor an ASCII DNS name$"),
    ],
)
def test_authority_issue_rejects_bad_names(authority: Authority, names: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        authority.issue(names)


def test_authority_issue_accepts_a_mode_by_its_value(authority: Authority) -> None:
    assert authority.issue(NAMES, "expired").mode is Mode.EXPIRED  # type: ignore[arg-type]


# --- write_ca -------------------------------------------------------------------------------


def test_write_ca_writes_a_public_file(authority: Authority, tmp_path: Path) -> None:
    (tmp_path / "backend-ca.pem").write_bytes(b"old")
    old_umask = os.umask(0o077)
    try:
        path = write_ca(authority, str(tmp_path), "backend")
    finally:
        os.umask(old_umask)
    assert path == str(tmp_path / "backend-ca.pem")
    assert Path(path).read_bytes() == authority.ca_pem
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_write_ca_errors(authority: Authority, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    written = f"{missing}/backend-ca.pem: cannot write the CA certificate: No such file or directory"
    with pytest.raises(TLSMaterialError, match=exactly(written)):
        write_ca(authority, str(missing), "backend")
    with pytest.raises(ValueError, match=exactly("listener name '../x' cannot be part of a file name")):
        write_ca(authority, str(tmp_path), "../x")


# --- load_pair ------------------------------------------------------------------------------


@pytest.fixture
def pair(authority: Authority, tmp_path: Path) -> tuple[str, str]:
    """A certificate file and its key file, as a user would give them."""
    certified = authority.issue(["pair.test"], Mode.EXPIRED)
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(certified.chain_pem + authority.ca_pem)  # leaf, then its issuer
    key_path.write_bytes(certified.key_pem)
    return str(cert_path), str(key_path)


def test_load_pair_takes_a_good_pair_even_expired(authority: Authority, pair: tuple[str, str]) -> None:
    certified = load_pair(*pair)
    leaf = x509.load_pem_x509_certificates(certified.chain_pem)
    assert len(leaf) == 2
    assert (certified.mode, certified.names) == (None, ("pair.test",))
    assert certified.not_after < datetime.now(UTC)
    assert certified.describe()["mode"] is None


def test_load_pair_serves_what_a_client_verifies(authority: Authority, tmp_path: Path) -> None:
    certified = authority.issue(["127.0.0.1"])
    (tmp_path / "c.pem").write_bytes(certified.chain_pem)
    (tmp_path / "k.pem").write_bytes(certified.key_pem)
    with serving(load_pair(str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))) as port:
        assert python_verdict(port, authority.ca_pem, "127.0.0.1") is None


def test_load_pair_refuses_a_key_that_is_not_the_certificates(pair: tuple[str, str], tmp_path: Path) -> None:
    cert_path, _ = pair
    other = tmp_path / "other-key.pem"
    other.write_bytes(pem_key(ec.generate_private_key(ec.SECP256R1())))
    mismatch = f"{other}: the private key does not match the certificate in {cert_path}"
    with pytest.raises(TLSMaterialError, match=exactly(mismatch)):
        load_pair(cert_path, str(other))


def test_load_pair_refuses_unreadable_files(pair: tuple[str, str], tmp_path: Path) -> None:
    cert_path, key_path = pair
    missing = tmp_path / "nope.pem"
    unread = f"{missing}: cannot read the certificate: No such file or directory"
    with pytest.raises(TLSMaterialError, match=exactly(unread)):
        load_pair(str(missing), key_path)
    directory = f"{tmp_path}: cannot read the private key: Is a directory"
    with pytest.raises(TLSMaterialError, match=exactly(directory)):
        load_pair(cert_path, str(tmp_path))


def test_load_pair_refuses_what_is_not_pem(pair: tuple[str, str], tmp_path: Path) -> None:
    cert_path, key_path = pair
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    not_cert = f"{text}: not a PEM certificate: expected a '-----BEGIN CERTIFICATE-----' block"
    with pytest.raises(TLSMaterialError, match=exactly(not_cert)):
        load_pair(str(text), key_path)
    not_key = f"{text}: not a PEM private key: expected a '-----BEGIN PRIVATE KEY-----' block"
    with pytest.raises(TLSMaterialError, match=exactly(not_key)):
        load_pair(cert_path, str(text))


def test_load_pair_names_swapped_files(pair: tuple[str, str]) -> None:
    cert_path, key_path = pair
    swapped = (
        f"{key_path}: not a PEM certificate: expected a '-----BEGIN CERTIFICATE-----' block"
        " (it holds a private key: are the certificate and key swapped?)"
    )
    with pytest.raises(TLSMaterialError, match=exactly(swapped)):
        load_pair(key_path, cert_path)


def test_load_pair_refuses_an_encrypted_key(pair: tuple[str, str], tmp_path: Path) -> None:
    cert_path, key_path = pair
    key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    locked = tmp_path / "locked.pem"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    encrypted = (
        f"{locked}: the private key is encrypted; faultserver needs it unencrypted"
        f" (openssl pkey -in {locked} -out PLAIN.pem)"
    )
    with pytest.raises(TLSMaterialError, match=exactly(encrypted)):
        load_pair(cert_path, str(locked))


# --- helpers --------------------------------------------------------------------------------


def exactly(message: str) -> str:
    """A `match=` pattern for this message and nothing else."""
    return f"^{re.escape(message)}$"


def leaf_of(certified: CertifiedKey) -> x509.Certificate:
    return x509.load_pem_x509_certificates(certified.chain_pem)[0]


def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
