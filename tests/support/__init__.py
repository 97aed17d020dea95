"""Shared test support: one place for harnesses and helpers every test directory uses.

- `cli`: `faultserver run` in a subprocess (`start_cli`, `serve_cli`, `run_cli`, `CliServer`).
- `wait`: `wait_until`, the one poll for what another thread or process makes true.
- `profiles`: `one_listener(...)`, and the fault table the client and gateway matrices share.
- `net`: raw sockets with timeouts, how a connection ended (FIN, RST), a response reader, curl.
- `memory`: the data plane over an in-memory stream (`open_connection`), for tests/shell.
"""
