"""The README's first test: the backend closes a kept-alive connection under the client."""

import httpx
import pytest


def test_second_request_on_a_kept_alive_connection_meets_a_fin(faultserver):
    srv = faultserver("profiles/fin.yaml")  # a path, YAML text or a dict; moved to a free port
    with httpx.Client(timeout=5.0) as client:
        assert client.get(srv.url + "/warmup").status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(srv.url + "/orders")  # the same connection: read, then FIN, no answer
    [fault] = srv.events(type="fault")
    assert (fault["rule"], fault["action"], fault["path"]) == ("fin-on-reuse", "close", "/orders")
