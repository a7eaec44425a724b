"""Makes the project root the pytest rootdir and keeps `textkit` importable."""
