from textkit.stats import (
    lexical_diversity,
    reading_time_minutes,
    summarize,
    top_words,
    word_frequencies,
)

ARTICLE = (
    "Python is fun. Python is fast to write, and tests make Python safe. "
    "Tests are code too; write tests."
)


def test_frequencies_skip_stopwords():
    freq = word_frequencies(ARTICLE)
    assert freq["python"] == 3
    assert freq["tests"] == 3
    assert "is" not in freq and "and" not in freq
    assert word_frequencies("The the THE", skip_stopwords=False) == {"the": 3}


def test_top_words_ties_alphabetical():
    assert top_words(ARTICLE, 3) == [("python", 3), ("tests", 3), ("write", 2)]


def test_reading_time_rounds_up():
    assert reading_time_minutes("word " * 200) == 1
    assert reading_time_minutes("word " * 201) == 2
    assert reading_time_minutes("word " * 50) == 1
    assert reading_time_minutes("word " * 450, words_per_minute=150) == 3


def test_reading_time_of_empty_text():
    assert reading_time_minutes("") == 0


def test_lexical_diversity():
    assert lexical_diversity("a b c d") == 1.0
    assert lexical_diversity("go go go go") == 0.25
    assert lexical_diversity("") == 0.0


def test_summary_of_article():
    s = summarize(ARTICLE)
    assert (s.words, s.sentences) == (19, 3)
    assert s.average_sentence_length == 6.3
    assert s.reading_minutes == 1


def test_summary_of_longer_article():
    text = "One more sentence here. " * 60
    assert summarize(text).reading_minutes == 2
