import pytest

from textkit.wrap import fill, wrap

TEXT = "The quick brown fox jumps over the lazy dog"


def test_short_text_fits_on_one_line():
    assert wrap("hello world", width=20) == ["hello world"]
    assert wrap("", width=10) == []


def test_wraps_at_word_boundaries():
    assert wrap(TEXT, width=15) == ["The quick brown", "fox jumps over", "the lazy dog"]


def test_line_of_exactly_width_is_kept():
    assert wrap(TEXT, width=9) == ["The quick", "brown fox", "jumps", "over the", "lazy dog"]
    assert wrap("ab cd", width=5) == ["ab cd"]


def test_long_word_gets_its_own_line():
    assert wrap("a supercalifragilistic word", width=8) == ["a", "supercalifragilistic", "word"]


def test_indent_counts_towards_width():
    assert wrap("one two three four", width=10, indent="> ") == ["> one two", "> three", "> four"]
    with pytest.raises(ValueError):
        wrap("x", width=2, indent="  ")


def test_fill_keeps_paragraphs():
    text = "first para here\n\nsecond one"
    assert fill(text, width=10) == "first para\nhere\n\nsecond one"
