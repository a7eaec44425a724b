import pytest

from textkit.tokens import iter_windows, ngrams, sentences, words


def test_words_keep_contractions_and_hyphens():
    assert words("Don't stop: state-of-the-art, 3 times!") == [
        "Don't", "stop", "state-of-the-art", "3", "times"]
    assert words("Hello, WORLD", lower=True) == ["hello", "world"]


def test_words_of_empty_text():
    assert words("") == []
    assert words(" -- ... ") == []


def test_sentences_split_on_terminal_punctuation():
    text = "It rained. Then it stopped! Did it? Yes."
    assert sentences(text) == ["It rained.", "Then it stopped!", "Did it?", "Yes."]


def test_sentences_keep_abbreviations():
    text = "We met Dr. Watson today. He was late."
    assert sentences(text) == ["We met Dr. Watson today.", "He was late."]


def test_bigrams():
    assert ngrams(["the", "quick", "brown", "fox"], 2) == [
        ("the", "quick"), ("quick", "brown"), ("brown", "fox")]


def test_trigrams_of_characters():
    assert ngrams("abcd", 3) == [("a", "b", "c"), ("b", "c", "d")]


def test_ngram_as_long_as_the_input():
    assert ngrams(["a", "b", "c"], 3) == [("a", "b", "c")]
    assert ngrams(["solo"], 1) == [("solo",)]


def test_ngrams_longer_than_input_or_invalid_n():
    assert ngrams(["a", "b"], 3) == []
    assert ngrams([], 1) == []
    with pytest.raises(ValueError):
        ngrams(["a"], 0)


def test_windows():
    assert list(iter_windows([1, 2, 3, 4, 5], 2, 2)) == [[1, 2], [3, 4], [5]]
    assert list(iter_windows("abcd", 3)) == ["abc", "bcd"]
