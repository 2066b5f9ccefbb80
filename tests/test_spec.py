"""TaskSpec: canonical JSON, content ids, round trips, refusal of bad input."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from families.base import ConfigError
from taskgen.spec import TaskSpec, canonical_json

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**53, 2**53),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=12)


@given(json_values)
def test_canonical_json_is_a_fixed_point(value):
    text = canonical_json(value)
    assert canonical_json(json.loads(text)) == text


@given(st.dictionaries(st.text(max_size=6), json_values, max_size=5), st.integers(0, 2**31 - 1))
@settings(max_examples=60)
def test_spec_round_trips_byte_for_byte(config, seed):
    spec = TaskSpec.create("fam", 1, seed, config)
    line = spec.to_json()
    again = TaskSpec.from_json(line)
    assert again == spec and again.to_json() == line
    assert again.task_id == spec.task_id


def test_key_order_does_not_change_the_id():
    a = TaskSpec.create("fam", 1, 3, {"x": 1, "y": [1.5, {"b": 2, "a": 1}]})
    b = TaskSpec.create("fam", 1, 3, {"y": [1.5, {"a": 1, "b": 2}], "x": 1})
    assert a.task_id == b.task_id and a.to_json() == b.to_json()


def test_id_depends_on_content_not_split():
    base = TaskSpec.create("fam", 1, 3, {"x": 1})
    assert base.with_split("meta_test").task_id == base.task_id
    assert TaskSpec.create("fam", 2, 3, {"x": 1}).task_id != base.task_id
    assert TaskSpec.create("fam", 1, 4, {"x": 1}).task_id != base.task_id
    assert TaskSpec.create("fam", 1, 3, {"x": 2}).task_id != base.task_id
    assert base.task_id.startswith("fam-") and len(base.task_id) == len("fam-") + 12


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused(bad):
    with pytest.raises(ConfigError, match="lr"):
        TaskSpec.create("fam", 1, 0, {"opt": {"lr": bad}})


def test_non_json_types_are_refused():
    with pytest.raises(ConfigError, match="shape"):
        TaskSpec.create("fam", 1, 0, {"shape": (1, 2)})
    with pytest.raises(ConfigError, match="obj"):
        TaskSpec.create("fam", 1, 0, {"obj": object()})


def test_tampered_task_id_is_refused():
    data = TaskSpec.create("fam", 1, 0, {"x": 1}).to_dict()
    data["config"]["x"] = 2
    with pytest.raises(ConfigError, match="does not match the content"):
        TaskSpec.from_dict(data)


def test_nan_literal_in_a_line_is_refused():
    with pytest.raises(ConfigError, match="NaN"):
        TaskSpec.from_json('{"config":{"x":NaN},"family":"fam","family_version":1,"seed":0}')


@pytest.mark.parametrize("field,value", [("seed", -1), ("seed", 1.5), ("family_version", True), ("family", "")])
def test_bad_header_fields_name_the_field(field, value):
    data = {"config": {}, "family": "fam", "family_version": 1, "seed": 0, field: value}
    with pytest.raises(ConfigError, match=field):
        TaskSpec.from_dict(data)


def test_unknown_field_and_schema_version_are_refused():
    with pytest.raises(ConfigError, match="colour"):
        TaskSpec.from_dict({"config": {}, "family": "f", "family_version": 1, "seed": 0, "colour": 1})
    with pytest.raises(ConfigError, match="schema_version"):
        TaskSpec.from_dict({"config": {}, "family": "f", "family_version": 1, "seed": 0, "schema_version": 99})


def test_config_is_copied_not_shared():
    config = {"layers": [1, 2]}
    spec = TaskSpec.create("fam", 1, 0, config)
    config["layers"].append(3)
    assert spec.config["layers"] == [1, 2]
