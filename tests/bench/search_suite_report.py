"""The search suite's table: per merge run, the share of the possible savings confirmed after 5,
10 and 15 minutes, the trials by decision, and whether `gemel eval` found every task at target;
then the median and the worst. Usage: search_suite_report.py RUN_DIR... (each with results.h5
and eval.json, as tests/bench/search_suite.sh leaves them)."""
import json
import os
import re
import statistics
import sys

import h5py

MIB = 1 << 20


def confirmed_at(timeline, total, seconds):
    """Bytes saved by the last point of the timeline at or before `seconds`."""
    saved = 0
    for t, merged in timeline:
        if t <= seconds:
            saved = total - merged
    return saved


def ended_because(log_path):
    """The merge log's last word on why the search ended."""
    reason = "?"
    if os.path.exists(log_path):
        with open(log_path, errors="replace") as log:
            for line in log:
                m = re.search(r"; ended: (.*)", line)
                if m:
                    reason = m.group(1).strip()
    return reason[:48]


def row(run_dir):
    name = os.path.basename(run_dir.rstrip("/"))
    path = os.path.join(run_dir, "results.h5")
    if not os.path.exists(path):
        return name, None
    with h5py.File(path, "r") as f:
        mem = f["memory"].attrs
        total, possible = int(mem["total"]), int(mem["possible_savings"])
        timeline = [(float(t), int(b)) for t, b in f["memory/timeline"][:]]
        decisions = {}
        for key in f["search/trials"]:
            d = f["search/trials"][key].attrs["decision"]
            d = (d.decode() if isinstance(d, bytes) else str(d)).split()[0]
            decisions[d] = decisions.get(d, 0) + 1
        models = len(f["tasks"])
        status = f.attrs["status"]
        status = status.decode() if isinstance(status, bytes) else str(status)
    shares = [100.0 * confirmed_at(timeline, total, 60 * m) / max(possible, 1) for m in (5, 10, 15)]
    met = "?"
    eval_path = os.path.join(run_dir, "eval.json")
    if os.path.exists(eval_path):
        try:
            with open(eval_path) as f:
                ev = json.load(f)
            below = [t["name"] for t in ev["tasks"] if not t["met"]]
            met = "all" if not below else "below: " + ",".join(below)
        except (ValueError, KeyError):
            met = "eval failed"
    return name, dict(models=models, possible=possible / MIB, shares=shares, decisions=decisions,
                      met=met, status=status, seconds=timeline[-1][0] if timeline else 0.0,
                      reason=ended_because(os.path.join(run_dir, "merge.log")))


def main(dirs):
    rows = [row(d) for d in dirs]
    print(f"{'run':<16}{'models':>7}{'possible':>10}{'5 min':>8}{'10 min':>8}{'15 min':>8}"
          f"{'acc/part/rej':>14}  {'eval':<12} ended")
    finals = []
    for name, r in rows:
        if r is None:
            print(f"{name:<16}  (no results.h5)")
            continue
        d = r["decisions"]
        trials = f"{d.get('accepted', 0)}/{d.get('partial', 0)}/{d.get('rejected', 0)}"
        others = sum(v for k, v in d.items() if k not in ("accepted", "partial", "rejected"))
        if others:
            trials += f"+{others}"
        s = r["shares"]
        print(f"{name:<16}{r['models']:>7}{r['possible']:>8.1f}Mi{s[0]:>7.0f}%{s[1]:>7.0f}%"
              f"{s[2]:>7.0f}%{trials:>14}  {r['met']:<12} {r['reason']}")
        finals.append((s[2], name))
    if finals:
        worst = min(finals)
        print(f"median at 15 min: {statistics.median(v for v, _ in finals):.0f}%;"
              f" worst: {worst[0]:.0f}% ({worst[1]}); {len(finals)} runs")


if __name__ == "__main__":
    main(sys.argv[1:])
