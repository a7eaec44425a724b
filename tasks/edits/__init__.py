"""Edits: every candidate becomes a git-style unified diff.

``diff.py`` makes, applies (all-or-nothing) and measures diffs; ``parse.py`` holds the diff
values and the strict parser; ``search_replace.py`` turns a model's SEARCH/REPLACE blocks
into a diff; ``malformed.py`` keeps an edit a generator could not use, so it counts.
"""
