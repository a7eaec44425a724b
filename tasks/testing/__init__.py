"""Where a candidate is tested: a test command in a sandbox → a ``TestReport``.

``run.py`` runs the command (JUnit per-test outcomes, optional per-test coverage, the
per-test time limit) and checks the report; ``junit.py`` parses JUnit XML;
``pytest_plugin/`` is the guard plugin loaded into the repository's own pytest.
"""
