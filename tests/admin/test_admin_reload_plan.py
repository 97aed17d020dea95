"""The reload plan (`faultserver._reload`), without sockets: which listeners a new profile
keeps (same name, same address; port 0 or the port in force keeps the socket), adds and removes."""

from __future__ import annotations

from faultserver._profile.load import load_profile_data
from faultserver._reload import Change, InForce, plan_reload


def profile(*binds: tuple[str, str]):
    return load_profile_data(
        {"version": 1, "listeners": [{"name": name, "bind": bind} for name, bind in binds]}, source="<test>"
    )


IN_FORCE = [
    InForce("web", "127.0.0.1", 41000, 0),  # configured with port 0, bound to 41000
    InForce("api", "127.0.0.1", 8080, 8080),
    InForce("old", "127.0.0.1", 41001, 0),
]


def test_reload_plan_keeps_adds_and_removes():
    new = profile(("web", "127.0.0.1:0"), ("api", "127.0.0.1:8080"), ("new", "127.0.0.1:0"))
    plan = plan_reload(IN_FORCE, new)
    assert [c.name for c in plan.kept] == ["web", "api"]
    assert [c.name for c in plan.added] == ["new"]
    assert plan.removed == ("old",)
    assert plan.changes() == {
        "old": Change.REMOVED, "web": Change.KEPT, "api": Change.KEPT, "new": Change.ADDED,
    }


def test_reload_plan_port_in_force_written_out_keeps_the_socket():
    plan = plan_reload(IN_FORCE[:1], profile(("web", "127.0.0.1:41000")))
    assert [c.name for c in plan.kept] == ["web"] and not plan.added and not plan.removed


def test_reload_plan_another_address_is_a_new_listener():
    plan = plan_reload(IN_FORCE[1:2], profile(("api", "127.0.0.1:8081")))
    assert plan.removed == ("api",) and [c.name for c in plan.added] == ["api"] and not plan.kept
    plan = plan_reload(IN_FORCE[1:2], profile(("api", "[::1]:8080")))
    assert plan.removed == ("api",) and [c.name for c in plan.added] == ["api"]
    assert plan.changes() == {"api": Change.ADDED}  # removed, then added again under the same name


def test_reload_plan_kept_carries_the_new_config():
    new = profile(("web", "127.0.0.1:0"))
    plan = plan_reload(IN_FORCE[:1], new)
    assert plan.kept[0] is new.listeners[0]
