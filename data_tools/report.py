#!/usr/bin/env python3
"""Draws gemel's report: one self-contained HTML page (figures embedded as PNG) from the
results.h5 of `gemel merge`, and optionally the profile (`gemel profile`) and the simulation
(`gemel simulate`). `gemel report` runs this script and checks what it wrote; it can also be
run by hand:

    python data_tools/report.py --results R.h5 [--profile P.h5] [--simulation S.h5] --out r.html
"""
import argparse
import base64
import datetime
import html
import io
import os
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

MIB = 1024.0 * 1024.0
DECISION_COLOURS = {"accepted": "#2e7d32", "rejected": "#c62828"}
MODE_COLOURS = {"merged": "#1565c0", "unmerged": "#ef6c00", "no-swap-cost": "#757575"}


def text(value):
    """h5py gives str or bytes for string attributes, depending on how they were stored."""
    return value.decode() if isinstance(value, bytes) else str(value)


def strings(value):
    return [text(v) for v in np.atleast_1d(value)]


def decision_colour(decision):
    if decision.startswith("partial"):
        return "#f9a825"
    return DECISION_COLOURS.get(decision, "#616161")


def png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def figure(fig_id, caption, fig):
    return (f'<figure id="fig-{fig_id}"><img alt="{html.escape(caption)}" '
            f'src="data:image/png;base64,{png(fig)}"><figcaption>{html.escape(caption)}'
            f"</figcaption></figure>")


def table(header, rows):
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def read_results(path):
    with h5py.File(path, "r") as f:
        if text(f.attrs.get("format", "")) != "gemel-results":
            sys.exit(f"{path}: not a gemel results file")
        version = int(f.attrs["version"])
        score_key = "unmerged_acc" if version == 1 else "unmerged_score"
        final_key = "final_acc" if version == 1 else "final_score"
        tasks = []
        for name in strings(f["tasks"].attrs["order"]):
            a = f["tasks"][name].attrs
            tasks.append({
                "name": name, "arch": text(a["arch"]),
                "dataset": os.path.basename(text(a["dataset"])),
                "metric": text(a.get("metric", "top1")),
                "unmerged": float(a[score_key]), "target": float(a["target"]),
                "final": float(a[final_key]),
                "bytes": sum(d.size * d.dtype.itemsize for d in f["tasks"][name]["params"].values()),
            })
        shared = []
        for sid in f["shared"]:
            g = f["shared"][sid]
            shared.append({"id": sid, "signature": text(g.attrs["signature"]),
                           "members": strings(g.attrs["members"]),
                           "bytes": sum(d.size * d.dtype.itemsize for d in g.values())})
        trials = []
        for n in f["search/trials"]:
            a = f["search/trials"][n].attrs
            trials.append({
                "number": int(a["number"]), "label": text(a["label"]),
                "decision": text(a["decision"]), "models": strings(a["models"]),
                "trained": strings(a["trained"]) if len(a["trained"]) else [],
                "scores": [float(s) for s in np.atleast_1d(a["scores"])],
                "saved": int(a["bytes_saved"]), "seconds": float(a["seconds"]),
                "ranks": [int(x) for x in np.atleast_1d(a["ranks"])] if "ranks" in a else [],
                "started": float(a["started"]) if "started" in a else None,
            })
        search = f["search"].attrs
        busy = [float(x) for x in search.get("rank_busy_seconds", [])]
        idle = [float(x) for x in search.get("rank_idle_seconds", [])]
        memory = {k: int(v) for k, v in f["memory"].attrs.items()}
        timeline = f["memory/timeline"][()] if "memory/timeline" in f else np.zeros((0, 2))
        status = text(f.attrs["status"])
    trials.sort(key=lambda t: t["number"])
    return {"tasks": tasks, "shared": shared, "trials": trials, "memory": memory,
            "timeline": np.asarray(timeline, dtype=float).reshape(-1, 2), "status": status,
            "busy": busy, "idle": idle}


def ranks_section(r):
    """Per rank of the job: when it trained (a trial that held one of its tasks, or, with
    --parallel-trials, the trial it ran) and when it waited, over the search; only for a job of
    several ranks."""
    n = len(r["busy"])
    if n < 2:
        return ""
    tl = r["timeline"]
    ends = (list(tl[:, 0]) if len(tl) == len(r["trials"])
            else list(np.cumsum([t["seconds"] for t in r["trials"]])))
    fig, ax = plt.subplots(figsize=(12, 0.8 + 0.5 * n))
    parallel = any(t["started"] is not None for t in r["trials"])
    if parallel:  # trials of one wave overlap in time: waiting is what no trial covers
        span = max([t["started"] + t["seconds"] for t in r["trials"]] + [0.0])
        for rank in range(n):
            ax.broken_barh([(0, span / 60.0)], (rank - 0.4, 0.8), color="#eceff1", lw=0)
    for t, end in zip(r["trials"], ends):
        start = t["started"] if t["started"] is not None else end - t["seconds"]
        for rank in range(n):
            on = rank in t["ranks"]
            if parallel and not on:
                continue
            ax.broken_barh([(start / 60.0, t["seconds"] / 60.0)], (rank - 0.4, 0.8),
                           color=decision_colour(t["decision"]) if on else "#eceff1",
                           edgecolor="white", lw=0.5)
    ax.set_yticks(range(n), [f"rank {k}" for k in range(n)])
    ax.invert_yaxis()
    ax.set_xlabel("search time (min)")
    ax.set_title("what each rank did: trained in the trial (coloured by its decision) or waited (grey)")
    rows = []
    for k in range(n):
        total = r["busy"][k] + r["idle"][k]
        rows.append([f"rank {k}", f"{r['busy'][k]:.0f} s", f"{r['idle'][k]:.0f} s",
                     f"{100.0 * r['busy'][k] / total:.0f}%" if total > 0 else "-"])
    return ('<section id="ranks"><h2>Ranks</h2>'
            + figure("ranks", "Each rank's trials over the search", fig)
            + table(["rank", "busy", "idle", "busy share"], rows) + "</section>")


def workload_section(r, path):
    rows = []
    for t in r["tasks"]:
        ok = "ok" if t["final"] >= t["target"] else "below target"
        rows.append([t["name"], t["arch"], t["dataset"], t["metric"], f"{t['unmerged']:.4f}",
                     f"{t['target']:.4f}", f"{t['final']:.4f}", ok])
    m = r["memory"]
    total, saved = m.get("total", 0), m.get("achieved_savings", 0)
    summary = (f"<p>{len(r['tasks'])} tasks, {len(r['trials'])} trials ({html.escape(r['status'])}). "
               f"Weights: {total / MIB:.1f} MiB unmerged, {(total - saved) / MIB:.1f} MiB merged: "
               f"<b>{saved / MIB:.1f} MiB saved ({100.0 * saved / max(total, 1):.1f}%)</b>, of "
               f"{m.get('possible_savings', 0) / MIB:.1f} MiB that sharing every layer could save."
               f"</p>")
    fig, ax = plt.subplots(figsize=(9, 0.5 + 0.55 * len(r["tasks"])))
    y = np.arange(len(r["tasks"]))
    ax.barh(y + 0.2, [t["unmerged"] for t in r["tasks"]], 0.4, label="unmerged", color="#90a4ae")
    ax.barh(y - 0.2, [t["final"] for t in r["tasks"]], 0.4, label="merged", color="#1565c0")
    for i, t in enumerate(r["tasks"]):
        ax.plot([t["target"]] * 2, [i - 0.45, i + 0.45], color="#c62828", lw=2,
                label="target" if i == 0 else None)
    ax.set_yticks(y, [f"{t['name']} ({t['metric']})" for t in r["tasks"]])
    ax.invert_yaxis()
    ax.set_xlabel("score")
    ax.legend(loc="lower right", fontsize=8)
    return ('<section id="workload"><h2>Workload</h2>'
            f"<p class=src>{html.escape(path)}</p>{summary}"
            + table(["task", "arch", "dataset", "metric", "unmerged", "target", "merged", ""], rows)
            + figure("scores-final", "Each task's score, unmerged and merged, against its target", fig)
            + "</section>")


def timeline_section(r):
    total = r["memory"].get("total", 0)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 3.6))
    tl = r["timeline"]
    if len(tl):
        a1.step(tl[:, 0] / 60.0, tl[:, 1] / MIB, where="post", color="#1565c0")
        a1.scatter(tl[:, 0] / 60.0, tl[:, 1] / MIB, s=12, color="#1565c0")
    a1.axhline(total / MIB, color="#90a4ae", ls="--", lw=1, label="unmerged")
    a1.set_xlabel("search time (min)")
    a1.set_ylabel("weight bytes (MiB)")
    a1.set_title("weights over time")
    a1.legend(fontsize=8)
    numbers = [t["number"] for t in r["trials"]]
    a2.bar(numbers, [t["saved"] / MIB for t in r["trials"]],
           color=[decision_colour(t["decision"]) for t in r["trials"]])
    a2.set_xlabel("trial")
    a2.set_ylabel("saved after the trial (MiB)")
    a2.set_title("savings over trials (green accepted, red rejected, amber partial)")
    a2.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    rows = [[t["number"], t["label"], t["decision"], len(t["models"]), f"{t['saved'] / MIB:.1f} MiB",
             f"{t['seconds']:.0f} s"] for t in r["trials"]]
    return ('<section id="timeline"><h2>Merge timeline</h2>'
            + figure("timeline", "Weight bytes over the search, and the savings kept after each trial", fig)
            + table(["trial", "group", "decision", "models", "saved after", "time"], rows)
            + "</section>")


def scores_section(r):
    tasks = r["tasks"]
    cols = min(3, max(1, len(tasks)))
    rows_n = (len(tasks) + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 2.8 * rows_n), squeeze=False)
    for k, t in enumerate(tasks):
        ax = axes[k // cols][k % cols]
        xs, ys, cs = [], [], []
        for trial in r["trials"]:
            if t["name"] in trial["trained"]:
                xs.append(trial["number"])
                ys.append(trial["scores"][trial["trained"].index(t["name"])])
                cs.append(decision_colour(trial["decision"]))
        ax.axhline(t["target"], color="#c62828", ls="--", lw=1, label="target")
        ax.axhline(t["unmerged"], color="#90a4ae", ls=":", lw=1, label="unmerged")
        if xs:
            ax.plot(xs, ys, color="#1565c0", lw=1)
            ax.scatter(xs, ys, c=cs, s=30, zorder=3)
        ax.set_title(t["name"], fontsize=9)
        if r["trials"]:  # every panel on the same trial axis, even with one point
            first, last = r["trials"][0]["number"], r["trials"][-1]["number"]
            ax.set_xlim(first - 0.5, last + 0.5)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("trial", fontsize=8)
        ax.set_ylabel(t["metric"], fontsize=8)
        if k == 0:
            ax.legend(fontsize=7)
    for k in range(len(tasks), rows_n * cols):
        axes[k // cols][k % cols].axis("off")
    fig.tight_layout()
    return ('<section id="scores"><h2>Scores per trial</h2>'
            + figure("scores", "Each task's score after every trial that retrained it (dot colour: "
                     "the trial's decision), against its target", fig)
            + "</section>")


def sharing_section(r):
    tasks = [t["name"] for t in r["tasks"]]
    shared = r["shared"]
    if not shared:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.text(0.5, 0.5, "no layer is shared", ha="center", va="center")
        ax.axis("off")
        return ('<section id="sharing"><h2>Shared layers</h2>'
                + figure("sharing", "No layer is shared", fig) + "</section>")
    fig, ax = plt.subplots(figsize=(2.2 + 1.9 * len(tasks), 0.9 + 0.42 * len(shared)))
    grid = np.zeros((len(shared), len(tasks)))
    for i, s in enumerate(shared):
        for m in s["members"]:
            task, module = m.split(":", 1)
            if task in tasks:
                j = tasks.index(task)
                grid[i, j] = 1
                ax.text(j, i, module, ha="center", va="center", fontsize=7, color="white")
    ax.imshow(grid, cmap=matplotlib.colors.ListedColormap(["#eceff1", "#1565c0"]), aspect="auto",
              vmin=0, vmax=1)
    ax.set_xticks(range(len(tasks)), tasks, rotation=20, ha="right", fontsize=8)
    ax.set_yticks(range(len(shared)),
                  [f"{s['id']}  {s['signature'].split(' p')[0]}  ({s['bytes'] / MIB:.1f} MiB)"
                   for s in shared], fontsize=8)
    ax.set_xticks(np.arange(-0.5, len(tasks)), minor=True)
    ax.set_yticks(np.arange(-0.5, len(shared)), minor=True)
    ax.grid(which="minor", color="white", lw=2)
    ax.tick_params(which="minor", length=0)
    rows = [[s["id"], s["signature"], f"{s['bytes'] / MIB:.2f} MiB", len(s["members"]),
             ", ".join(s["members"])] for s in shared]
    return ('<section id="sharing"><h2>Shared layers</h2>'
            + figure("sharing", "Which layers of which models share one tensor: a row per shared "
                     "tensor, the layer's name in each model that uses it", fig)
            + table(["id", "layer", "bytes", "models", "members"], rows) + "</section>")


def profile_section(path):
    with h5py.File(path, "r") as f:
        tasks = strings(f.attrs["tasks"])
        device = text(f.attrs["device"])
        measure = text(f.attrs["memory_measure"])
        merged, unmerged = int(f.attrs["merged_set_bytes"]), int(f.attrs["unmerged_set_bytes"])
        saved = int(f.attrs["saved_bytes"])
        per = {t: {k: f["tasks"][t][k][()] for k in ("batch_sizes", "latency_median", "latency_p95",
                                                      "run_bytes")} | dict(f["tasks"][t].attrs)
               for t in tasks}
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(14, 3.8))
    y = np.arange(len(tasks))
    a1.barh(y, [per[t]["load_seconds"] * 1e3 for t in tasks], color="#1565c0")
    a1.set_yticks(y, tasks, fontsize=8)
    a1.invert_yaxis()
    a1.set_xlabel("load time alone (ms, median)")
    a1.set_title("loading each model")
    for t in tasks:
        p = per[t]
        a2.errorbar(p["batch_sizes"], p["latency_median"] * 1e3,
                    yerr=(p["latency_p95"] - p["latency_median"]) * 1e3, marker="o", capsize=3,
                    label=t)
    a2.set_xlabel("batch size")
    a2.set_ylabel("latency (ms): median, bar to p95")
    a2.set_xscale("log", base=2)
    a2.set_title(f"running on {device}")
    a2.legend(fontsize=7)
    a3.bar(["unmerged", "merged"], [unmerged / MIB, merged / MIB],
           color=[MODE_COLOURS["unmerged"], MODE_COLOURS["merged"]])
    a3.set_ylabel(f"resident (MiB, measured: {measure})")
    a3.set_title(f"all models resident: {(unmerged - merged) / MIB:.1f} MiB less\n"
                 f"(the merge saved {saved / MIB:.1f} MiB of weights)", fontsize=9)
    fig.tight_layout()
    rows = [[t, f"{per[t]['weight_bytes'] / MIB:.1f} MiB", f"{per[t]['resident_bytes'] / MIB:.1f} MiB",
             f"{per[t]['load_seconds'] * 1e3:.1f} ms"]
            + [f"{l * 1e3:.1f} / {q * 1e3:.1f} ms" for l, q in
               zip(per[t]["latency_median"], per[t]["latency_p95"])] for t in tasks]
    sizes = per[tasks[0]]["batch_sizes"] if tasks else []
    return ('<section id="profile"><h2>Profile</h2>'
            f"<p class=src>{html.escape(path)} (device {html.escape(device)})</p>"
            + figure("profile", "Load times, latency per batch size, and the resident bytes of all "
                     "models, merged and unmerged", fig)
            + table(["task", "weights", "resident", "load"] + [f"batch {b} (median / p95)" for b in sizes],
                    rows) + "</section>")


def simulation_section(path):
    with h5py.File(path, "r") as f:
        if text(f.attrs.get("format", "")) != "gemel-simulation":
            sys.exit(f"{path}: not a gemel simulation file")
        modes = strings(f.attrs["modes"])
        budgets = f["memory_bytes"][()] / MIB
        streams = strings(f.attrs["streams"])
        frames = int(f.attrs["frames"])
        fps, sla = float(f.attrs["fps"]), float(f.attrs["sla_seconds"])
        data = {m: {k: f[m][k][()] for k in ("processed", "within_sla", "loads", "load_seconds")}
                for m in modes}
        fits = {m: int(f[m].attrs["all_resident_bytes"]) / MIB for m in modes}
    offered = frames * len(streams)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 3.8))
    for m in modes:
        c = MODE_COLOURS.get(m)
        a1.plot(budgets, 100.0 * data[m]["processed"] / offered, marker="o", label=m, color=c)
        a2.plot(budgets, 100.0 * data[m]["within_sla"] / offered, marker="o", label=m, color=c)
    for ax, what in ((a1, "frames processed (%)"), (a2, "frames within the SLA (%)")):
        for m in ("merged", "unmerged"):
            if m in fits:
                ax.axvline(fits[m], color=MODE_COLOURS[m], ls=":", lw=1)
                ax.text(fits[m], 3, f" all {m} fit", color=MODE_COLOURS[m], fontsize=7,
                        rotation=90, va="bottom")
        ax.set_xlabel("memory budget (MiB)")
        ax.set_ylabel(what)
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    a1.set_title(f"{len(streams)} streams x {frames} frames at {fps:g} fps")
    a2.set_title(f"SLA {sla * 1e3:g} ms")
    fig.tight_layout()
    rows = []
    for i, b in enumerate(budgets):
        rows.append([f"{b:.0f} MiB"] + [f"{100.0 * data[m]['processed'][i] / offered:.1f}% "
                                        f"({int(data[m]['loads'][i])} loads)" for m in modes])
    return ('<section id="simulation"><h2>Edge simulation</h2>'
            f"<p class=src>{html.escape(path)}</p>"
            + figure("simulation", "Frames processed and frames within the SLA against the memory "
                     "budget, merged against unmerged", fig)
            + table(["memory"] + modes, rows) + "</section>")


STYLE = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1200px;color:#212121}
h1{margin-bottom:4px} h2{border-bottom:2px solid #1565c0;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #cfd8dc;padding:3px 8px;text-align:left} th{background:#eceff1}
figure{margin:12px 0} figure img{max-width:100%} figcaption{font-size:13px;color:#546e7a}
.src{font-size:12px;color:#78909c} #render-check{font-size:12px;color:#78909c}
"""

# After load, the page states how many of its figures the browser decoded (the test reads it).
CHECK = """
<script>
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('figure img'), ok = 0;
  imgs.forEach(function (i) { if (i.complete && i.naturalWidth > 0) ok++; });
  document.getElementById('render-check').textContent =
      'figures rendered: ' + ok + ' of ' + imgs.length;
});
</script>
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", required=True)
    ap.add_argument("--profile")
    ap.add_argument("--simulation")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    r = read_results(args.results)
    parts = [workload_section(r, args.results), timeline_section(r), ranks_section(r),
             scores_section(r), sharing_section(r)]
    if args.profile:
        parts.append(profile_section(args.profile))
    if args.simulation:
        parts.append(simulation_section(args.simulation))
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>gemel report</title>"
            f"<style>{STYLE}</style></head><body><h1>gemel report</h1>"
            f"<p class=src>written {stamp} from {html.escape(os.path.abspath(args.results))}</p>"
            f"<p id='render-check'>figures rendered: (script not run)</p>"
            + "".join(parts) + CHECK + "</body></html>")
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(page)


if __name__ == "__main__":
    main()
