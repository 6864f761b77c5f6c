"""bench/charts.py draws the three SVG charts from a bench/compare.py figures file, the same bytes each time.

The bench itself is not run by the suite (it takes minutes and the whole machine); the charts
are, from a small sample in the JSON's schema, because the committed SVGs in docs/img must be
re-drawable from the committed JSON, and a re-draw that changed every id would make noise in git.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def load_charts() -> ModuleType:
    """bench/charts.py as a module (bench/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("bench_charts", BENCH / "charts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_charts"] = module
    spec.loader.exec_module(module)
    return module


def load(rate: float, cpu: dict[str, float], complete: bool = True, latency: tuple[float, float] | None = None,
         paced: float | None = None) -> dict[str, object]:
    figures: dict[str, object] = {
        "messages": 2000, "sessions": 1, "client": "smtp-source", "replies": 2000 if complete else 700,
        "seconds": 2000 / rate, "rate": rate, "complete": complete, "cpu_ms": cpu,
        "ours_ms": sum(v for k, v in cpu.items() if k != "sink"),
        "latency_ms": {"p50": latency[0], "p90": latency[0], "p99": latency[1]} if latency else None,
    }
    if paced is not None:
        figures["paced_rate"] = paced
    figures["other_work"] = 0.05
    return figures


OURS = {"receiver": 0.71, "router_00": 0.52, "router_01": 0.55, "relay": 0.26, "redis": 0.11,
        "metrics": 0.01, "supervisord": 0.01, "sink": 0.2}
SAMPLE = {
    "schema": 1, "when": "2026-12-08 01:00 UTC", "cores": 2,
    "settings": {"messages": 2000, "size": 1000, "client": "smtp-source", "senders": 100, "routers": 2},
    "points": [
        {"sessions": 1, "lamson": load(612.0, OURS), "salmon": load(431.0, {"salmon": 1.1, "sink": 0.2}),
         "latency": load(300.0, OURS, latency=(9.0, 31.0), paced=306.0)},
        {"sessions": 200, "lamson": load(655.0, OURS),
         "salmon": load(118.0, {"salmon": 1.3, "sink": 0.2}, complete=False), "latency": None},
    ],
}


def test_charts_drawn_from_json_are_svg_with_the_figures_and_stable(tmp_path: Path) -> None:
    charts = load_charts()
    saved = tmp_path / "bench-compare.json"
    saved.write_text(json.dumps(SAMPLE))
    charts.main([str(saved), "--out", str(tmp_path / "a")])
    # One chart drawn again (each draw costs CPU; the ids' salt and the missing date are the same for all)
    charts.draw(json.loads(saved.read_text()), tmp_path / "b", which=("cpu",))
    assert (tmp_path / "a" / "bench-cpu.svg").read_bytes() == (tmp_path / "b" / "bench-cpu.svg").read_bytes()
    for name in ("bench-throughput.svg", "bench-latency.svg", "bench-cpu.svg"):
        first = (tmp_path / "a" / name).read_bytes()
        root = ET.fromstring(first)
        assert root.tag.endswith("svg")
        assert b"<dc:date>" not in first  # no date in the metadata: re-runs give the same file
    throughput = (tmp_path / "a" / "bench-throughput.svg").read_text()
    assert "Lamson (durable)" in throughput and "Salmon 3.3 (not durable)" in throughput
    assert ">612<" in throughput and ">655<" in throughput  # each finished point's rate is written at it
    assert "other work on the machine during our points: 5 %" in throughput  # a shared machine says so
    assert "stalled after" in throughput and "700 of 2000" in throughput  # Salmon's 200: not drawn as finished
    latency = (tmp_path / "a" / "bench-latency.svg").read_text()
    assert ">31<" in latency and ">9<" in latency and "306 msg/s" in latency
    cpu = (tmp_path / "a" / "bench-cpu.svg").read_text()
    assert ">2.17<" in cpu  # the stack's total: every program but the sink (0.71+0.52+0.55+0.26+0.11+0.02)
    assert "routers" in cpu and "Salmon 3.3 (one process)" in cpu


def test_charts_refuses_a_file_that_is_not_the_figures(tmp_path: Path) -> None:
    charts = load_charts()
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"points": []}))
    with pytest.raises(SystemExit):
        charts.main([str(other)])
