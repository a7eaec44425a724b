"""Infrastructure: what the pipeline runs on, with no pipeline logic.

``sandbox/`` (bwrap and subprocess backends, limits, cgroups), ``workspace.py`` (overlay
workspaces per attempt), ``gitmirror.py`` (reading untrusted repositories without running
their git config), ``envs*.py`` (per-repository environments), ``store/`` (SQLAlchemy
provenance store and migrations), ``tracking*.py`` (MLflow), ``llm/`` (model backends),
``prefect_server.py`` (a private Prefect API), ``settings.py``.
Imported as ``patchsmith.infra`` (the folder sits at the repository root).
"""
