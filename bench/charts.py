"""The benchmark's figures as SVG charts, for the README and docs/ (issue 23, item 7).

bench/compare.py saves a sweep's figures as JSON (``--json``) and calls
:func:`draw` at its end; this module re-draws the same charts from a saved file:

    .venv/bin/python bench/charts.py docs/img/bench-compare.json [--out docs/img]

Three charts, each an SVG file in the output folder:

* ``bench-throughput.svg``: end-to-end messages per second against concurrent
  sessions, Lamson and Salmon 3.3 (a point that did not finish is drawn apart:
  a cross at the rate it had until it stalled, with how many replies arrived);
* ``bench-latency.svg``: p50 and p99 from a message's 250 to its reply at the
  sink, per session count, measured paced at half the capacity just measured;
* ``bench-cpu.svg``: CPU milliseconds per message by stage, stacked (receiver,
  routers, relay, Redis, the rest of our processes; the smart host and the load
  client are not ours and are left out), Salmon's one process beside.

The files are meant to live in git, so re-drawing the same JSON gives the same
bytes: no date in the metadata, a fixed salt for the ids matplotlib generates,
text kept as text (``svg.fonttype`` none: smaller, diffable, the viewer's
sans-serif font). matplotlib is used without pyplot (no global figure state;
the Agg backend is selected so that nothing looks for a display).

The JSON (schema 1), written by bench/compare.py::

    {"schema": 1, "when": "2026-12-08 01:00 UTC", "cores": 2,
     "settings": {"messages": 2000, "size": 1000, "client": "smtp-source", "senders": 100, "routers": 2,
                  "config": "shipped"},
     "points": [{"sessions": 1, "lamson": LOAD, "salmon": LOAD | null, "latency": LOAD | null}, ...]}

where LOAD is ``{"messages", "sessions", "client", "replies", "seconds", "rate", "complete",
"cpu_ms": {program: ms per message}, "ours_ms", "latency_ms": {"p50", "p99"} | null, ...}``
and a latency LOAD also has ``"paced_rate"`` (the messages per second it was paced at).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.axes import Axes  # noqa: E402 - after the backend is chosen
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter  # noqa: E402

#: Names of the files written, by chart.
FILES = {"throughput": "bench-throughput.svg", "latency": "bench-latency.svg", "cpu": "bench-cpu.svg"}
LAMSON = "#1f5fa8"
SALMON = "#e07b22"
#: Stages of the CPU chart: (label, colour). A program belongs to the first stage whose test it passes.
STAGES = [("receiver", "#1f5fa8"), ("routers", "#5b9bd5"), ("relay", "#70ad47"), ("Redis", "#c00000"),
          ("other (metrics, web, supervisord)", "#a5a5a5")]
#: Programs that are not the pipeline: the smart host and the logging server (the load client is apart).
NOT_OURS = {"sink", "log"}
#: matplotlib settings while drawing: a fixed salt for generated ids, text as text (see the docstring).
STYLE: dict[Any, Any] = {
    "svg.hashsalt": "lamson-bench",
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
}

Figures = dict[str, Any]


def stage(program: str) -> str:
    """The stage of the CPU chart a supervised program belongs to."""
    if program == "receiver":
        return "receiver"
    if program.startswith("router"):
        return "routers"
    if program == "relay":
        return "relay"
    if program == "redis":
        return "Redis"
    return "other (metrics, web, supervisord)"


def subtitle(figures: Figures) -> str:
    """What produced the figures, under every chart: a chart without its conditions misleads."""
    s = figures.get("settings", {})
    text = (f"{s.get('messages', '?')} messages of ~{s.get('size', '?')} B per point, client {s.get('client', '?')}, "
            f"{s.get('routers', '?')} router workers; {figures.get('cores', '?')} shared cores, {figures.get('when', '')}")
    if s.get("config"):  # which configuration ran (bench/pipeline.py's Config.label: "shipped" or the flags)
        text += f"\nconfiguration: {s['config']}"
    other = [p["lamson"]["other_work"] for p in figures["points"] if p.get("lamson", {}).get("other_work") is not None]
    if other:  # a shared machine: say how much of it other work took while ours was measured
        low, high = round(100 * min(other)), round(100 * max(other))
        text += f"\nother work on the machine during our points: {low}–{high} % of all cores" if low != high else \
            f"\nother work on the machine during our points: {low} % of all cores"
    return text


def session_axis(ax: Axes, sessions: list[int]) -> None:
    """A logarithmic x axis labelled at the session counts measured, nowhere else."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator([float(s) for s in sessions]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([str(s) for s in sessions])
    ax.set_xlabel("concurrent SMTP sessions")


def new_figure(figures: Figures, title: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(7.2, 4.2), layout="constrained")  # titles, labels and legends never overlap
    ax = fig.add_subplot()
    fig.suptitle(title, fontsize=12, fontweight="bold")
    ax.set_title(subtitle(figures), fontsize=8, color="#555555")
    return fig, ax


def throughput(figures: Figures) -> Figure:
    """End-to-end msg/s against sessions, one line per project; unfinished points as crosses."""
    fig, ax = new_figure(figures, "End-to-end throughput (replies at the sink per second)")
    points = figures["points"]
    sessions = [p["sessions"] for p in points]
    # Lamson's values under its points, Salmon's above: the lines are often close.
    for name, key, colour, below in (("Lamson (durable)", "lamson", LAMSON, True),
                                     ("Salmon 3.3 (not durable)", "salmon", SALMON, False)):
        done = [(p["sessions"], p[key]["rate"]) for p in points if p.get(key) and p[key]["complete"]]
        cut = [(p["sessions"], p[key]["rate"]) for p in points if p.get(key) and not p[key]["complete"]]
        stalled = [(p["sessions"], p[key]) for p in points if p.get(key) and not p[key]["complete"]]
        if done:
            xs, ys = zip(*done, strict=True)
            ax.plot(xs, ys, marker="o", color=colour, label=name, linewidth=2)
            for x, y in done:
                ax.annotate(f"{y:.0f}", (x, y), textcoords="offset points", xytext=(0, -14 if below else 7),
                            ha="center", fontsize=8, color=colour)
        if cut:
            xs, ys = zip(*cut, strict=True)
            ax.plot(xs, ys, linestyle="none", marker="x", markersize=9, color=colour,
                    label=f"{name.split(' (')[0]}: stalled (its rate until then)")
            for x, load in stalled:
                ax.annotate(f"stalled after\n{load['replies']} of {load['messages']}", (x, load["rate"]),
                            textcoords="offset points", xytext=(-9, 4), ha="right", fontsize=7, color=colour)
    session_axis(ax, sessions)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.12)  # room for the values written above the points
    ax.set_ylabel("messages per second")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8, frameon=False)
    return fig


def latency(figures: Figures) -> Figure:
    """p50 and p99 of 250-to-reply latency per session count, paced at half the measured capacity."""
    fig, ax = new_figure(figures, "Latency from the receiver's 250 to the reply at the sink")
    points = [p for p in figures["points"] if p.get("latency") and p["latency"].get("latency_ms")]
    width = 0.38
    for offset, (which, colour) in enumerate((("p50", "#5b9bd5"), ("p99", LAMSON))):
        xs = [i + (offset - 0.5) * width for i in range(len(points))]
        ys = [p["latency"]["latency_ms"][which] for p in points]
        bars = ax.bar(xs, ys, width, color=colour, label=which)
        ax.bar_label(bars, fmt="%.0f", fontsize=8, padding=2)
    ax.set_xlim(-0.8, max(len(points), 3) - 0.2)  # one or two points: bars of the usual width, not wide slabs
    ax.set_xticks(range(len(points)))
    ax.set_xticklabels([f"{p['sessions']}\nat {p['latency'].get('paced_rate', 0):.0f} msg/s" for p in points])
    ax.set_xlabel("concurrent SMTP sessions, paced at half the throughput measured (smtplib client)")
    ax.set_yscale("log")  # tens of ms when idle, seconds near saturation: both readable
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.set_ylabel("milliseconds (log scale)")
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    if not points:
        ax.text(0.5, 0.5, "no latency runs in this sweep (bench/compare.py --latency)", ha="center",
                transform=ax.transAxes)
    return fig


def cpu(figures: Figures) -> Figure:
    """CPU ms per message by stage, stacked, per session count; Salmon's one process beside."""
    fig, ax = new_figure(figures, "CPU per message, all cores (sink and load client excluded)")
    points = [p for p in figures["points"] if p.get("lamson")]
    ticks: list[float] = []
    labels: list[str] = []
    seen: set[str] = set()
    cut = False
    for i, point in enumerate(points):
        x = i * 2.6
        by_stage: dict[str, float] = {}
        for program, ms in point["lamson"]["cpu_ms"].items():
            if program not in NOT_OURS:
                by_stage[stage(program)] = by_stage.get(stage(program), 0.0) + ms
        bottom = 0.0
        for name, colour in STAGES:
            value = by_stage.get(name, 0.0)
            ax.bar(x, value, 0.9, bottom=bottom, color=colour, label=None if name in seen else name)
            seen.add(name)
            bottom += value
        ax.annotate(f"{bottom:.2f}", (x, bottom), textcoords="offset points", xytext=(0, 3), ha="center",
                    fontsize=8)
        ticks.append(x + 0.5)
        labels.append(str(point["sessions"]))
        salmon = point.get("salmon")
        if salmon and salmon.get("replies"):
            value = salmon["cpu_ms"].get("salmon", 0.0)
            ax.bar(x + 1, value, 0.9, color=SALMON, label=None if "salmon" in seen else "Salmon 3.3 (one process)")
            seen.add("salmon")
            cut = cut or not salmon["complete"]
            ax.annotate(f"{value:.2f}" + ("" if salmon["complete"] else "*"), (x + 1, value),
                        textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels)
    ax.tick_params(axis="x", length=0)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.1)
    ax.set_xlabel("concurrent SMTP sessions (left: Lamson by stage; right: Salmon)")
    ax.set_ylabel("CPU milliseconds per message")
    ax.grid(axis="y", alpha=0.3)
    handles, names = ax.get_legend_handles_labels()
    if cut:  # a note at the end of the legend (an empty line of the plot: no marker)
        handles.append(ax.plot([], [], " ")[0])
        names.append("* did not finish:\n  CPU per reply that arrived")
    ax.legend(handles, names, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return fig


def draw(figures: Figures, out: Path, which: tuple[str, ...] = tuple(FILES)) -> list[Path]:
    """Write the charts ``which`` (all three by default) of ``figures`` into ``out``; returns the files."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    makers = {"throughput": throughput, "latency": latency, "cpu": cpu}
    with matplotlib.rc_context(STYLE):
        for chart in which:
            fig = makers[chart](figures)
            path = out / FILES[chart]
            fig.savefig(path, format="svg", metadata={"Date": None}, bbox_inches="tight")
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Re-draw the bench charts from a saved bench/compare.py JSON.")
    parser.add_argument("json", type=Path, help="the figures (bench/compare.py --json)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the SVG files (default: the JSON's)")
    args = parser.parse_args(argv)
    figures = json.loads(args.json.read_text())
    if figures.get("schema") != 1:
        raise SystemExit(f"{args.json}: not a bench/compare.py figures file (schema 1)")
    for path in draw(figures, args.out or args.json.parent):
        print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
