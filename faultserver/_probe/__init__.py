"""`faultserver probe`: a report card for the user's own gateway, cause by cause.

The probe serves as the backend behind one route of the user's gateway, puts itself into
each scenario in turn, sends requests through the gateway and reports what the clients
got and what reached the backend.

    scenarios.py  the table of scenarios (pure)
    client.py     requests through the gateway (the only code that talks to it)
    analyse.py    replies and events joined into an Observation (pure)
    search.py     the read-timeout bisection and the pool step-up, as decisions (pure)
    verdicts.py   one judge per scenario (pure)
    report.py     table, JSON and Markdown (pure)
    run.py        the Trio part: the Server, the drivers, the bounds
    nginx.py      an nginx for --self-test and the tests
    command.py    the `probe` subcommand
"""
