"""Arrow arrays and scalars made straight from buffers.

``pa.array([...])`` and ``pa.scalar(...)`` on Python values ask pyarrow's pandas shim whether the values are pandas
objects, which imports pandas (0.2 s) when it is installed. The query commands only need a few strings and
integers, so they build them from bytes here and stay fast.
"""

from __future__ import annotations

import array

import pyarrow as pa


def string_array(values) -> pa.Array:
    """A ``pa.string()`` array of the Python strings ``values``."""
    data = [str(v).encode() for v in values]
    offsets = array.array("i", [0])
    for d in data:
        offsets.append(offsets[-1] + len(d))
    return pa.Array.from_buffers(pa.string(), len(data), [None, pa.py_buffer(offsets.tobytes()),
                                                          pa.py_buffer(b"".join(data))])


def string_scalar(value: str) -> pa.Scalar:
    """A ``pa.string()`` scalar."""
    return string_array([value])[0]


def int64_scalar(value: int) -> pa.Scalar:
    """A ``pa.int64()`` scalar."""
    return pa.Array.from_buffers(pa.int64(), 1, [None, pa.py_buffer(array.array("q", [int(value)]).tobytes())])[0]


_INT_CODES = {"int32": "i", "int64": "q"}


def int_array(values, type_: pa.DataType) -> pa.Array:
    """An ``int32``/``int64`` array of the Python integers ``values`` (``OverflowError`` if one does not fit)."""
    buf = array.array(_INT_CODES[str(type_)], values)
    return pa.Array.from_buffers(type_, len(buf), [None, pa.py_buffer(buf.tobytes())])


def int_list_array(rows, value_type: pa.DataType) -> pa.Array:
    """A ``list<value_type>`` array of the Python integer lists ``rows``."""
    offsets, flat = array.array("i", [0]), []
    for r in rows:
        flat.extend(r)
        offsets.append(len(flat))
    return pa.ListArray.from_arrays(pa.Array.from_buffers(pa.int32(), 1 + len(rows),
                                                          [None, pa.py_buffer(offsets.tobytes())]),
                                    int_array(flat, value_type))


def column(values, type_: pa.DataType) -> pa.Array:
    """An array of ``type_`` (string, int32, int64 or list<int32>) from Python values, without pandas."""
    if pa.types.is_string(type_):
        return string_array(values)
    if pa.types.is_list(type_):
        return int_list_array(values, type_.value_type)
    return int_array(values, type_)
