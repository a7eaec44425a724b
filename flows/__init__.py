"""Prefect flows only: what a deployment, a schedule or ``patchsmith run`` starts.

| flow              | module               | does                                             |
| ----------------- | -------------------- | ------------------------------------------------ |
| ``run_campaign``  | ``run_campaign.py``  | every instance of a campaign, one subflow each   |
| ``repair_instance`` | ``repair_instance.py`` | one instance, triggered from the UI by its id |

A flow holds no pipeline logic: it builds the campaign state (``tasks/campaign.py``) and
calls the repair loop (``tasks/repair.py``) through the step tasks (``tasks/steps.py``).
Imported as ``patchsmith.flows``; deployed from the repository root as
``flows/run_campaign.py:run_campaign`` (see ``prefect.yaml``).
"""
