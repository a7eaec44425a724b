"""Refactoring and migration: recipe goals, codemods, the refactor plan and critique."""
