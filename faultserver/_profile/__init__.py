"""The profile format: loading, checking, the model and its JSON Schema (pure, no I/O but
reading the file)."""

from .load import (
    load_profile_data as load_profile_data,
)
from .load import (
    load_profile_file as load_profile_file,
)
from .load import (
    load_profile_text as load_profile_text,
)
from .load import (
    load_rules as load_rules,
)
from .model import (
    AcceptMode as AcceptMode,
)
from .model import (
    Action as Action,
)
from .model import (
    ActionName as ActionName,
)
from .model import (
    At as At,
)
from .model import (
    Body as Body,
)
from .model import (
    Close as Close,
)
from .model import (
    Control as Control,
)
from .model import (
    Dribble as Dribble,
)
from .model import (
    Framing as Framing,
)
from .model import (
    Garbage as Garbage,
)
from .model import (
    Hang as Hang,
)
from .model import (
    Keepalive as Keepalive,
)
from .model import (
    Limits as Limits,
)
from .model import (
    Listener as Listener,
)
from .model import (
    Match as Match,
)
from .model import (
    Partial as Partial,
)
from .model import (
    Phase as Phase,
)
from .model import (
    Profile as Profile,
)
from .model import (
    Reset as Reset,
)
from .model import (
    Respond as Respond,
)
from .model import (
    Response as Response,
)
from .model import (
    Rule as Rule,
)
from .model import (
    Schedule as Schedule,
)
from .schema import profile_schema as profile_schema
from .units import (
    Duration as Duration,
)
from .units import (
    Fixed as Fixed,
)
from .units import (
    LogNormal as LogNormal,
)
from .units import (
    Normal as Normal,
)
from .units import (
    Uniform as Uniform,
)
from .units import (
    UnitError as UnitError,
)

__all__ = [
    "AcceptMode",
    "Action",
    "ActionName",
    "At",
    "Body",
    "Close",
    "Control",
    "Dribble",
    "Duration",
    "Fixed",
    "Framing",
    "Garbage",
    "Hang",
    "Keepalive",
    "Limits",
    "Listener",
    "LogNormal",
    "Match",
    "Normal",
    "Partial",
    "Phase",
    "Profile",
    "Reset",
    "Respond",
    "Response",
    "Rule",
    "Schedule",
    "Uniform",
    "UnitError",
    "load_profile_data",
    "load_profile_file",
    "load_profile_text",
    "load_rules",
    "profile_schema",
]
