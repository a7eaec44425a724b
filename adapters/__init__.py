"""LoRA adapters: the registry (``registry.py``) and which adapters a tier uses (``resolve.py``).

Functional adapters (they write the edits) and guardrail adapters (they back the LLM
critic) are registered separately, by ``name@version``, so a guardrail can be updated
without touching any functional adapter. ``patchsmith adapters …`` is the CLI.
"""
