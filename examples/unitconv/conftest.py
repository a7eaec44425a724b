"""Makes the project root the pytest rootdir and keeps `unitconv` importable."""
