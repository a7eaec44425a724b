"""The pipeline: steps as Prefect tasks, the repair loop, and the rooms the steps use.

At this level, the loop and its steps (one hop from ``flows/``):

| module          | holds                                                              |
| --------------- | ------------------------------------------------------------------ |
| ``campaign.py`` | campaign state; per-instance provenance, resume, tracking          |
| ``repair.py``   | the loop: plan → (generate → sandbox-test → critique → refine)*    |
| ``steps.py``    | the loop's steps as retriable Prefect tasks                        |
| ``planning.py`` | baseline run, hang search, flaky tests, localization               |
| ``localize.py`` | spectrum-based fault localization (coverage + tracebacks)          |
| ``generate.py`` | the generator contract and the factory (by tier kind)              |
| ``critique.py`` | the deterministic verdict on one tested candidate                  |
| ``policy.py``   | escalation: keep going, next tier, or give up                      |
| ``slots.py``    | campaign slots, served cheapest tier first (breadth-first cascade) |
| ``routing.py``  | intent routing: the tier an instance starts at (rules, MiniLM)     |
| ``sync.py``     | ``patchsmith sync-tracking``                                       |
| ``cascade_fit.py`` | ``patchsmith tune-cascade``: escalation rules from outcomes     |

Rooms, by capability:

| room          | holds                                                                |
| ------------- | -------------------------------------------------------------------- |
| ``testing/``  | where a candidate is tested: prechecks, warm session, cold runs      |
| ``search/``   | tier 0: mutation search, its operators, source positions, scope      |
| ``llm/``      | LLM planner, generator, critic, their context and model plumbing     |
| ``edits/``    | unified diffs, SEARCH/REPLACE blocks, malformed candidates           |

Imported as ``patchsmith.tasks`` (the folder sits at the repository root).
"""
