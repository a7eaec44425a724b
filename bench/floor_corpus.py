# ruff: noqa: E501  (the corpus keeps each planted bug on one header line)
"""A corpus of single-file programs with planted bugs, each testable three ways.

For ``bench/search_floor.py``: small utilities (parsing, dates, numbers, strings,
collections), each ``main.py`` with one planted bug of a known kind (a single mutation
class, ``pair``: two edits, or ``deep``: no single mutation fixes it), and test cases
written out as pytest tests, a unittest TestCase, or a plain ``python test.py`` script with
asserts in a ``check()`` function. Same bug, same cases, three commands.

Each entry of ``ENTRIES``: ``@@ name | kind | old => new [;; old => new]``, the correct
source, ``--``, then one ``call => expected`` per line. ``python bench/floor_corpus.py
--check`` validates every program (correct passes, buggy fails with a guard still passing,
each edit of a pair alone still fails).
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

KINDS = ("pytest", "unittest", "script")


@dataclass(frozen=True)
class Program:
    name: str
    source: str
    bug: tuple[tuple[str, str], ...]
    cases: tuple[tuple[str, str], ...]
    kind: str


ENTRIES = r"""
@@ clamp | comparison | if x > hi: => if x < hi:
def clamp(x, lo, hi):
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


def clamp_all(xs, lo, hi):
    return [clamp(x, lo, hi) for x in xs]
--
clamp(5, 0, 10) => 5
clamp(-3, 0, 10) => 0
clamp(12, 0, 10) => 10
clamp_all([10, 11], 0, 10) => [10, 10]
@@ binsearch | comparison | while lo <= hi: => while lo < hi:
def binary_search(xs, target):
    lo, hi = 0, len(xs) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if xs[mid] == target:
            return mid
        if xs[mid] < target:
            lo = mid + 1
        else:
            hi = mid - 1
    return -1


def contains(xs, target):
    return binary_search(xs, target) != -1
--
binary_search([1, 3, 5, 7], 7) => 3
binary_search([1, 3, 5, 7], 1) => 0
binary_search([1, 3, 5, 7], 4) => -1
contains([2], 2) => True
@@ grade | comparison | if score >= 90: => if score > 90:
def grade(score):
    if score >= 90:
        return "A"
    if score >= 80:
        return "B"
    if score >= 70:
        return "C"
    return "F"


def report(scores):
    return "".join(grade(s) for s in scores)
--
grade(95) => "A"
grade(90) => "A"
grade(85) => "B"
report([70, 50]) => "CF"
@@ digitsum | arithmetic | total += n % 10 => total -= n % 10
def digit_sum(n):
    n = abs(n)
    total = 0
    while n:
        total += n % 10
        n //= 10
    return total


def digital_root(n):
    while n >= 10:
        n = digit_sum(n)
    return n
--
digit_sum(123) => 6
digit_sum(0) => 0
digital_root(99) => 9
digit_sum(-45) => 9
@@ mean | arithmetic | return total / len(xs) => return total * len(xs)
def total_of(xs):
    total = 0
    for x in xs:
        total += x
    return total


def mean(xs):
    if not xs:
        return 0
    total = total_of(xs)
    return total / len(xs)
--
mean([2, 4]) => 3
mean([]) => 0
mean([5]) => 5
total_of([1, 2]) => 3
@@ celsius | arithmetic | return (f - 32) * 5 / 9 => return (f + 32) * 5 / 9
def to_celsius(f):
    return (f - 32) * 5 / 9


def to_fahrenheit(c):
    return c * 9 / 5 + 32


def round_trip(f):
    return round(to_fahrenheit(to_celsius(f)), 6)
--
to_celsius(212) => 100
to_celsius(32) => 0
to_fahrenheit(100) => 212
round_trip(50) => 50
@@ parity | bitwise | return n & 1 => return n | 1
def parity(n):
    return n & 1


def is_even(n):
    return parity(n) == 0


def evens(xs):
    return [x for x in xs if is_even(x)]
--
parity(3) => 1
parity(4) => 0
evens([1, 2, 3, 4]) => [2, 4]
is_even(7) => False
@@ flags | bitwise | return flags | bit => return flags ^ bit
READ, WRITE, EXEC = 1, 2, 4


def add_flag(flags, bit):
    return flags | bit


def has_flag(flags, bit):
    return flags & bit == bit


def grant(flags, *bits):
    for bit in bits:
        flags = add_flag(flags, bit)
    return flags
--
add_flag(READ, WRITE) => 3
add_flag(READ, READ) => 1
has_flag(grant(0, READ, EXEC), EXEC) => True
grant(0) => 0
@@ shifts | bitwise | return (x << n) & 255 => return (x >> n) & 255
def shl8(x, n):
    return (x << n) & 255


def rotl8(x, n):
    n %= 8
    return shl8(x, n) | (x >> (8 - n))


def bits_set(x):
    return bin(x).count("1")
--
shl8(1, 3) => 8
shl8(0, 2) => 0
rotl8(129, 1) => 3
bits_set(rotl8(7, 2)) => 3
@@ diff | operand_swap | return b - a => return a - b
def elapsed(a, b):
    return b - a


def durations(stamps):
    return [elapsed(a, b) for a, b in zip(stamps, stamps[1:])]


def longest(stamps):
    return max(durations(stamps), default=0)
--
elapsed(3, 10) => 7
durations([1, 4, 9]) => [3, 5]
longest([0, 1]) => 1
longest([5]) => 0
@@ ratio | operand_swap | return part / whole => return whole / part
def share(part, whole):
    if whole == 0:
        return 0.0
    return part / whole


def percent(part, whole):
    return round(100 * share(part, whole), 1)
--
share(1, 4) => 0.25
share(3, 0) => 0.0
percent(1, 2) => 50.0
percent(2, 2) => 100.0
@@ leap | boolean | return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) => return y % 4 == 0 or (y % 100 != 0 or y % 400 == 0)
def is_leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def days_in_year(y):
    return 366 if is_leap(y) else 365


def leap_years(a, b):
    return [y for y in range(a, b) if is_leap(y)]
--
is_leap(2000) => True
is_leap(1900) => False
days_in_year(2023) => 365
leap_years(1999, 2005) => [2000, 2004]
@@ password | boolean | return long_enough and has_digit => return long_enough or has_digit
def strong(pw):
    long_enough = len(pw) >= 8
    has_digit = any(c.isdigit() for c in pw)
    return long_enough and has_digit


def weak_ones(pws):
    return [p for p in pws if not strong(p)]
--
strong("abcdefg1") => True
strong("abc1") => False
strong("abcdefgh") => False
weak_ones(["a", "abcdefg12"]) => ["a"]
@@ visible | negate | if not item.startswith("."): => if item.startswith("."):
def visible(names):
    out = []
    for item in names:
        if not item.startswith("."):
            out.append(item)
    return out


def count_hidden(names):
    return len(names) - len(visible(names))
--
visible([".git", "src"]) => ["src"]
visible([]) => []
count_hidden([".a", ".b", "c"]) => 2
visible(["x"]) => ["x"]
@@ nonempty | negate | return [line for line in lines if line.strip()] => return [line for line in lines if not line.strip()]
def nonempty(lines):
    return [line for line in lines if line.strip()]


def paragraphs(text):
    return len(nonempty(text.split("\n")))
--
nonempty(["a", " ", "b"]) => ["a", "b"]
paragraphs("x\n\ny") => 2
nonempty([]) => []
@@ retry | constant | def attempts_left(used, limit=3): => def attempts_left(used, limit=4):
def attempts_left(used, limit=3):
    return max(limit - used, 0)


def should_retry(used):
    return attempts_left(used) > 0
--
attempts_left(1) => 2
attempts_left(5) => 0
should_retry(2) => True
should_retry(3) => False
@@ pad | constant | return str(n).rjust(2, "0") => return str(n).rjust(3, "0")
def pad2(n):
    return str(n).rjust(2, "0")


def clock(h, m):
    return pad2(h) + ":" + pad2(m)
--
pad2(5) => "05"
pad2(12) => "12"
pad2(123) => "123"
clock(9, 7) => "09:07"
@@ hms | constant | hours = secs // 3600 => hours = secs // 3601
def split_seconds(secs):
    hours = secs // 3600
    minutes = secs % 3600 // 60
    return hours, minutes, secs % 60


def describe(secs):
    h, m, s = split_seconds(secs)
    return f"{h}h{m}m{s}s"
--
split_seconds(3661) => (1, 1, 1)
split_seconds(59) => (0, 0, 59)
describe(7200) => "2h0m0s"
@@ maxrun | name | best = max(best, run) => best = max(best, x)
def longest_run(xs, value):
    best = run = 0
    for x in xs:
        if x == value:
            run += 1
            best = max(best, run)
        else:
            run = 0
    return best


def has_streak(xs, value, n):
    return longest_run(xs, value) >= n
--
longest_run([1, 1, 0, 1], 1) => 2
longest_run([], 1) => 0
has_streak([2, 2, 2], 2, 3) => True
longest_run([0, 0], 1) => 0
@@ interest | name | return principal * (1 + rate) ** years => return principal * (1 + rate) ** rate
def compound(principal, rate, years):
    return principal * (1 + rate) ** years


def doubles_by(rate, horizon):
    return compound(1, rate, horizon) >= 2
--
compound(100, 0, 5) => 100
compound(100, 1, 2) => 400
doubles_by(1, 1) => True
doubles_by(0, 3) => False
@@ point | attribute | return Point(self.x + other.x, self.y + other.y) => return Point(self.x + other.x, self.y + other.x)
class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y

    def add(self, other):
        return Point(self.x + other.x, self.y + other.y)

    def as_tuple(self):
        return (self.x, self.y)


def path_end(steps):
    p = Point(0, 0)
    for dx, dy in steps:
        p = p.add(Point(dx, dy))
    return p.as_tuple()
--
path_end([(1, 2)]) => (1, 2)
path_end([(1, 1), (2, 5)]) => (3, 6)
path_end([]) => (0, 0)
@@ account | attribute | if amount > self.balance: => if amount > self.limit:
class Account:
    def __init__(self, balance, limit):
        self.balance = balance
        self.limit = limit

    def withdraw(self, amount):
        if amount > self.balance:
            return False
        self.balance -= amount
        return True


def spend(balance, amounts):
    acct = Account(balance, 1000)
    return [acct.withdraw(a) for a in amounts]
--
spend(10, [5, 6]) => [True, False]
spend(0, []) => []
spend(100, [100]) => [True]
@@ power | swap_args | return base ** exp => return exp ** base
def power(base, exp):
    return base ** exp


def squares(n):
    return [power(i, 2) for i in range(n)]
--
power(2, 3) => 8
power(5, 1) => 5
power(2, 2) => 4
squares(4) => [0, 1, 4, 9]
@@ between | swap_args | return in_range(x, lo, hi) => return in_range(lo, x, hi)
def in_range(x, lo, hi):
    return lo <= x <= hi


def between(x, lo, hi):
    return in_range(x, lo, hi)


def count_between(xs, lo, hi):
    return sum(1 for x in xs if between(x, lo, hi))
--
between(5, 1, 10) => True
between(0, 1, 10) => False
between(5, 5, 10) => True
count_between([1, 5, 11], 1, 10) => 2
@@ lastitem | index | return xs[len(xs) - 1] => return xs[len(xs) - 2]
def last(xs):
    if not xs:
        return None
    return xs[len(xs) - 1]


def last_word(text):
    return last(text.split())
--
last([1, 2, 3]) => 3
last([]) => None
last_word("hello big world") => "world"
last([9]) => 9
@@ pairs | index | out.append((xs[i], xs[i + 1])) => out.append((xs[i], xs[i]))
def adjacent_pairs(xs):
    out = []
    for i in range(len(xs) - 1):
        out.append((xs[i], xs[i + 1]))
    return out


def increasing(xs):
    return all(a < b for a, b in adjacent_pairs(xs))
--
adjacent_pairs([1, 2, 3]) => [(1, 2), (2, 3)]
adjacent_pairs([1]) => []
increasing([1, 2, 5]) => True
increasing([3, 3]) => False
@@ window | slice | return [sum(xs[i:i + k]) for i in range(len(xs) - k + 1)] => return [sum(xs[i:i + k - 1]) for i in range(len(xs) - k + 1)]
def window_sums(xs, k):
    return [sum(xs[i:i + k]) for i in range(len(xs) - k + 1)]


def best_window(xs, k):
    sums = window_sums(xs, k)
    return max(sums) if sums else None
--
window_sums([1, 2, 3, 4], 2) => [3, 5, 7]
window_sums([1, 2], 3) => []
best_window([5, 1, 1, 9], 2) => 10
@@ trimext | slice | return name[:dot] => return name[:dot - 1]
def stem(name):
    dot = name.rfind(".")
    if dot <= 0:
        return name
    return name[:dot]


def stems(names):
    return [stem(n) for n in names]
--
stem("a.txt") => "a"
stem(".bashrc") => ".bashrc"
stems(["x.tar.gz", "y"]) => ["x.tar", "y"]
@@ ngrams | range | return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)] => return [tuple(words[i:i + n]) for i in range(len(words) - n)]
def ngrams(words, n):
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def bigrams(text):
    return ngrams(text.split(), 2)
--
ngrams(["a", "b", "c"], 2) => [("a", "b"), ("b", "c")]
bigrams("x y") => [("x", "y")]
ngrams(["a"], 2) => []
@@ triangle | range | for i in range(1, n + 1): => for i in range(1, n):
def triangle(n):
    total = 0
    for i in range(1, n + 1):
        total += i
    return total


def triangles(k):
    return [triangle(n) for n in range(k)]
--
triangle(4) => 10
triangle(0) => 0
triangles(3) => [0, 1, 3]
@@ allpos | any_all | return all(x > 0 for x in xs) => return any(x > 0 for x in xs)
def all_positive(xs):
    return all(x > 0 for x in xs)


def valid_batches(batches):
    return [b for b in batches if all_positive(b)]
--
all_positive([1, 2]) => True
all_positive([1, -1]) => False
valid_batches([[1], [0, 2]]) => [[1]]
all_positive([]) => True
@@ anyerr | any_all | return any(line.startswith("ERROR") for line in lines) => return all(line.startswith("ERROR") for line in lines)
def has_error(lines):
    return any(line.startswith("ERROR") for line in lines)


def failed_jobs(logs):
    return sorted(name for name, lines in logs.items() if has_error(lines))
--
has_error(["ok", "ERROR x"]) => True
has_error([]) => False
failed_jobs({"a": ["ERROR"], "b": ["ok"]}) => ["a"]
@@ lowest | call | return min(prices) if prices else None => return max(prices) if prices else None
def cheapest(prices):
    return min(prices) if prices else None


def discount_target(prices):
    low = cheapest(prices)
    return None if low is None else low * 0.5
--
cheapest([3, 1, 2]) => 1
cheapest([]) => None
discount_target([4, 8]) => 2.0
@@ cleanline | call | return line.rstrip("\n") => return line.strip("\n")
def chomp(line):
    return line.rstrip("\n")


def chomp_all(lines):
    return [chomp(x) for x in lines]
--
chomp("a\n") => "a"
chomp("\nb\n") => "\nb"
chomp_all(["x\n", "y"]) => ["x", "y"]
@@ ext | call | return name.endswith(suffix) => return name.startswith(suffix)
def has_ext(name, suffix):
    return name.endswith(suffix)


def python_files(names):
    return [n for n in names if has_ext(n, ".py")]
--
has_ext("a.py", ".py") => True
has_ext(".pyc", ".py") => False
python_files(["x.py", "y.txt"]) => ["x.py"]
has_ext("abc", ".py") => False
@@ lastsep | call | i = path.rfind("/") => i = path.find("/")
def basename(path):
    i = path.rfind("/")
    return path[i + 1:]


def dirname(path):
    j = path.rfind("/")
    return path[:j] if j > 0 else ""
--
basename("a/b/c.txt") => "c.txt"
basename("c") => "c"
dirname("a/b/c") => "a/b"
@@ caps | call | return word[:1].upper() + word[1:].lower() => return word[:1].lower() + word[1:].lower()
def capitalize(word):
    return word[:1].upper() + word[1:].lower()


def title(text):
    return " ".join(capitalize(w) for w in text.split())
--
capitalize("hELLO") => "Hello"
title("big red dog") => "Big Red Dog"
capitalize("") => ""
@@ ispal | return | return True => return False
def is_palindrome(s):
    s = "".join(c.lower() for c in s if c.isalnum())
    for i in range(len(s) // 2):
        if s[i] != s[-1 - i]:
            return False
    return True


def palindromes(words):
    return [w for w in words if is_palindrome(w)]
--
is_palindrome("Racecar") => True
is_palindrome("ab") => False
palindromes(["noon", "no"]) => ["noon"]
@@ maxidx | return | return best_i => return best
def argmax(xs):
    best_i, best = 0, xs[0]
    for i, x in enumerate(xs):
        if x > best:
            best_i, best = i, x
    return best_i


def winner(names, votes):
    return names[argmax(votes)]
--
argmax([0, 10, 3]) => 1
argmax([7]) => 0
argmax([0, 0]) => 0
winner(["a", "b"], [1, 2]) => "b"
@@ drop | drop_condition | if item and item not in seen and item != "x": => if item and item not in seen and item != "x" and len(item) > 1:
def dedupe(items):
    seen = set()
    out = []
    for item in items:
        if item and item not in seen and item != "x":
            seen.add(item)
            out.append(item)
    return out


def unique_count(items):
    return len(dedupe(items))
--
dedupe(["a", "a", "bb"]) => ["a", "bb"]
dedupe(["", "x"]) => []
unique_count(["p", "q", "p"]) => 2
@@ eligible | drop_condition | return age >= 18 and member => return age >= 18 and member and age < 65
def eligible(age, member):
    return age >= 18 and member


def eligible_count(people):
    return sum(1 for age, member in people if eligible(age, member))
--
eligible(70, True) => True
eligible(17, True) => False
eligible_count([(30, True), (30, False)]) => 1
@@ firstneg | break_continue | break => continue
def first_negative(xs):
    found = None
    for x in xs:
        if x < 0:
            found = x
            break
    return found


def has_negative(xs):
    return first_negative(xs) is not None
--
first_negative([3, -1, -5]) => -1
first_negative([1]) => None
has_negative([0, -2]) => True
@@ skipcomments | break_continue | continue => break
def code_lines(lines):
    out = []
    for line in lines:
        if line.startswith("#"):
            continue
        out.append(line)
    return out


def count_code(text):
    return len(code_lines(text.splitlines()))
--
code_lines(["# a", "x", "# b", "y"]) => ["x", "y"]
code_lines([]) => []
count_code("a\nb") => 2
@@ absdiff | unary | return -d if d < 0 else d => return d if d < 0 else d
def distance(a, b):
    d = a - b
    return -d if d < 0 else d


def total_distance(points):
    return sum(distance(a, b) for a, b in zip(points, points[1:]))
--
distance(3, 5) => 2
distance(5, 3) => 2
total_distance([0, 4, 1]) => 7
@@ refund | unary | return -amount => return amount
def signed(amount, kind):
    if kind == "refund":
        return -amount
    return amount


def balance(entries):
    return sum(signed(a, k) for a, k in entries)
--
signed(5, "sale") => 5
balance([(10, "sale"), (3, "refund")]) => 7
balance([]) => 0
@@ rle | comparison | if c == prev: => if c != prev:
def rle(s):
    out = []
    prev, count = None, 0
    for c in s:
        if c == prev:
            count += 1
        else:
            if prev is not None:
                out.append(f"{prev}{count}")
            prev, count = c, 1
    if prev is not None:
        out.append(f"{prev}{count}")
    return "".join(out)
--
rle("aaab") => "a3b1"
rle("") => ""
rle("xy") => "x1y1"
@@ roman | comparison | while n >= value: => while n > value:
NUMERALS = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
            (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]


def to_roman(n):
    out = []
    for value, letters in NUMERALS:
        while n >= value:
            out.append(letters)
            n -= value
    return "".join(out)
--
to_roman(1994) => "MCMXCIV"
to_roman(3) => "III"
to_roman(0) => ""
@@ luhn | constant | d -= 9 => d -= 8
def luhn_ok(number):
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0
--
luhn_ok("4539 1488 0343 6467") => True
luhn_ok("8273 1232 7352 0569") => False
luhn_ok("0") => True
@@ gcd | arithmetic | a, b = b, a % b => a, b = b, a // b
def gcd(a, b):
    while b:
        a, b = b, a % b
    return abs(a)


def lcm(a, b):
    return abs(a * b) // gcd(a, b) if a and b else 0
--
gcd(12, 18) => 6
gcd(7, 0) => 7
lcm(4, 6) => 12
@@ base | arithmetic | n //= base => n -= base
DIGITS = "0123456789abcdef"


def to_base(n, base):
    if n == 0:
        return "0"
    out = []
    for _ in range(64):
        if n == 0:
            break
        out.append(DIGITS[n % base])
        n //= base
    return "".join(reversed(out))
--
to_base(255, 16) => "ff"
to_base(0, 2) => "0"
to_base(5, 2) => "101"
@@ caesar | arithmetic | return chr((ord(c) - base + shift) % 26 + base) => return chr((ord(c) - base - shift) % 26 + base)
def shift_char(c, shift):
    if not c.isalpha():
        return c
    base = ord("a") if c.islower() else ord("A")
    return chr((ord(c) - base + shift) % 26 + base)


def caesar(text, shift):
    return "".join(shift_char(c, shift) for c in text)
--
caesar("abc", 1) => "bcd"
caesar("Zz!", 1) => "Aa!"
caesar("", 5) => ""
@@ version | comparison | return (a > b) - (a < b) => return (a >= b) - (a < b)
def parse_version(v):
    return tuple(int(p) for p in v.split("."))


def compare(x, y):
    a, b = parse_version(x), parse_version(y)
    return (a > b) - (a < b)
--
compare("1.2", "1.10") => -1
compare("2.0", "1.9") => 1
compare("1.0", "1.0") => 0
@@ median | index | return (s[mid - 1] + s[mid]) / 2 => return (s[mid] + s[mid]) / 2
def median(xs):
    s = sorted(xs)
    mid = len(s) // 2
    if len(s) % 2:
        return s[mid]
    return (s[mid - 1] + s[mid]) / 2
--
median([3, 1, 2]) => 2
median([1, 2, 3, 4]) => 2.5
median([5]) => 5
@@ wrap | comparison | if len(line) + len(word) + 1 <= width: => if len(line) + len(word) + 1 < width:
def wrap(text, width):
    lines = []
    line = ""
    for word in text.split():
        if not line:
            line = word
        elif len(line) + len(word) + 1 <= width:
            line += " " + word
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines
--
wrap("aa bb cc", 5) => ["aa bb", "cc"]
wrap("", 4) => []
wrap("a b", 10) => ["a b"]
@@ transpose | range | return [[m[r][c] for r in range(len(m))] for c in range(len(m[0]))] => return [[m[r][c] for r in range(len(m) - 1)] for c in range(len(m[0]))]
def transpose(m):
    if not m:
        return []
    return [[m[r][c] for r in range(len(m))] for c in range(len(m[0]))]


def column(m, c):
    return transpose(m)[c]
--
transpose([[1, 2], [3, 4]]) => [[1, 3], [2, 4]]
transpose([]) => []
column([[1, 2], [3, 4], [5, 6]], 1) => [2, 4, 6]
@@ merge | comparison | start <= out[-1][1] => start < out[-1][1]
def merge_intervals(intervals):
    out = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [tuple(i) for i in out]
--
merge_intervals([(1, 3), (3, 5)]) => [(1, 5)]
merge_intervals([(5, 6), (1, 2)]) => [(1, 2), (5, 6)]
merge_intervals([]) => []
@@ pair_hist | pair | counts[k] = counts.get(k, 0) + 1 => counts[k] = counts.get(k, 1) + 1 ;; for k in keys: => for k in keys[1:]:
def histogram(keys):
    counts = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    return counts


def most_common(keys):
    counts = histogram(keys)
    return max(counts, key=counts.get) if counts else None
--
histogram(["a", "b", "a"]) => {"a": 2, "b": 1}
histogram([]) => {}
most_common(["x"]) => "x"
@@ pair_chunks | pair | return [xs[i:i + n] for i in range(0, len(xs), n)] => return [xs[i:i + n - 1] for i in range(0, len(xs) - 1, n)]
def chunks(xs, n):
    return [xs[i:i + n] for i in range(0, len(xs), n)]


def chunk_sums(xs, n):
    return [sum(c) for c in chunks(xs, n)]
--
chunks([1, 2, 3], 2) => [[1, 2], [3]]
chunks([], 2) => []
chunk_sums([1, 1, 1, 1], 2) => [2, 2]
@@ pair_clamp | pair | if x < lo: => if x > lo: ;; if x > hi: => if x < hi:
def clamp(x, lo, hi):
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


def normalize(xs):
    return [clamp(x, 0, 100) for x in xs]
--
clamp(0, 0, 10) => 0
clamp(50, 0, 10) => 10
normalize([-5, 50, 200]) => [0, 50, 100]
clamp(1, 0, 10) => 1
clamp(0, 0, 0) => 0
@@ pair_fizz | pair | if n % 15 == 0: => if n % 15 == 1: ;; if n % 5 == 0: => if n % 5 == 1:
def fizz(n):
    if n % 15 == 0:
        return "FizzBuzz"
    if n % 3 == 0:
        return "Fizz"
    if n % 5 == 0:
        return "Buzz"
    return str(n)


def fizz_line(n):
    return " ".join(fizz(i) for i in range(1, n + 1))
--
fizz(15) => "FizzBuzz"
fizz(10) => "Buzz"
fizz(9) => "Fizz"
fizz(7) => "7"
@@ pair_mean | pair | total += x => total -= x ;; return total / len(xs) => return total / (len(xs) + 1)
def mean(xs):
    total = 0
    for x in xs:
        total += x
    return total / len(xs)


def centered(xs):
    m = mean(xs)
    return [x - m for x in xs]
--
mean([2, 4]) => 3
centered([1, 3]) => [-1, 1]
mean([0, 0]) => 0
@@ pair_range | pair | for i in range(lo, hi + 1): => for i in range(lo + 1, hi):
def inclusive_sum(lo, hi):
    total = 0
    for i in range(lo, hi + 1):
        total += i
    return total


def sums_to(n):
    return inclusive_sum(1, n)
--
inclusive_sum(1, 3) => 6
inclusive_sum(2, 2) => 2
inclusive_sum(-1, 1) => 0
sums_to(4) => 10
@@ pair_search | pair | lo, hi = 0, len(xs) - 1 => lo, hi = 1, len(xs) - 1 ;; lo = mid + 1 => lo = mid + 2
def find(xs, target):
    lo, hi = 0, len(xs) - 1
    for _ in range(64):
        if lo > hi:
            break
        mid = (lo + hi) // 2
        if xs[mid] == target:
            return mid
        if xs[mid] < target:
            lo = mid + 1
        else:
            hi = mid - 1
    return -1
--
find([1, 3, 5, 7], 7) => 3
find([1, 3, 5, 7], 1) => 0
find([1, 3, 5, 7], 4) => -1
find([1, 3, 5, 7], 5) => 2
@@ pair_slug | pair | if c.isalnum(): => if c.isalpha(): ;; return "-".join(words) => return "_".join(words)
def slugify(text):
    words = []
    word = ""
    for c in text.lower():
        if c.isalnum():
            word += c
        elif word:
            words.append(word)
            word = ""
    if word:
        words.append(word)
    return "-".join(words)
--
slugify("Hello World 2") => "hello-world-2"
slugify("") => ""
slugify("a") => "a"
@@ pair_stack | pair | return self.items[-1] => return self.items[0] ;; return len(self.items) == 0 => return len(self.items) == 1
class Stack:
    def __init__(self):
        self.items = []

    def push(self, x):
        self.items.append(x)

    def peek(self):
        return self.items[-1]

    def empty(self):
        return len(self.items) == 0


def run(ops):
    s = Stack()
    for op in ops:
        s.push(op)
    return (s.peek(), s.empty())
--
run([1, 2]) => (2, False)
Stack().empty() => True
len(Stack().items) => 0
run([5]) => (5, False)
@@ pair_duration | pair | "h": 3600 => "h": 360 ;; "m": 60 => "m": 6
UNITS = {"h": 3600, "m": 60, "s": 1}


def parse_duration(text):
    total = 0
    number = ""
    for c in text:
        if c.isdigit():
            number += c
        else:
            total += int(number) * UNITS[c]
            number = ""
    return total
--
parse_duration("1h30m") => 5400
parse_duration("45s") => 45
parse_duration("2m5s") => 125
@@ deep_camel | deep | out.append(c.upper()) => out.append(c)
def snake_to_camel(name):
    out = []
    upper = False
    for c in name:
        if c == "_":
            upper = True
            continue
        if upper:
            out.append(c.upper())
            upper = False
        else:
            out.append(c)
    return "".join(out)
--
snake_to_camel("max_retry_count") => "maxRetryCount"
snake_to_camel("x") => "x"
@@ deep_flatten | deep | out.extend(flatten(x)) => out.append(x)
def flatten(xs):
    out = []
    for x in xs:
        if isinstance(x, list):
            out.extend(flatten(x))
        else:
            out.append(x)
    return out
--
flatten([1, [2, [3]]]) => [1, 2, 3]
flatten([]) => []
flatten([4]) => [4]
@@ deep_csv | deep | return text.split(",") => return [text]
def split_csv(text):
    if not text:
        return []
    return text.split(",")


def field_count(line):
    return len(split_csv(line))
--
split_csv("a,b,c") => ["a", "b", "c"]
split_csv("") => []
field_count("x") => 1
@@ deep_topk | deep | return sorted(counts, key=lambda w: (-counts[w], w))[:k] => return list(counts)[:k]
def top_k(words, k):
    counts = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    return sorted(counts, key=lambda w: (-counts[w], w))[:k]
--
top_k(["c", "b", "b"], 1) => ["b"]
top_k([], 3) => []
top_k(["z"], 1) => ["z"]
@@ deep_greet | deep | return "Hello, " + name + "!" => return "Hi " + name
def greet(name):
    return "Hello, " + name + "!"


def greet_all(names):
    return [greet(n) for n in names]
--
greet("Ann") => "Hello, Ann!"
greet_all([]) => []
"""


def _parse(text: str) -> tuple[Program, ...]:
    programs = []
    for block in text.split("@@ ")[1:]:
        header, _, rest = block.partition("\n")
        name, kind, bug = (part.strip() for part in header.split("|", 2))
        source, _, cases = rest.partition("--\n")
        edits = tuple(
            (old.strip(), new.strip())
            for old, _, new in (edit.partition(" => ") for edit in bug.split(" ;; "))
        )
        pairs = tuple(
            (call.strip(), expected.strip())
            for call, _, expected in (c.partition(" => ") for c in cases.strip().splitlines())
        )
        programs.append(Program(name, source.rstrip() + "\n", edits, pairs, kind))
    return tuple(programs)


PROGRAMS = _parse(ENTRIES)


def buggy_source(p: Program, edits: tuple[tuple[str, str], ...] | None = None) -> str:
    """``p``'s source with its planted bug (or only ``edits`` of it) applied."""
    text = p.source
    for old, new in p.bug if edits is None else edits:
        text = text.replace(old, new, 1)
    return text


def _tests(p: Program, kind: str) -> tuple[str, str, str]:
    """(file name, text, test command) of one form of the tests."""
    if kind == "pytest":
        body = "".join(
            f"\n\ndef test_{i}():\n    assert {call} == {want}\n"
            for i, (call, want) in enumerate(p.cases)
        )
        return (
            "test_main.py",
            "from main import *  # noqa: F403\n" + body,
            ("python -m pytest -q test_main.py"),
        )
    if kind == "unittest":
        body = "".join(
            f"\n    def test_{i}(self):\n        self.assertEqual({call}, {want})\n"
            for i, (call, want) in enumerate(p.cases)
        )
        text = "import unittest\n\nfrom main import *  # noqa: F403\n\n\n"
        text += "class TestMain(unittest.TestCase):" + body
        return "test_main.py", text, "python -m unittest test_main"
    body = "".join(f"    assert {call} == {want}\n" for call, want in p.cases)
    text = "from main import *  # noqa: F403\n\n\ndef check():\n" + body
    text += '\n\ncheck()\nprint("ok")\n'
    return "test.py", text, "python test.py"


def write_program(root: Path, p: Program, kind: str, source: str | None = None) -> tuple[Path, str]:
    """Write ``root/<kind>/<name>/`` (buggy ``main.py`` and its tests): (directory, test_cmd)."""
    project = root / kind / p.name
    project.mkdir(parents=True, exist_ok=True)
    (project / "main.py").write_text(buggy_source(p) if source is None else source)
    name, text, cmd = _tests(p, kind)
    (project / name).write_text(text)
    return project, cmd


def write_corpus(
    root: Path, kind: str, programs: tuple[Program, ...] | list[Program] = PROGRAMS
) -> list[tuple[Program, Path, str]]:
    return [(p, *write_program(root, p, kind)) for p in programs]


def _run(project: Path, cmd: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable if w == "python" else w for w in cmd.split()]
    return subprocess.run(argv, cwd=project, capture_output=True, text=True, timeout=20)


def check_corpus() -> list[str]:
    """Problems with the corpus ([] when every program is as described)."""
    problems = []
    names = Counter(p.name for p in PROGRAMS)
    problems += [f"{n}: name used {c} times" for n, c in names.items() if c > 1]
    with tempfile.TemporaryDirectory() as tmp:
        for p in PROGRAMS:
            for old, _ in p.bug:
                if p.source.count(old) != 1:
                    problems.append(f"{p.name}: {old!r} occurs {p.source.count(old)} times")
            try:
                ast.parse(buggy_source(p))
            except SyntaxError as exc:
                problems.append(f"{p.name}: buggy source does not parse: {exc}")
                continue
            for kind in KINDS:
                good, cmd = write_program(Path(tmp) / "good", p, kind, p.source)
                if _run(good, cmd).returncode != 0:
                    problems.append(f"{p.name}/{kind}: the correct source fails")
                bad, cmd = write_program(Path(tmp) / "bad", p, kind)
                result = _run(bad, cmd)
                if result.returncode == 0:
                    problems.append(f"{p.name}/{kind}: the bug does not fail")
                if kind == "pytest" and " passed" not in result.stdout:
                    problems.append(f"{p.name}: no case passes under the bug (no guard)")
            if len(p.bug) == 2:
                for edit in p.bug:
                    half, cmd = write_program(
                        Path(tmp) / "half", p, "script", buggy_source(p, (edit,))
                    )
                    if _run(half, cmd).returncode == 0:
                        problems.append(f"{p.name}: fixing one edit of the pair is enough")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    kinds = Counter(p.kind for p in PROGRAMS)
    print(f"{len(PROGRAMS)} programs: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    if args.check:
        problems = check_corpus()
        for line in problems:
            print("problem:", line)
        print(f"{len(problems)} problem(s)")
        sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
