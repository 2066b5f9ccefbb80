"""The error every family raises for a bad config: :class:`ConfigError` (its own module, so that
``families.base`` and ``families.space`` both use it without importing each other), and :func:`short_repr`, the
one helper every message uses to echo a value (so that no message repeats a huge value in full)."""

from __future__ import annotations

VALUE_ECHO_LIMIT = 80
"""Most characters of a value that a message repeats (:func:`short_repr`)."""


def short_repr(value, limit: int = VALUE_ECHO_LIMIT) -> str:
    """``repr(value)`` for an error message, cut to about ``limit`` characters.

    Total over any value: an integer too long to print in full (or of more than 200 bits) is described by its size,
    containers are rendered piecewise (a 4 MB list costs no more than a short one), a ``repr`` that fails is
    replaced by the type's name. A cut repr ends with ``...`` and says how long the whole was when that is cheap
    to know (strings and bytes)."""
    text = _bounded_repr(value, limit + 1, depth=0)
    if len(text) <= limit:
        return text
    suffix = "..."
    if isinstance(value, (str, bytes, bytearray)):
        suffix = f"... ({len(value)} {'characters' if isinstance(value, str) else 'bytes'})"
    return text[:limit] + suffix


def _bounded_repr(value, budget: int, depth: int) -> str:
    # At most about ``budget`` characters of the repr, built without rendering the whole value.
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        if value.bit_length() > 200:
            return f"<an integer of {value.bit_length()} bits>"
        return repr(int(value))
    if isinstance(value, (str, bytes, bytearray)):
        return repr(value[: budget + 2])[: budget + 1] if len(value) > budget else repr(value)
    if isinstance(value, float):
        return repr(float(value))
    if depth > 8:
        return "..."
    if isinstance(value, (list, tuple)):
        open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
        parts, used = [], 1
        for item in value:
            if used > budget:
                break
            part = _bounded_repr(item, budget - used, depth + 1)
            parts.append(part)
            used += len(part) + 2
        body = ", ".join(parts)
        return open_ + body + ("" if used <= budget and len(parts) == len(value) else ", ...") + close
    if isinstance(value, dict):
        parts, used = [], 1
        for k, v in value.items():
            if used > budget:
                break
            part = f"{_bounded_repr(k, budget - used, depth + 1)}: {_bounded_repr(v, budget - used, depth + 1)}"
            parts.append(part)
            used += len(part) + 2
        return "{" + ", ".join(parts) + ("" if used <= budget and len(parts) == len(value) else ", ...") + "}"
    try:
        text = repr(value)
    except Exception:  # a value whose repr fails must not replace the error being reported
        return f"<{type(value).__name__}>"
    return text[: budget + 1]


def short_text(text: str, limit: int = 2000) -> str:
    """``text`` (e.g. a library's error message, which may quote data) cut to ``limit`` characters."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class ConfigError(ValueError):
    """A config (or spec) field is missing, has the wrong type, or lies outside its allowed range.

    ``field`` is a dotted path such as ``layers[2]`` or ``init.scale`` (cut if absurdly long: a path is built from
    the input's keys).
    """

    def __init__(self, field: str, message: str):
        field = field if len(field) <= 200 else field[:200] + "..."
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)
