"""The admin API (the README's "Admin API"): quart-trio on Hypercorn, in the server's nursery.

    protocol.py  what the API needs from the server (`AdminServer`)
    guard.py     who may ask: Host, Origin, token, Content-Type (pure, no I/O)
    parse.py     request bodies and query parameters into values `Server` takes
    errors.py    faultserver's errors to HTTP statuses, in one table
    views.py     the JSON shapes of listeners
    streams.py   GET /events (paged, streamed) and GET /events/stream (SSE fan-out)
    pages.py     the dashboard (`GET /`): the static files in dashboard/, with their CSP
    app.py       the routes: parse, call the server, serialise
    serve.py     Hypercorn on our own accept loop (a spare descriptor for EMFILE)

Importing this package imports nothing heavy: the fixture reads `views` without Quart.
"""
