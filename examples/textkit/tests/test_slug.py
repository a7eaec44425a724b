from textkit.slug import slugify, unique_slug


def test_basic_slug():
    assert slugify("Hello, World!") == "hello-world"
    assert slugify("  Multiple   spaces -- and dashes ") == "multiple-spaces-and-dashes"


def test_numbers_are_kept():
    assert slugify("Top 10 Python tips (2024)") == "top-10-python-tips-2024"


def test_custom_separator():
    assert slugify("Release notes v2", separator="_") == "release_notes_v2"


def test_accented_letters_are_transliterated():
    assert slugify("Crème Brûlée") == "creme-brulee"
    assert slugify("Ångström über Zoë") == "angstrom-uber-zoe"


def test_truncation_does_not_split_words():
    title = "A very long title that keeps going and going well past the limit"
    assert slugify(title, max_length=20) == "a-very-long-title"
    assert slugify("exactly-twenty-chars", max_length=20) == "exactly-twenty-chars"


def test_unique_slug_appends_counter():
    taken = {"weekly-report", "weekly-report-2"}
    assert unique_slug("Weekly Report", taken) == "weekly-report-3"
    assert unique_slug("Monthly Report", taken) == "monthly-report"


def test_unique_slug_for_accented_title():
    assert unique_slug("Café", {"cafe"}) == "cafe-2"
