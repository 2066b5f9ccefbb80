"""The family registry: built-ins by name, explicit registration, entry points, clear errors."""

import pytest

import taskgen
from families.base import Family
from taskgen.registry import DuplicateFamilyError, Registry, UnknownFamilyError
from tests.toy_family import ToyFamily


def test_register_and_get():
    reg = Registry(builtins={}, use_entry_points=False)
    fam = reg.register(ToyFamily)
    assert reg.get("toy") is fam and reg.names() == ["toy"]


def test_duplicate_name_is_an_error():
    reg = Registry(builtins={}, use_entry_points=False)
    reg.register(ToyFamily())
    with pytest.raises(DuplicateFamilyError, match="toy"):
        reg.register(ToyFamily())


def test_builtin_name_cannot_be_taken():
    reg = Registry(builtins={"toy": "tests.toy_family:ToyFamily"}, use_entry_points=False)
    with pytest.raises(DuplicateFamilyError):
        reg.register(ToyFamily)


def test_unknown_name_lists_known_ones():
    reg = Registry(builtins={"toy": "tests.toy_family:ToyFamily"}, use_entry_points=False)
    with pytest.raises(UnknownFamilyError) as err:
        reg.get("nope")
    assert "toy" in str(err.value) and "nope" in str(err.value)


def test_non_family_is_refused():
    reg = Registry(builtins={}, use_entry_points=False)
    with pytest.raises(TypeError):
        reg.register(object())


def test_entry_points_are_loaded(monkeypatch):
    class EP:
        name = "toy"
        group = "taskgen.families"

        def load(self):
            return ToyFamily

    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: [EP()] if group == "taskgen.families" else [])
    reg = Registry(builtins={})
    assert reg.names() == ["toy"] and isinstance(reg.get("toy"), Family)


def test_default_registry_lists_the_builtins_in_order():
    names = taskgen.family_names()
    assert names[:2] == ["quadratic", "twod"] and len(names) >= 12
