"""Tier 0: deterministic search over mutants of the suspicious lines (no model).

``mutation.py`` is the generator (ranked mutants, screened and deduplicated);
``operators.py`` the mutation operators; ``source.py`` exact source positions and cheap
syntax checks; ``scope.py`` which names a function can see at a line.
"""
