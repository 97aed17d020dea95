"""The data plane's table of action units agrees with the profile's table of actions."""

from faultserver._profile.actions import ACTIONS
from faultserver._wire.actions import UNITS


def test_every_action_has_one_data_plane_unit_for_its_model():
    assert {spec.name for spec in ACTIONS.values()} == set(UNITS)
    for name, unit in UNITS.items():
        assert unit.model is ACTIONS[name.value].model


def test_only_actions_that_answer_read_the_body_first():
    reading = {name.value for name, unit in UNITS.items() if unit.reads_body}
    assert reading == {"respond", "dribble", "partial", "delay", "forward"}
