"""Replay trace (contract section 8) and the reference predictor."""

from __future__ import annotations

import gzip
import io
import json
import re

import pytest
from paths import DATA, GOLDEN, MODELS, posteriors_close

from oracle_training.reference import TRACE_HEADER, ReferenceTwin, replay_trace, signal_line
from oracle_training.twin import ACTIONS, TwinState

ZIP = MODELS / "EURUSD_H1.zip"
pytestmark = pytest.mark.skipif(not ZIP.exists(), reason="models not built")
LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ,(WARMUP|WAIT|LONG_WEAK|LONG_MODERATE|LONG_STRONG|"
    r"SHORT_WEAK|SHORT_MODERATE|SHORT_STRONG),(-1|0|1),[0-3],-?\d+\.\d{10},-?\d+\.\d{6}$"
)


def golden_rows(name):
    text = gzip.decompress((GOLDEN / f"{name}.csv.gz").read_bytes()).decode().splitlines()
    cols = text[0].split(",")
    return [dict(zip(cols, line.split(","), strict=True)) for line in text[1:]]


def write_tail(tmp_path, name, n, extra=()):
    lines = (DATA / f"{name}.csv").read_text().splitlines()
    p = tmp_path / "bars.csv"
    p.write_text("\n".join([lines[0], *lines[-n:], *extra]) + "\n")
    return p


def test_replay_format_and_agreement_with_golden(tmp_path):
    rows = golden_rows("EURUSD_H1")
    p = write_tail(tmp_path, "EURUSD_H1", len(rows))
    text = replay_trace(ZIP, p)
    lines = text.splitlines()
    assert lines[0] == TRACE_HEADER == "time,action,direction,intensity,entry_price,realized_pnl"
    assert text.endswith("\n") and len(lines) - 1 == len(rows)
    for line, r in zip(lines[1:], rows, strict=True):
        assert LINE.match(line), line
        t, a, d, i, e, pnl = line.split(",")
        assert t == r["time"]
        if r["action"] == "":
            assert (a, d, i, e, pnl) == ("WARMUP", "0", "0", "0.0000000000", "0.000000")
        else:
            assert a == ACTIONS[int(r["action"])][0]
            assert (d, i) == (r["direction"], r["intensity"])
            assert e == f"{float(r['entry_price']) + 0.0:.10f}"
            assert pnl == f"{float(r['realized_pnl']) + 0.0:.6f}"


def test_replay_skips_bad_lines_with_line_number(tmp_path):
    p = write_tail(
        tmp_path,
        "EURUSD_H1",
        400,
        extra=["2018-02-07T10:00:00Z,1.1,1.0,1.2,1.1,3", "2030-01-01T00:00:00Z,nan,1,1,1,1"],
    )
    err = io.StringIO()
    text = replay_trace(ZIP, p, err=err)
    assert len(text.splitlines()) == 401
    msgs = err.getvalue().splitlines()
    assert len(msgs) == 2 and ":402:" in msgs[0] and ":403:" in msgs[1]


def test_negative_zero_prints_as_zero():
    from oracle_training.reference import trace_line

    st = TwinState(entry_price=-0.0, realized_pnl=-0.0)
    assert trace_line(0, "WAIT", st) == "1970-01-01T00:00:00Z,WAIT,0,0,0.0000000000,0.000000"


def test_reference_predictor_matches_golden(tmp_path):
    """The seed's Python plan (FIFO of 350, per-window recomputation) takes the golden file's
    decisions, bar for bar, on the first 150 decision bars; and after a restart from state."""
    rows = golden_rows("EURUSD_H1")
    lines = (DATA / "EURUSD_H1.csv").read_text().splitlines()[-len(rows) :]
    bars = []
    for line in lines:
        from oracle_training.bars import _parse_line

        bars.append(_parse_line(line))
    tw = ReferenceTwin(ZIP)
    w = tw.spec.window
    n = w - 1 + 150
    for j in range(n):
        r = tw.on_bar(bars[j])
        g = rows[j]
        if r is None:
            assert g["action"] == ""
            continue
        action, regime, upnl, post = r
        assert action == int(g["action"]) and regime == int(g["regime"])
        assert tw.state.position_direction == int(g["direction"])
        assert tw.state.entry_price == float(g["entry_price"])
        assert tw.state.realized_pnl == float(g["realized_pnl"])
        assert upnl == float(g["unrealized_pnl"])
        assert posteriors_close(list(post), [float(g[f"post_{k}"]) for k in range(5)])
        line = signal_line(tw.spec, action, regime, upnl, bars[j][0], j + 1, tw.state)
        assert line.startswith(f"SIGNAL|EURUSD|{ACTIONS[action][0]}|{regime}|")
    # restart: persisted state + last W bars, then continue
    state = json.loads(json.dumps(tw.state.to_dict()))
    tw2 = ReferenceTwin(ZIP, state=TwinState.from_dict(state))
    for j in range(n - w + 1, n + 1):
        assert tw2.on_bar(bars[j]) is None
    for j in range(n + 1, n + 40):
        r1, r2 = tw.on_bar(bars[j]), tw2.on_bar(bars[j])
        assert r1[0] == r2[0] == int(rows[j]["action"]) and tw.state == tw2.state


def test_bench_json_has_the_two_figures():
    from oracle_training.reference import bench

    zips = [ZIP]
    res = bench(zips, {"EURUSD_H1": DATA / "EURUSD_H1.csv"}, 5)
    assert res["models"] == 1 and res["bars"] == 5
    assert res["peak_rss_mb"] > 0
    assert (
        0
        < res["latency_ms_per_bar_all_models"]["p50"]
        <= res["latency_ms_per_bar_all_models"]["p99"]
    )
    json.dumps(res)


def test_signal_line_format():
    from oracle_training.modelzip import ModelZip

    spec = ModelZip(ZIP).spec()
    st = TwinState(position_direction=-1, position_intensity=2)
    line = signal_line(spec, 5, 3, -0.004, 1614557700, 12, st)
    assert line == (
        "SIGNAL|EURUSD|SHORT_MODERATE|3|0.00|TF:H1|BT:2021-03-01T00:15:00Z|SEQ:12|DIR:-1|INT:2"
    )
