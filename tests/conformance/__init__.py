"""Conformance II: Apache HttpAsyncClient 4.1, Go net/http, Node (fetch and node:http) and Caddy
against faultserver; the client programs are in `clients/`, built once per session (conftest.py)."""
