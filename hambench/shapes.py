"""Tensor shapes and image sizes as text: the one place that parses and writes ``"1x512x128x128"``
and ``"512x384"`` (height x width).

A base module: it imports nothing of hambench, so every layer (CLI, tasks, profiling, reports)
can use it.
"""

from __future__ import annotations

import math
import re


def shape_str(shape: tuple[int, ...]) -> str:
    """(1, 512, 128, 128) -> ``"1x512x128x128"`` (the form every table and row uses)."""
    return "x".join(str(s) for s in shape)


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,512,128,128"`` or ``"1x512x128x128"`` (``X`` and ``×`` too) -> (1, 512, 128, 128).

    Raises ``ValueError`` on a part that is not an integer or a dimension that is not positive.
    """
    parts = text.lower().replace("×", "x").replace("x", ",").split(",")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"shape must be integers separated by ',' or 'x', got {text!r}") from None
    if any(s <= 0 for s in shape):
        raise ValueError(f"shape dimensions must be positive, got {text!r}")
    return shape


def parse_size(text: str) -> tuple[int, int]:
    """An image size ``"512x384"`` -> (512, 384) (height x width); one number ``"512"`` is a square.

    Raises ``ValueError`` unless ``text`` holds one or two positive integers.
    """
    try:
        dims = parse_shape(text)
    except ValueError:
        dims = ()  # reported below, with the size's own message
    if len(dims) == 1:
        return dims[0], dims[0]
    if len(dims) == 2:
        return dims[0], dims[1]
    raise ValueError(f"size must be HxW with positive integers, e.g. 512x512 (or 512 for a square); got {text!r}")


def _hw_dims(shape: object) -> list[str]:
    """The last two numbers written in ``shape`` (any text, any separators), or fewer."""
    return re.findall(r"\d+", str(shape))[-2:]


def hw_str(shape: object) -> str:
    """The image size (the last two dimensions) of a shape, as ``"HxW"``: ``"1x3x512x512"``,
    ``(1, 3, 512, 512)`` or ``"512x512"`` -> ``"512x512"``; ``""`` when it names fewer than two.

    Lenient on purpose (any text, any separators): it reads the ``crop`` column of hand-written
    reference tables as well as hambench's own ``model_shape`` column, so both compare as sizes.
    """
    dims = _hw_dims(shape)
    return "x".join(dims) if len(dims) == 2 else ""


def pixels(shape: object) -> float:
    """n = H * W of a shape read as ``hw_str`` reads it: ``"1x512x128x128"`` -> 16384.0; NaN when
    it names fewer than two dimensions (a float, so a column of them stays numeric)."""
    dims = _hw_dims(shape)
    return float(int(dims[0]) * int(dims[1])) if len(dims) == 2 else math.nan
