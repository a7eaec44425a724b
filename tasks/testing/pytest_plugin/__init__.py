"""patchsmith's own pytest plugin (``patchsmith_guard``), loaded into tested repositories.

This directory is bound read-only into the sandbox and put on PYTHONPATH; the tests load
the plugin with ``-p patchsmith_guard``. Nothing here imports patchsmith.
"""
