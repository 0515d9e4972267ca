"""The report's SVG charts, from saved counts alone: round ticks, what each chart draws, escaping."""

from __future__ import annotations

import base64
import json
import math
import random
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from batchinfer import report_charts as rc

SVG = "{http://www.w3.org/2000/svg}"


def _svg(uri: str) -> ET.Element:
    prefix = "data:image/svg+xml;base64,"
    assert uri.startswith(prefix)
    return ET.fromstring(base64.b64decode(uri[len(prefix) :]))  # well-formed XML or this raises


def test_nice_ticks_are_round_evenly_spaced_and_inside_the_range():
    rnd = random.Random(5)
    for _ in range(2000):
        lo = rnd.uniform(-1, 1) * 10 ** rnd.randint(-6, 7)
        hi = lo + rnd.uniform(1e-3, 1) * 10 ** rnd.randint(-6, 7)
        if hi - lo < 1e-6 * abs(lo):  # beyond what float64 ticks can space evenly
            continue
        count = rnd.randint(2, 8)
        ticks = rc.nice_ticks(lo, hi, count)
        assert len(ticks) >= 2, (lo, hi, count, ticks)
        assert ticks[0] >= lo - 1e-9 * abs(hi - lo) and ticks[-1] <= hi + 1e-9 * abs(hi - lo)
        step = ticks[1] - ticks[0]
        assert all(math.isclose(b - a, step, rel_tol=1e-4) for a, b in zip(ticks, ticks[1:], strict=False))
        mantissa = step / 10 ** math.floor(math.log10(step))
        assert any(math.isclose(mantissa, m, rel_tol=1e-4) for m in (1, 2, 2.5, 5, 10)), (step, ticks)
        # at most count + 1 intervals, unless that step would leave fewer than two ticks inside
        assert (hi - lo) / step <= count + 1 + 1e-6 or len(ticks) <= 3, (lo, hi, count, ticks)
    assert rc.nice_ticks(-3.2, 3.1, 6) == [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
    assert rc.nice_ticks(0, 1, 4) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert rc.nice_ticks(5, 5) == [5] and rc.nice_ticks(0, math.inf) == []


@pytest.mark.parametrize(
    ("ticks", "labels"),
    [
        ([0.0, 0.25, 0.5], ["0.00", "0.25", "0.50"]),
        ([-2.0, 0.0, 2.0], ["-2", "0", "2"]),
        ([0.0, 5e6, 1e7], ["0", "5e+06", "1e+07"]),
    ],
)
def test_tick_labels_carry_the_decimals_of_the_step(ticks, labels):
    assert [rc._label(t, ticks) for t in ticks] == labels


def _stairs(path: str) -> list[float]:
    """Heights (pixels above the baseline) of each step of an ``M x,y V.. H.. V..`` stairs path."""
    start = re.match(r"M([-\d.]+),([-\d.]+)", path)
    base = float(start.group(2))
    verticals = [float(v) for v in re.findall(r"V([-\d.]+)", path)]
    return [base - v for v in verticals[:-1]]  # the last V returns to the baseline


def test_numeric_overlay_draws_both_densities_on_the_reference_bins():
    edges = [0.0, 1.0, 3.0, 4.0]  # unequal widths: densities, not counts, are drawn
    ref = {"edges": edges, "counts": [0, 10, 20, 10, 0], "count": 40}
    cur = {"edges": edges, "counts": [0, 30, 0, 10, 0], "count": 40}
    root = _svg(rc.numeric_overlay("x", ref, cur, title="x: psi 1.2 (failed)"))
    assert root.get("width") == "336" and root.get("height") == "184"
    paths = [p for p in root.iter(f"{SVG}path") if p.get("stroke-width") == "1.4"]  # stairs, then legend
    filled, line = paths[0], paths[1]  # reference (filled), then current (a line)
    assert filled.get("fill") == rc.REFERENCE_COLOR and line.get("fill") == "none"
    ref_h, cur_h = _stairs(filled.get("d")), _stairs(line.get("d"))
    # densities 10/40/1, 20/40/2, 10/40/1 are equal; the current's 30/40/1, 0, 10/40/1 are 3:0:1
    assert ref_h[0] == pytest.approx(ref_h[1], abs=0.2) == pytest.approx(ref_h[2], abs=0.2)
    assert cur_h[1] == pytest.approx(0, abs=0.1) and cur_h[0] == pytest.approx(3 * cur_h[2], rel=0.02)
    assert max(cur_h) > max(ref_h)  # one y scale for both
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "x: psi 1.2 (failed)" in texts and "reference" in texts and "current" in texts
    assert {"0", "1", "2", "3", "4"} <= set(texts)  # x ticks on the data's scale


def test_charts_escape_names_and_never_import_matplotlib():
    name = '<b>"&x'
    code = (
        "import json, sys; from batchinfer import report_charts as rc; "
        f"name = {name!r}; "
        "ref = {'categories': ['a', name], 'counts': [3, 1, 0], 'null_count': 1}; "
        "cur = {'counts': [1, 1, 2], 'null_count': 0}; "
        "num = {'edges': [0.0, 1.0], 'counts': [1, 2, 1], 'count': 4}; "
        "out = [rc.categorical_overlay(name, ref, cur, title=name), rc.numeric_overlay(name, num, num, title=name), "
        "rc.drift_values_chart([{'column': name, 'metric': 'psi', 'value': 0.3, 'status': 'failed'}])]; "
        "print(json.dumps([out, 'matplotlib' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    (cat, num, values), imported = json.loads(out.stdout)
    assert imported is False
    for uri in (cat, num, values):
        root = _svg(uri)
        assert any(name in (t.text or "") for t in root.iter(f"{SVG}text"))  # parsed back intact
        assert name not in base64.b64decode(uri.split(",", 1)[1]).decode()  # because it was escaped
    bars = [
        r for r in _svg(cat).iter(f"{SVG}rect") if r.get("fill") in (rc.REFERENCE_COLOR, rc.CURRENT_COLOR)
    ]
    bars = [r for r in bars if float(r.get("width")) > 12]  # not the legend's swatches
    assert len(bars) == 2 * 4  # a, name, (other), (null): reference and current each
    heights = {(r.get("fill"), round(float(r.get("x")))): float(r.get("height")) for r in bars}
    ref_heights = [
        h for (fill, _), h in sorted(heights.items(), key=lambda kv: kv[0][1]) if fill == rc.REFERENCE_COLOR
    ]
    assert ref_heights[0] == pytest.approx(3 * ref_heights[1], rel=0.02) and ref_heights[2] == 0  # 3:1:0:1
    failed = [r for r in _svg(values).iter(f"{SVG}rect") if r.get("fill") == rc.STATUS_COLORS["failed"]]
    assert len(failed) == 1 and float(failed[0].get("height")) > 50


def test_drift_values_chart_skips_non_finite_values():
    assert (
        rc.drift_values_chart([{"column": "a", "metric": "psi", "value": math.nan, "status": "passed"}])
        is None
    )
    root = _svg(
        rc.drift_values_chart(
            [{"column": f"c{i}", "metric": "psi", "value": i / 10, "status": "passed"} for i in range(20)]
        )
    )
    assert int(root.get("width")) == round((0.4 * 20 + 1.2) * rc.PX_PER_INCH)  # widens with the columns
