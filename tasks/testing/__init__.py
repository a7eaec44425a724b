"""Where a candidate is tested: a test command in a sandbox → a ``TestReport``.

``precheck.py`` rejects what needs no test run (does not compile, same syntax tree as an
earlier candidate); ``warm.py`` screens a candidate in a fork of one warm pytest session per
instance; ``run.py`` is the cold path and verify-only (a fresh sandboxed run: JUnit
per-test outcomes, optional per-test coverage, the per-test time limit) and checks the
report; ``junit.py`` parses JUnit XML; ``pytest_plugin/`` holds the plugins loaded into the
repository's own pytest (``patchsmith_guard``: per-test limits; ``patchsmith_warm``: the
warm session).
"""
