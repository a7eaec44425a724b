"""Intent routing on the example campaign: accuracy and the search time it would save.

Each instance of ``examples/campaign.yaml`` is planned as in a run (environment, baseline,
localization, in the sandbox), then routed with ``routing: {mode: embed}``; the router's
first tier is compared with the instance's answer-key tag (``fixable``: search fixes it;
``needs-llm``: it does not). The tags are read here only, never by the router.

With ``--store`` (the patchsmith.db of an earlier example run that had no routing), it also
prints what the route would have saved: the search attempts and their seconds spent on the
instances it sends to the model first, and what it would have cost on the ones it sends
there wrongly (their search would run after the model tier instead of before).

    python bench/routing.py [--margin 0.02] [--store /tmp/h/patchsmith.db]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
from pathlib import Path

import yaml

from patchsmith.config import RoutingConfig, load_campaign
from patchsmith.tasks.campaign import open_session
from patchsmith.tasks.repair import check_environment, plan_step, prepare_pristine
from patchsmith.tasks.routing import route

ROOT = Path(__file__).resolve().parent.parent


def search_cost(db: Path, instance_id: str) -> tuple[int, float]:
    """(attempts, seconds) the search tier spent on an instance in an earlier run."""
    con = sqlite3.connect(db)
    row = con.execute(
        "select count(*), coalesce(sum(json_extract(a.payload, '$.duration_s')), 0) "
        "from attempts a join instances i on i.id = a.instance_run_id "
        "where i.instance_id = ? and a.tier = 'search'",
        (instance_id,),
    ).fetchone()
    return int(row[0]), float(row[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--margin", type=float, default=RoutingConfig().margin)
    ap.add_argument("--store", type=Path, help="patchsmith.db of an earlier example run")
    args = ap.parse_args()
    path = ROOT / "examples" / "campaign.yaml"
    tags = {i["id"]: i.get("tags", []) for i in yaml.safe_load(path.read_text())["instances"]}
    campaign = load_campaign(path)
    routed = campaign.model_copy(
        update={"routing": RoutingConfig(mode="embed", margin=args.margin)}
    )
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        session = open_session(routed, home=home, out_dir=home / "out", tracking=False)
        right = saved_n = lost_n = judged = 0
        saved_s = lost_s = 0.0
        print(f"{'instance':38} {'tag':9} {'first tier':11} {'mutation':>8} {'model':>6}  ok")
        for inst in routed.instances:
            pristine = prepare_pristine(session.ctx, inst)
            problem = check_environment(session.ctx, inst, pristine)
            if problem:
                print(f"{inst.instance_id:38} skipped: {problem}")
                continue
            plan = plan_step(session.ctx, inst, pristine)
            session.ctx.end_screen(inst)  # the warm session the plan started
            _, record = route(routed, inst, plan, pristine)
            to_model = record["first"] != "search"
            expect_model = "needs-llm" in tags[inst.instance_id]
            ok = to_model == expect_model
            right += ok
            judged += 1
            if to_model and args.store:
                n, s = search_cost(args.store, inst.instance_id)
                if expect_model:
                    saved_n, saved_s = saved_n + n, saved_s + s
                else:
                    lost_n, lost_s = lost_n + n, lost_s + s
            print(
                f"{inst.instance_id:38} {tags[inst.instance_id][0]:9} {record['first']:11} "
                f"{record.get('similarity_mutation', 0):8.3f} "
                f"{record.get('similarity_model', 0):6.3f}  {'yes' if ok else 'NO'}"
            )
        print(f"\nrouting accuracy: {right}/{judged} (margin {args.margin})")
        if args.store:
            print(
                f"search skipped up front on needs-llm instances: {saved_n} attempts, "
                f"{saved_s:.0f} s of test time; fixable instances sent to the model first: "
                f"their {lost_n} search attempts ({lost_s:.0f} s) would wait for the model tier"
            )


if __name__ == "__main__":
    main()
