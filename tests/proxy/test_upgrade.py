"""`Upgrade` requests through the proxy: a WebSocket handshake is forwarded, its
`101 Switching Protocols` relayed, and then bytes pass both ways (a wsproto client talks
to a wsproto echo behind faultserver); a fault on the handshake happens instead."""

from __future__ import annotations

import socket
from collections.abc import Callable

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Message, Request, TextMessage

from faultserver.testing import FaultServer
from tests.support import net


def _receive(sock: socket.socket, ws: WSConnection) -> list[object]:
    while True:
        events = list(ws.events())
        if events:
            return events
        data = sock.recv(65536)
        assert data, "EOF before a WebSocket event"
        ws.receive_data(data)


def test_websocket_echo_through_the_proxy(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy()
    ws = WSConnection(ConnectionType.CLIENT)
    with net.connect("127.0.0.1", srv["proxy"].port, 5) as sock:
        sock.sendall(ws.send(Request(host="app.example", target="/ws")))
        [accepted] = _receive(sock, ws)
        assert isinstance(accepted, AcceptConnection)
        for text in ("hello", "x" * 100_000, "bye"):
            sock.sendall(ws.send(Message(data=text)))
            received = ""
            while not received or len(received) < len(text):
                for event in _receive(sock, ws):
                    assert isinstance(event, TextMessage)
                    received += event.data
            assert received == text
        sock.sendall(ws.send(CloseConnection(code=1000)))
        [closed] = _receive(sock, ws)
        assert isinstance(closed, CloseConnection)
        assert sock.recv(100) == b""  # the upstream closed, so does the proxy
    event = srv.wait_for(type="forward", path="/ws")
    assert (event["status"], event["upstream_status"]) == (101, 101)


def test_fault_on_websocket_handshake_happens_instead(proxy: Callable[..., FaultServer]) -> None:
    srv = proxy({"match": {"path": "/ws"}, "action": "reset"})
    ws = WSConnection(ConnectionType.CLIENT)
    with net.connect("127.0.0.1", srv["proxy"].port, 5) as sock:
        sock.sendall(ws.send(Request(host="app.example", target="/ws")))
        assert net.read_to_end(sock) == (b"", "reset")
