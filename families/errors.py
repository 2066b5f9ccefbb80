"""The error every family raises for a bad config: :class:`ConfigError` (its own module, so that
``families.base`` and ``families.space`` both use it without importing each other)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config (or spec) field is missing, has the wrong type, or lies outside its allowed range.

    ``field`` is a dotted path such as ``layers[2]`` or ``init.scale``.
    """

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)
