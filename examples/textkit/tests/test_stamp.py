import re

from textkit.stamp import stamp, utc_offset_label


def test_stamp_prefixes_the_date():
    assert re.fullmatch(r"\[\d{4}-\d\d-\d\d\] deployed", stamp("deployed"))


def test_offset_label_is_utc():
    assert utc_offset_label() == "+0000"
