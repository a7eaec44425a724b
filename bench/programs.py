"""Twenty single-file programs with their tests, each with one planted bug.

Written for ``bench/warm_screening.py``: small, realistic functions (parsing, arithmetic,
string handling, collections) whose tests fail on the planted bug; mutation search finds
the fix for most. ``write_programs(root)`` writes ``root/<name>/{prog.py, tests/test_prog.py}``.
"""

from __future__ import annotations

from pathlib import Path

# name: (buggy prog.py, tests calling it). Each test file imports from prog.
PROGRAMS: dict[str, tuple[str, str]] = {
    "clamp": (
        "def clamp(x, lo, hi):\n    if x < lo:\n        return lo\n    if x >= hi:\n"
        "        return x\n    return x\n",
        "def test_high():\n    assert clamp(12, 0, 10) == 10\n\n"
        "def test_low():\n    assert clamp(-1, 0, 10) == 0\n\n"
        "def test_mid():\n    assert clamp(5, 0, 10) == 5\n",
    ),
    "window": (
        "def window_sums(xs, k):\n    return [sum(xs[i:i + k]) for i in range(len(xs) - k)]\n",
        "def test_last_window():\n    assert window_sums([1, 2, 3, 4], 2) == [3, 5, 7]\n\n"
        "def test_full():\n    assert window_sums([1, 2, 3], 3) == [6]\n",
    ),
    "median": (
        "def median(xs):\n    s = sorted(xs)\n    n = len(s)\n    if n % 2:\n"
        "        return s[n // 2]\n    return (s[n // 2 - 1] + s[n // 2]) / 3\n",
        "def test_even():\n    assert median([1, 2, 3, 4]) == 2.5\n\n"
        "def test_odd():\n    assert median([3, 1, 2]) == 2\n",
    ),
    "fizz": (
        "def fizz(n):\n    if n % 15 == 0:\n        return 'FizzBuzz'\n    if n % 3 == 0:\n"
        "        return 'Fizz'\n    if n % 5 == 1:\n        return 'Buzz'\n    return str(n)\n",
        "def test_buzz():\n    assert fizz(10) == 'Buzz'\n\n"
        "def test_fizz():\n    assert fizz(9) == 'Fizz'\n\n"
        "def test_plain():\n    assert fizz(7) == '7'\n",
    ),
    "leap": (
        "def is_leap(y):\n    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 1)\n",
        "def test_2000():\n    assert is_leap(2000)\n\n"
        "def test_1900():\n    assert not is_leap(1900)\n\n"
        "def test_2024():\n    assert is_leap(2024)\n",
    ),
    "count_words": (
        "def count_words(text):\n    counts = {}\n    for w in text.split():\n"
        "        counts[w] = counts.get(w, 1) + 1\n    return counts\n",
        "def test_counts():\n    assert count_words('a b a') == {'a': 2, 'b': 1}\n\n"
        "def test_empty():\n    assert count_words('') == {}\n",
    ),
    "chunks": (
        "def chunks(xs, n):\n    return [xs[i:i + n] for i in range(0, len(xs) - 1, n)]\n",
        "def test_tail():\n    assert chunks([1, 2, 3], 2) == [[1, 2], [3]]\n\n"
        "def test_exact():\n    assert chunks([1, 2], 2) == [[1, 2]]\n",
    ),
    "balance": (
        "def balanced(s):\n    depth = 0\n    for c in s:\n        if c == '(':\n"
        "            depth += 1\n        elif c == ')':\n            depth -= 1\n"
        "            if depth < -1:\n                return False\n    return depth == 0\n",
        "def test_close_first():\n    assert not balanced(')(')\n\n"
        "def test_nested():\n    assert balanced('(())')\n",
    ),
    "discount": (
        "def price(total):\n    if total > 100:\n        return total * 0.9\n    return total\n",
        "def test_threshold():\n    assert price(100) == 90\n\n"
        "def test_small():\n    assert price(50) == 50\n",
    ),
    "last_index": (
        "def last_index(xs, x):\n    for i in range(len(xs) - 1, 0, -1):\n"
        "        if xs[i] == x:\n            return i\n    return -1\n",
        "def test_first():\n    assert last_index([5, 1, 2], 5) == 0\n\n"
        "def test_missing():\n    assert last_index([1], 3) == -1\n",
    ),
    "title": (
        "def title(s):\n    return ' '.join(w[:1].upper() + w[2:] for w in s.split())\n",
        "def test_title():\n    assert title('hello world') == 'Hello World'\n",
    ),
    "mean": (
        "def mean(xs):\n    if not xs:\n        return 0.0\n    return sum(xs) / (len(xs) + 1)\n",
        "def test_mean():\n    assert mean([1, 2, 3]) == 2\n\n"
        "def test_empty():\n    assert mean([]) == 0.0\n",
    ),
    "grade": (
        "def grade(score):\n    if score >= 90:\n        return 'A'\n    if score > 80:\n"
        "        return 'B'\n    return 'C'\n",
        "def test_b_edge():\n    assert grade(80) == 'B'\n\n"
        "def test_a():\n    assert grade(95) == 'A'\n\n"
        "def test_c():\n    assert grade(10) == 'C'\n",
    ),
    "dedupe": (
        "def dedupe(xs):\n    seen = set()\n    out = []\n    for x in xs:\n"
        "        if x in seen:\n            out.append(x)\n        seen.add(x)\n    return out\n",
        "def test_order():\n    assert dedupe([3, 1, 3, 2, 1]) == [3, 1, 2]\n",
    ),
    "power": (
        "def power(b, e):\n    r = 1\n    for _ in range(e - 1):\n        r *= b\n    return r\n",
        "def test_cube():\n    assert power(2, 3) == 8\n\n"
        "def test_zero():\n    assert power(5, 0) == 1\n",
    ),
    "parse_kv": (
        "def parse_kv(s):\n    out = {}\n    for part in s.split(';'):\n"
        "        if '=' in part:\n            k, v = part.split('=', 2)\n"
        "            out[k.strip()] = v.strip()\n    return out\n",
        "def test_eq_in_value():\n    assert parse_kv('a=b=c') == {'a': 'b=c'}\n\n"
        "def test_two():\n    assert parse_kv('a=1; b=2') == {'a': '1', 'b': '2'}\n",
    ),
    "rle": (
        "def rle(s):\n    out = []\n    i = 0\n    while i < len(s):\n        j = i\n"
        "        while j < len(s) and s[j] == s[i]:\n            j += 1\n"
        "        out.append(f'{j - i + 1}{s[i]}')\n        i = j\n    return ''.join(out)\n",
        "def test_rle():\n    assert rle('aaab') == '3a1b'\n\n"
        "def test_empty():\n    assert rle('') == ''\n",
    ),
    "between": (
        "def between(x, lo, hi):\n    return lo < x <= hi\n",
        "def test_low_edge():\n    assert between(1, 1, 3)\n\n"
        "def test_out():\n    assert not between(4, 1, 3)\n",
    ),
    "max_gap": (
        "def max_gap(xs):\n    s = sorted(xs)\n"
        "    return max((b - a for a, b in zip(s, s[2:])), default=0)\n",
        "def test_gap():\n    assert max_gap([1, 10, 3]) == 7\n\n"
        "def test_single():\n    assert max_gap([4]) == 0\n",
    ),
    "percent": (
        "def percent(part, whole):\n    if whole == 0:\n        return 0\n"
        "    return round(100 * part / whole, 0)\n",
        "def test_precise():\n    assert percent(1, 3) == 33.3\n\n"
        "def test_zero():\n    assert percent(1, 0) == 0\n",
    ),
}

HEADER = "from prog import *  # noqa: F403\n\n\n"


def write_programs(root: Path) -> list[Path]:
    """Write every program under ``root``; the project directories, in name order."""
    out = []
    for name, (prog, tests) in sorted(PROGRAMS.items()):
        project = root / name
        (project / "tests").mkdir(parents=True, exist_ok=True)
        (project / "prog.py").write_text(prog)
        body = HEADER + tests.replace("\n\ndef", "\n\n\ndef")
        (project / "tests" / "test_prog.py").write_text(body)
        (project / "pyproject.toml").write_text('[tool.pytest.ini_options]\npythonpath = ["."]\n')
        out.append(project)
    return out
