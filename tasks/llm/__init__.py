"""The LLM steps: planner, generator, critic, and what they share.

``planner.py`` (context → plan), ``generator.py`` (SEARCH/REPLACE edits, one round per
``propose``), ``critic.py`` (a structured verdict combined with the deterministic one),
``context.py`` (the localization context cut to a token budget), ``models.py`` (backends
per ``ModelConfig``, JSON replies, provenance). Model backends live in ``infra/llm/``.
"""
