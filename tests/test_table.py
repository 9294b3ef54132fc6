"""Printable tables: rounding-level differences print as what they are, not as digits of noise."""
import numpy as np

from tinygrad_l2.table import Rounding, Table, how_close, rounding_bound


def test_a_rounding_level_difference_prints_its_bound_not_its_digits():
    eps = np.finfo(np.float64).eps
    assert str(Rounding(3.3e-16, 1.0)) == str(Rounding(2.2e-16, 1.0)) == str(Rounding(0.0, 1.0)) == "≤ 1e-13 (rounding)"
    assert str(Rounding(eps * 0.01 * 10, 0.01)) == "≤ 1e-15 (rounding)"


def test_a_difference_beyond_rounding_prints_as_a_number():
    assert str(Rounding(1e-9, 1.0)) == "1.000e-09"
    assert not Rounding(1e-9, 1.0).is_rounding and Rounding(1e-9, 1e6).is_rounding


def test_the_bound_is_the_power_of_ten_above_64_ulps_of_the_scale():
    assert rounding_bound(1.0) == 1e-13 and rounding_bound(0.001) == 1e-16
    assert rounding_bound(1.0, eps=float(np.finfo(np.float32).eps)) == 1e-5


def test_a_rounding_cell_keeps_its_float_value_in_rows():
    table = Table(["d"], [[Rounding(2e-16, 1.0)]])
    assert "≤ 1e-13 (rounding)" in str(table) and table.to_rows()[0]["d"] == 2e-16


def test_how_close_says_rounding_only_when_every_difference_is():
    assert how_close([Rounding(1e-16, 1.0), Rounding(1e-17, 0.01)]) == "to rounding (every difference ≤ 1e-13)"
    assert how_close([Rounding(1e-16, 1.0), Rounding(1e-6, 1.0)]) == "only to 1.0e-06"


def test_a_non_finite_difference_is_never_called_rounding():
    for value, scale in ((float("nan"), 1.0), (0.0, float("inf")), (1e-300, float("nan"))):
        assert not Rounding(value, scale).is_rounding and "rounding" not in str(Rounding(value, scale))


def test_a_table_wider_than_100_columns_prints_in_parts_led_by_its_key_columns():
    columns = ["name", "kind"] + [f"a long column header {i}" for i in range(8)]
    table = Table(columns, [["W1", "weight"] + [float(i) for i in range(8)]], keys=2)
    lines = str(table).splitlines()
    assert max(len(line) for line in lines) <= 100
    headers = [line for line in lines if line.startswith("name")]
    assert len(headers) >= 2 and all(h.split()[:2] == ["name", "kind"] for h in headers)
    assert sum(line.split()[:2] == ["W1", "weight"] for line in lines) == len(headers)
    assert all(c in str(table) for c in columns)
