"""Canonical encoding for everything hashed or signed (PROTOCOL section 7).

Choice: JSON, UTF-8, keys sorted, no whitespace (``separators=(",", ":")``), ASCII only,
bytes as lowercase hex strings, floats as the 8-hex-digit big-endian hex of their float32 bits
(``f32hex``), integers as JSON integers in [-2**63, 2**64). No NaN, no Infinity, no floats
anywhere else. ``canonical()`` refuses anything outside that subset, so two implementations that
follow this page produce the same bytes.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

from pogo_jax.errors import MalformedInput


def _check(obj: Any, path: str = "$") -> None:
    if obj is None or isinstance(obj, bool | str):
        return
    if isinstance(obj, int):
        if not -(2**63) <= obj < 2**64:
            raise ValueError(f"{path}: integer out of range")
        return
    if isinstance(obj, float):
        raise ValueError(f"{path}: raw float in canonical data (use f32hex)")
    if isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            _check(v, f"{path}[{i}]")
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise ValueError(f"{path}: non-string key {k!r}")
            _check(v, f"{path}.{k}")
        return
    raise ValueError(f"{path}: type {type(obj).__name__} is not canonical")


def canonical(obj: Any) -> bytes:
    """The canonical bytes of ``obj`` (dict/list/str/int/bool/None only)."""
    _check(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def parse_canonical(data: bytes, what: str, max_bytes: int = 64 << 20) -> Any:
    """Parse JSON bytes; refuse oversize input, NaN/Infinity, floats and duplicate keys."""
    if len(data) > max_bytes:
        raise MalformedInput(f"{what}: {len(data)} bytes exceeds the limit of {max_bytes}")

    def no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for k, v in pairs:
            if k in d:
                raise MalformedInput(f"{what}: duplicate key '{k}'")
            d[k] = v
        return d

    def bad_const(name: str) -> Any:
        raise MalformedInput(f"{what}: {name} is not allowed")

    def bad_float(s: str) -> Any:
        raise MalformedInput(f"{what}: raw float {s[:20]} is not allowed (floats are f32 hex)")

    try:
        text = data.decode("ascii")
        return json.loads(text, object_pairs_hook=no_dupes, parse_constant=bad_const,
                          parse_float=bad_float)
    except UnicodeDecodeError:
        raise MalformedInput(f"{what}: not ASCII JSON") from None
    except RecursionError:
        raise MalformedInput(f"{what}: nested too deeply") from None
    except json.JSONDecodeError as e:
        raise MalformedInput(f"{what}: not valid JSON ({e.msg} at byte {e.pos})") from None
    except ValueError as e:  # e.g. an integer longer than Python's int-to-str digit limit
        raise MalformedInput(f"{what}: {str(e)[:80]}") from None


def f32hex(x: float) -> str:
    """Float -> hex of its float32 bits (big-endian, 8 lowercase digits). Refuses NaN/Inf."""
    if not math.isfinite(x):
        raise ValueError("non-finite float in canonical data")
    return struct.pack(">f", x).hex()


def from_f32hex(s: Any, what: str) -> float:
    if not isinstance(s, str) or len(s) != 8:
        raise MalformedInput(f"{what}: expected 8 hex digits of float32 bits")
    try:
        v = struct.unpack(">f", bytes.fromhex(s))[0]
    except ValueError:
        raise MalformedInput(f"{what}: not hex") from None
    if not math.isfinite(v):
        raise MalformedInput(f"{what}: non-finite float")
    return v


def hexbytes(s: Any, what: str, length: int | None = None, max_len: int = 1 << 26) -> bytes:
    """Decode a lowercase-hex field, checking type and (expected or maximum) length first."""
    if not isinstance(s, str):
        raise MalformedInput(f"{what}: expected a hex string")
    if length is not None and len(s) != 2 * length:
        raise MalformedInput(f"{what}: expected {length} bytes of hex, got {len(s) // 2}")
    if len(s) > 2 * max_len or len(s) % 2:
        raise MalformedInput(f"{what}: bad hex length")
    if s != s.lower():
        raise MalformedInput(f"{what}: hex must be lowercase")
    try:
        return bytes.fromhex(s)
    except ValueError:
        raise MalformedInput(f"{what}: not hex") from None


def get_field(obj: Any, key: str, typ: type | tuple[type, ...], what: str) -> Any:
    """Fetch ``obj[key]`` and check its JSON type (bool is not an int here)."""
    if not isinstance(obj, dict):
        raise MalformedInput(f"{what}: expected an object")
    if key not in obj:
        raise MalformedInput(f"{what}: missing field '{key}'")
    v = obj[key]
    types = typ if isinstance(typ, tuple) else (typ,)
    if isinstance(v, bool) and bool not in types:
        raise MalformedInput(f"{what}.{key}: wrong type bool")
    if not isinstance(v, types):
        raise MalformedInput(f"{what}.{key}: wrong type {type(v).__name__}")
    return v


def get_int(obj: Any, key: str, what: str, lo: int = 0, hi: int = 2**63 - 1) -> int:
    v = get_field(obj, key, int, what)
    if not lo <= v <= hi:
        raise MalformedInput(f"{what}.{key}: {v} outside [{lo}, {hi}]")
    return v


def exact_keys(obj: Any, keys: set[str], what: str) -> None:
    """Refuse unknown or missing keys: a reader never silently ignores fields."""
    if not isinstance(obj, dict):
        raise MalformedInput(f"{what}: expected an object")
    extra = set(obj) - keys
    if extra:
        raise MalformedInput(f"{what}: unknown field '{sorted(extra)[0]}'")
    missing = keys - set(obj)
    if missing:
        raise MalformedInput(f"{what}: missing field '{sorted(missing)[0]}'")
