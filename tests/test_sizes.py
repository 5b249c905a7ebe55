"""Sizes as people write them (tfprofscale.sizes)."""
import pytest

from tfprofscale.errors import InputError
from tfprofscale.sizes import format_size, parse_size


@pytest.mark.parametrize("text, expected", [
    ("2GiB", 2 * 1024**3),
    ("500MB", 500 * 1000**2),
    ("1.5G", 1536 * 1024**2),          # 1.5 * 1024 MiB
    ("4096", 4096),
    ("10 kb", 10_000),
    ("3KiB", 3072),
    ("0.5gib", 512 * 1024**2),
    ("1T", 1024**4),
    ("7B", 7),
])
def test_sizes_in_both_unit_families(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "2 GiBs", "-1G", "1.2.3G", "G", "0", "0.0001B"])
def test_not_a_size_names_the_option(text):
    with pytest.raises(InputError, match="--max-memory"):
        parse_size(text, "--max-memory")


def test_format_size():
    assert format_size(1536 * 1024**2) == "1.50 GiB"
    assert format_size(300) == "300 B"
