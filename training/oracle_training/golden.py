"""Golden files (contract section 8): per model, every bar of its golden stream with features,
posterior, regime, observation, actor logits, action and position, produced by the real SB3
policy in TradingEnv semantics; a manifest with coverage counts; one restart scenario."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np

from oracle_training.bars import format_time
from oracle_training.data import DATA_DIR, load_series, split
from oracle_training.modelzip import ModelZip
from oracle_training.spec import precompute
from oracle_training.stream import Step, coverage, run_stream
from oracle_training.twin import N_ACTIONS, TwinState
from oracle_training.util import atomic_write_bytes, sha256_bytes, sha256_file

REPO = Path(__file__).resolve().parents[2]
GOLDEN_DIR = REPO / "tests" / "golden"
MODELS_DIR = REPO / "models"

# coverage thresholds (issue 3)
MIN_TRANSITIONS_PER_MODEL = 100
MIN_DECISIONS_PER_MODEL = 2000
# a top-2 logit gap below this would be a near-tie that float differences could flip
MIN_MARGIN_PER_MODEL = 1e-5

RESTART_MODEL = "EURUSD_H1"


def f64(x) -> str:
    """Shortest round-trip repr of an f64, with -0.0 printed as 0.0."""
    return repr(float(x) + 0.0)


def f32(x) -> str:
    """Shortest string that round-trips through f32 (parse it as f32)."""
    return str(np.float32(x) + np.float32(0.0))


def header(k: int, dim: int) -> list[str]:
    return (
        ["idx", "time", "open", "high", "low", "close", "volume"]
        + ["f_roc", "f_atr", "f_ema", "f_range", "f_volume"]
        + ["h_momentum", "h_consistency", "h_range"]
        + [f"post_{i}" for i in range(k)]
        + ["regime"]
        + [f"obs_{i}" for i in range(dim)]
        + [f"logit_{i}" for i in range(N_ACTIONS)]
        + ["margin", "action", "direction", "intensity", "entry_price", "realized_pnl"]
        + ["unrealized_pnl"]
    )


def row(data, s: Step, k: int, dim: int, idx_offset: int = 0) -> list[str]:
    t = s.idx
    b = data.bars
    out = [
        str(t + idx_offset),
        format_time(b.time[t]),
        f64(b.open[t]),
        f64(b.high[t]),
        f64(b.low[t]),
        f64(b.close[t]),
        str(int(b.volume[t])),
    ]
    n_rest = len(header(k, dim)) - 7
    if not s.decided:
        return out + [""] * n_rest
    out += [f64(v) for v in data.market_raw[t]]
    out += [f64(v) for v in data.hmm_raw[t]]
    out += [f64(v) for v in data.posterior[t]]
    out.append(str(int(data.regime[t])))
    out += [f32(v) for v in s.obs]
    out += [f32(v) for v in s.logits]
    srt = np.sort(np.asarray(s.logits, dtype=np.float32))
    out.append(f32(srt[-1] - srt[-2]))
    st = s.state
    out += [
        str(s.action),
        str(st.position_direction),
        str(st.position_intensity),
        f64(st.entry_price),
        f64(st.realized_pnl),
        f64(s.unrealized),
    ]
    return out


def render(data, steps: list[Step], k: int, dim: int, idx_offset: int = 0) -> bytes:
    lines = [",".join(header(k, dim))]
    for s in steps:
        lines.append(",".join(row(data, s, k, dim, idx_offset)))
    return ("\n".join(lines) + "\n").encode()


def gz(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def repo_relative(path: Path) -> str:
    """``path`` relative to the repository (as the manifest names zips), else as given."""
    p = Path(path).resolve()
    return p.relative_to(REPO).as_posix() if p.is_relative_to(REPO) else str(path)


def golden_for_model(zip_path: Path, data_dir: Path = DATA_DIR):
    """``(spec, data, steps, csv_bytes)`` for one model over its golden stream."""
    mz = ModelZip(zip_path)
    spec = mz.spec()
    model = mz.load_ppo()
    bars = load_series(mz.name, data_dir)
    _, golden_range = split(len(bars), spec.window)
    gbars = bars.slice(*golden_range)
    data = precompute(gbars, spec)
    steps = run_stream(spec, data, model)
    return mz, spec, data, model, steps, render(data, steps, spec.n_states, spec.obs_dim)


def restart_scenario(spec, data, model, steps: list[Step], restart_after: int):
    """Rebuild the twin after bar ``restart_after`` from its persisted state and the last
    ``window`` bars; returns (state, restarted steps, rendered csv of the restarted run)."""
    w = spec.window
    state: TwinState = steps[restart_after].state
    lo = restart_after - w + 1
    sub = data.bars.slice(lo, len(data.bars))
    sub_data = precompute(sub, spec)
    rsteps = run_stream(spec, sub_data, model, state=state, first_decision=w)
    return state, rsteps, render(sub_data, rsteps, spec.n_states, spec.obs_dim, idx_offset=lo)


def pick_restart(steps: list[Step]) -> int:
    """A bar in the middle of the stream with an open position, so the restored state matters."""
    mid = len(steps) // 2
    for i in range(mid, len(steps)):
        s = steps[i]
        if s.decided and s.state.position_direction != 0 and s.state.trades > 0:
            return i
    return mid


def generate_all(
    names: list[str] | None = None,
    models_dir: Path = MODELS_DIR,
    golden_dir: Path = GOLDEN_DIR,
    data_dir: Path = DATA_DIR,
    verbose: bool = True,
) -> dict:
    golden_dir = Path(golden_dir)
    golden_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = golden_dir / "manifest.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    files = {f["model"]: f for f in old.get("files", [])}
    restart = old.get("restart")
    zips = sorted(Path(models_dir).glob("*.zip"))
    for zp in zips:
        name = zp.stem
        if names and name not in names:
            continue
        mz, spec, data, model, steps, csv = golden_for_model(zp, data_dir)
        cov = coverage(steps, spec.n_states)
        fn = f"{name}.csv.gz"
        atomic_write_bytes(golden_dir / fn, gz(csv))
        files[name] = {
            "model": name,
            "zip": repo_relative(zp),
            "zip_sha256": sha256_file(zp),
            "file": fn,
            "csv_sha256": sha256_bytes(csv),
            "rows": len(steps),
            "warmup_rows": spec.window - 1,
            "decision_rows": cov["decisions"],
            "n_states": spec.n_states,
            "obs_dim": spec.obs_dim,
            "covariance_type": spec.hmm.covariance_type,
            "coverage": cov,
        }
        if verbose:
            print(f"{name}: {json.dumps(cov)}", flush=True)
        if name == RESTART_MODEL:
            r = pick_restart(steps)
            state, rsteps, rcsv = restart_scenario(spec, data, model, steps, r)
            rfn = f"{name}.restart.csv.gz"
            atomic_write_bytes(golden_dir / rfn, gz(rcsv))
            restart = {
                "model": name,
                "golden_file": fn,
                "restart_after_idx": r,
                "restart_after_time": format_time(data.bars.time[r]),
                "state": state.to_dict(),
                "priming_bars": spec.window,
                "file": rfn,
                "csv_sha256": sha256_bytes(rcsv),
                "first_idx": r - spec.window + 1,
                "note": "rows with idx <= restart_after_idx are priming rows (no decision); "
                "every later row must equal the golden file's row with the same idx",
            }
            orig = csv.decode().splitlines()[1:]
            new = rcsv.decode().splitlines()[1 + spec.window :]
            assert orig[r + 1 :] == new, "restart trace differs from the uninterrupted one"
    manifest = {
        "format": "oracle-golden-1",
        "contract": "docs/contract.md section 8",
        "window": 350,
        "thresholds": {
            "min_decisions_per_model": MIN_DECISIONS_PER_MODEL,
            "min_transitions_per_model": MIN_TRANSITIONS_PER_MODEL,
            "all_actions": True,
            "all_regimes": True,
            "min_flips_total": 1,
            "min_resizes_total": 1,
            "min_margin_per_model": MIN_MARGIN_PER_MODEL,
        },
        "files": [files[k] for k in sorted(files)],
        "totals": totals([files[k] for k in sorted(files)]),
        "restart": restart,
    }
    atomic_write_bytes(manifest_path, (json.dumps(manifest, indent=1) + "\n").encode())
    if verbose:
        print("totals:", json.dumps(manifest["totals"]))
    return manifest


def totals(files: list[dict]) -> dict:
    acts = [0] * N_ACTIONS
    regs = [0] * 5
    out = {"models": len(files), "decisions": 0, "transitions": 0, "flips": 0, "resizes": 0}
    mins = []
    for f in files:
        c = f["coverage"]
        for k in ("decisions", "transitions", "flips", "resizes"):
            out[k] += c[k]
        for i, a in enumerate(c["actions"]):
            acts[i] += a
        for i, r in enumerate(c["regimes"]):
            if i >= len(regs):
                regs.extend([0] * (i + 1 - len(regs)))
            regs[i] += r
        mins.append(c["min_margin"])
    out["actions"] = acts
    out["regimes"] = regs
    out["min_transitions_per_model"] = min((f["coverage"]["transitions"] for f in files), default=0)
    out["min_margin"] = min((m for m in mins if m is not None), default=None)
    return out


def coverage_problems(manifest: dict, expect_models: int | None = None) -> list[str]:
    th = manifest["thresholds"]
    probs = []
    for f in manifest["files"]:
        c = f["coverage"]
        if c["decisions"] < th["min_decisions_per_model"]:
            probs.append(f"{f['model']}: {c['decisions']} decisions")
        if c["transitions"] < th["min_transitions_per_model"]:
            probs.append(f"{f['model']}: {c['transitions']} transitions")
        if c["min_margin"] is None or c["min_margin"] < th.get("min_margin_per_model", 0.0):
            probs.append(f"{f['model']}: min logit margin {c['min_margin']}")
    t = manifest["totals"]
    if expect_models is not None and t["models"] != expect_models:
        probs.append(f"{t['models']} models, expected {expect_models}")
    if expect_models is not None:
        if 0 in t["actions"]:
            probs.append(f"an action never occurs: {t['actions']}")
        if 0 in t["regimes"]:
            probs.append(f"a regime never occurs: {t['regimes']}")
        if t["flips"] < th["min_flips_total"]:
            probs.append("no direction flip")
        if t["resizes"] < th["min_resizes_total"]:
            probs.append("no same-direction intensity change")
    return probs
