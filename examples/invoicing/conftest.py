"""Makes the project root the pytest rootdir and keeps `invoicing` importable."""
