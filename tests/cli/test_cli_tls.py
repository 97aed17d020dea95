"""`faultserver run` with TLS listeners: the `https://` line, the `ca NAME PATH` line that
follows it, `--ca-dir`, and profile mistakes about TLS reported before anything starts."""

from __future__ import annotations

import json
import os
import ssl
import subprocess

from tests.support.profiles import TEXT_OK, one_listener

TLS_PROFILE = json.dumps(one_listener(response=TEXT_OK, tls={"generate": True}))


def test_run_prints_https_and_the_ca_line_then_removes_its_private_ca(cli):
    server = cli.start(TLS_PROFILE)
    name_lines = [line.split()[0] for line in server.lines]
    assert name_lines == ["listener", "ca", "control"]
    url = server.urls["backend"]
    assert url.startswith("https://127.0.0.1:")
    ca = server.ca_paths["backend"]
    assert ca.endswith("/backend-ca.pem")
    assert (os.stat(os.path.dirname(ca)).st_mode & 0o777) == 0o700  # a private folder
    done = subprocess.run(["curl", "-sS", "--cacert", ca, url + "/x"], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (0, "ok\n")
    assert server.stop() == 0
    assert not os.path.exists(ca)  # removed at exit


def test_ca_dir_keeps_the_ca_where_asked(cli, tmp_path):
    folder = tmp_path / "cas"
    server = cli.start(TLS_PROFILE, "--ca-dir", str(folder))
    assert server.ca_paths == {"backend": str(folder / "backend-ca.pem")}
    assert server.stop() == 0
    assert (folder / "backend-ca.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_plain_listener_has_no_ca_line(cli):
    server = cli.start(json.dumps(one_listener(response=TEXT_OK)))
    assert [line.split()[0] for line in server.lines] == ["listener", "control"]


def test_tls_profile_mistakes_are_located_and_nothing_starts(cli, tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate\n")
    path = cli.write(
        "version: 1\n"
        "listeners:\n"
        "  - name: a\n"
        "    bind: 127.0.0.1:0\n"
        f"    tls: {{cert: {cert}, key: {cert}}}\n"
        "  - name: b\n"
        "    bind: 127.0.0.1:0\n"
        "    tls: {generate: true, certificate: broken}\n"
        "  - name: c\n"
        "    bind: 127.0.0.1:0\n"
        "    rules: [{at: handshake, action: hang}]\n"
    )
    done = cli.call("run", str(path))
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert any(":5:" in line and "listeners[0].tls.key: cannot use" in line for line in lines), lines
    assert any(
        ":8:" in line and "listeners[1].tls.certificate: unknown certificate 'broken'" in line
        for line in lines
    ), lines
    assert any(
        ":11:" in line and "at: handshake needs a TLS listener (this listener has no 'tls')" in line
        for line in lines
    ), lines


def test_admin_api_over_tls_with_a_token(cli):
    profile = json.dumps({
        **one_listener(response=TEXT_OK),
        "control": {"token": "s3cret", "tls": {"generate": True}},
    })
    server = cli.start(profile)
    assert [line.split()[0] for line in server.lines] == ["listener", "control-ca", "control"]
    assert server.control_url.startswith("https://127.0.0.1:")
    ca = server.control_ca_path
    assert ca is not None and ca.endswith("/control.api-ca.pem")
    with server.client("s3cret", verify=ssl.create_default_context(cafile=ca)) as admin:
        assert admin.get("/listeners").json()["listeners"][0]["name"] == "backend"
    with server.client(verify=ssl.create_default_context(cafile=ca)) as anonymous:
        assert anonymous.get("/listeners").status_code == 401
    # plain HTTP to the TLS port: no answer in plaintext, the token never crosses in clear
    plain = "http://" + server.control_url.removeprefix("https://")
    done = subprocess.run(["curl", "-sS", "-m", "5", plain + "/healthz"], capture_output=True, text=True)
    assert done.returncode in (52, 56), done
    assert server.stop() == 0


def test_admin_api_tls_shows_only_a_valid_certificate(cli):
    path = cli.write(
        "version: 1\n"
        "listeners: [{name: a, bind: '127.0.0.1:0'}]\n"
        "control: {tls: {generate: true, certificate: expired}}\n"
    )
    done = cli.call("validate", str(path))
    assert done.returncode == 2
    assert done.stdout.strip().endswith(
        ":3:46: control.tls.certificate: the admin API shows a valid certificate "
        "(certificate faults are for listeners)"
    )
