"""Protocols without I/O: bytes in, events out (HTTP/1.1 today)."""
