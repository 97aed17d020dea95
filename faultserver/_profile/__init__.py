"""The profile format (pure: no I/O but reading the profile's file).

- `model.py`: the frozen objects a valid profile becomes; `units.py`: durations, sizes, rates
  and distributions; `regex.py`: path regexes (RE2).
- `actions.py`: the action table, read by everything below and by the data plane;
  `keys.py`: how a key is read (its kind of value and the model field it fills).
- `load.py`: the loader's public functions (`load_profile_file`, `load_profile_text`,
  `load_profile_data`, `load_rules`), which run `compose.py` and `build.py` (YAML text to
  located values, `nodes.py`) and then the checks, one module per section of the format:
  `document.py`, `listener.py`, `rule.py`, `schedule.py`, with `check.py`, `timing.py`,
  `values.py`, `binds.py` and `describe.py` for the values inside them.
- `schema.py`: the JSON Schema, drawn from the same tables.

Nothing is imported here, so that the data plane can read the model and the action table
without importing PyYAML.
"""
