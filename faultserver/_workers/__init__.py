"""`faultserver run --workers N`: N data-plane processes on one port, one control plane.

- `channel.py`: the JSON-lines channel between the parent and one worker.
- `child.py`: a worker process (a `Server` without admin API whose sockets join the
  listeners' SO_REUSEPORT groups; it applies what the parent sends and sends its events).
- `fleet.py`: the parent's side (`FleetServer`): starts, restarts and stops the workers,
  sends every change (modes, rules, reloads, resets, drops, schedule phases) to each and
  answers once every worker has applied it.
- `budget.py`: `times: N` for the whole fleet; `counts.py`: open connections for the whole
  fleet (`max_connections`, `peak_connections`); `stats.py`: the workers' counters summed.
"""
