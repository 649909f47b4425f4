"""``annotate-test``: the out-of-sample figures of an already trained model, written into its
metadata without retraining (issue 16, item 5).

A model whose metadata records its training range (``data.train``) is run, as it is (its SB3
policy, the same :func:`oracle_training.train.test_split` that ``train`` and ``train --bars``
use), over the bars after that range: the test split, never trained on. Its backtest figures go
into ``training.test`` (what ``oracle doctor --models`` prints) and its range into ``data.test``.
Only the zip comment (the metadata) changes: every member's bytes, compressed and not, stay as
they were, so the weights, the golden files and their parity are untouched. The golden
manifests' ``zip_sha256`` of an annotated zip is updated to its new hash.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from oracle_training.bars import format_time, parse_time, read_bars
from oracle_training.modelzip import ModelZip, dumps_json
from oracle_training.util import atomic_write_bytes, sha256_bytes, sha256_file


class AnnotateError(ValueError):
    """A model or bar file the test split cannot be computed for: one line naming it."""


def _index_of(times: np.ndarray, t: int) -> int | None:
    i = int(np.searchsorted(times, t))
    return i if i < len(times) and int(times[i]) == t else None


def test_range(meta: dict, bars, where: str, test_from: str | None = None) -> tuple[int, int]:
    """``(a, n)``: the test split's decisions are bars ``[a, n)`` of ``bars``, the bars after the
    training range the metadata records (``data.train``), or from ``test_from`` on. Refused when
    the bar file does not hold that training range or the split would overlap it."""
    train = meta.get("data", {}).get("train")
    if not isinstance(train, dict) or not all(k in train for k in ("from", "to", "bars")):
        raise AnnotateError(
            f"{where}: the metadata records no training range (data.train with from, to, bars): "
            "the test split cannot be told apart from the bars it was trained on"
        )
    try:
        t_from, t_to = parse_time(str(train["from"])), parse_time(str(train["to"]))
    except ValueError as e:
        raise AnnotateError(f"{where}: data.train: {e}") from None
    i0, i1 = _index_of(bars.time, t_from), _index_of(bars.time, t_to)
    if i0 is None or i1 is None or i1 - i0 + 1 != train["bars"]:
        raise AnnotateError(
            f"{where}: the bar file does not hold the training range the metadata records "
            f"(data.train {train['from']} to {train['to']}, {train['bars']} bars): give the bar "
            "file it was trained on (--bars)"
        )
    n = len(bars)
    a = i1 + 1
    if test_from is not None:
        try:
            t = parse_time(str(test_from))
        except ValueError as e:
            raise AnnotateError(f"--test-from: {e}") from None
        if t <= t_to:
            raise AnnotateError(
                f"{where}: --test-from {test_from} overlaps the training part (data.train ends "
                f"at {train['to']}): the test split must start after the last bar trained on"
            )
        a = int(np.searchsorted(bars.time, t))
    if a >= n:
        raise AnnotateError(
            f"{where}: the bar file has no bar after the training part (data.train ends at "
            f"{train['to']}, the file at {format_time(int(bars.time[-1]))}): nothing to test on"
        )
    return a, n


def annotated_metadata(
    zip_path: Path, bars_path: Path, capital: float = 10_000.0, test_from: str | None = None
) -> dict:
    """The metadata of ``zip_path`` with ``data.test`` and ``training.test`` (the test split's
    backtest figures, docs/backtest.md's JSON keys) computed from the model as it is."""
    from oracle_training.train import SPLIT_NOTE, test_split

    zip_path, bars_path = Path(zip_path), Path(bars_path)
    where = zip_path.name
    mz = ModelZip(zip_path)
    meta = json.loads(json.dumps(mz.meta))
    raw = bars_path.read_bytes()
    recorded = meta["data"].get("sha256")
    if recorded is not None and recorded != sha256_bytes(raw):
        raise AnnotateError(
            f"{where}: {bars_path} is not the bar file it was trained on (data.sha256 "
            f"{recorded[:12]}…, the file's {sha256_bytes(raw)[:12]}…)"
        )
    bars = read_bars(bars_path)
    a, n = test_range(meta, bars, where, test_from)
    spec = mz.spec()
    if a < spec.window - 1:
        raise AnnotateError(f"{where}: the test split starts before a full window of bars")
    data_test, figures = test_split(spec, bars, a, n, mz.load_ppo(), capital)
    meta["data"].setdefault("split", SPLIT_NOTE)
    meta["data"]["test"] = data_test
    meta["training"]["capital"] = capital
    meta["training"]["test"] = figures
    return meta


def with_comment(zip_bytes: bytes, comment: bytes) -> bytes:
    """The same zip with another comment: the local headers and every member's compressed
    bytes are kept as they are (only the central directory and its end record are rewritten)."""
    buf = io.BytesIO(zip_bytes)
    with zipfile.ZipFile(buf, "a") as zf:
        zf.comment = comment
    return buf.getvalue()


def update_manifests(golden_dirs: list[Path], zip_path: Path, old: str, new: str) -> list[Path]:
    """Each golden manifest whose entry names ``zip_path`` with the hash ``old`` gets ``new``
    (its golden rows depend on the members only, which did not change)."""
    changed = []
    for d in golden_dirs:
        mp = Path(d) / "manifest.json"
        if not mp.is_file():
            continue
        m = json.loads(mp.read_text())
        hit = False
        for f in m.get("files", []):
            if f.get("zip_sha256") == old and Path(f.get("zip", "")).name == zip_path.name:
                f["zip_sha256"] = new
                hit = True
        if hit:
            atomic_write_bytes(mp, (json.dumps(m, indent=1) + "\n").encode())
            changed.append(mp)
    return changed


def annotate_zip(
    zip_path: Path,
    bars_path: Path,
    capital: float = 10_000.0,
    test_from: str | None = None,
    golden_dirs: list[Path] | None = None,
) -> dict:
    """Write the test split into ``zip_path``'s metadata (only its comment changes) and keep the
    golden manifests' ``zip_sha256`` true. Returns the figures written."""
    zip_path = Path(zip_path)
    meta = annotated_metadata(zip_path, bars_path, capital, test_from)
    old_bytes = zip_path.read_bytes()
    new_bytes = with_comment(old_bytes, dumps_json(meta).encode("utf-8"))
    old, new = sha256_bytes(old_bytes), sha256_bytes(new_bytes)
    if new != old:
        with tempfile.TemporaryDirectory() as d:
            check = Path(d) / zip_path.name
            check.write_bytes(new_bytes)
            ModelZip(check)  # refuses what the loader would, before the zip is replaced
        atomic_write_bytes(zip_path, new_bytes)
        update_manifests(golden_dirs or [], zip_path, old, new)
    assert sha256_file(zip_path) == new
    return meta["training"]["test"]
