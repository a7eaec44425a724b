import pytest

from textkit.pages import page_count, paginate


def test_no_lines_no_pages():
    assert page_count(0, 10) == 0
    assert paginate([], 3) == []


def test_height_must_be_positive():
    with pytest.raises(ValueError):
        page_count(5, 0)


def test_page_count_rounds_up():
    assert page_count(7, 3) == 3
    assert page_count(6, 3) == 2


def test_paginate_keeps_every_line_in_order():
    lines = [f"line {i}" for i in range(5)]
    assert paginate(lines, 2) == [["line 0", "line 1"], ["line 2", "line 3"], ["line 4"]]
