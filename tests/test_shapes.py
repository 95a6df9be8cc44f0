"""Shapes and image sizes as text: one parser and one writer for every layer."""

from __future__ import annotations

import math

import pytest

from hambench.shapes import hw_str, parse_shape, parse_size, pixels, shape_str


def test_shape_parses_every_separator_and_writes_back():
    assert (
        parse_shape("1x512x128x128")
        == parse_shape("1,512,128,128")
        == parse_shape("1×512X128x128")
        == (1, 512, 128, 128)
    )
    assert shape_str(parse_shape("1,512,128,128")) == "1x512x128x128"


@pytest.mark.parametrize("bad, match", [("1,a,3,4", "integers"), ("1,0,3,4", "positive"), ("", "integers")])
def test_bad_shape_is_named(bad, match):
    with pytest.raises(ValueError, match=match):
        parse_shape(bad)


def test_size_is_height_by_width_and_one_number_is_a_square():
    assert parse_size("96x64") == (96, 64) and parse_size("128") == (128, 128)
    for bad in ("1x2x3", "0x4", "ax4", ""):
        with pytest.raises(ValueError, match="HxW"):
            parse_size(bad)


def test_hw_reads_the_last_two_dimensions_of_any_spelling():
    assert hw_str("1x3x512x512") == hw_str((1, 3, 512, 512)) == hw_str("512 x 512") == "512x512"
    assert hw_str("2x3x96x64") == "96x64"  # height then width, as written
    assert hw_str("512") == hw_str(None) == hw_str("") == ""  # no size named: matches no crop


def test_pixels_is_height_times_width_or_nan():
    assert pixels("1x512x128x96") == pixels((1, 512, 128, 96)) == 128.0 * 96
    assert math.isnan(pixels("128")) and math.isnan(pixels(None))
