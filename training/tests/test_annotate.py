"""annotate-test: the bundled models' out-of-sample figures, written without retraining."""

from __future__ import annotations

import io
import json
import shutil
import zipfile

import pytest
from paths import DATA, GOLDEN, MODELS

from oracle_training.annotate import AnnotateError, annotate_zip, annotated_metadata
from oracle_training.backtest import run_backtest
from oracle_training.bars import parse_time, read_bars
from oracle_training.data import split
from oracle_training.modelzip import ModelZip
from oracle_training.universe import BY_NAME, GOLDEN_DECISIONS
from oracle_training.util import sha256_file

# a D1 model: the quickest of the 20 to run
NAME = "SYNFX06_D1"


def members_raw(path) -> dict:
    """Each member's compressed bytes, CRC and local header, as stored in the zip."""
    data = path.read_bytes()
    out = {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for i in zf.infolist():
            end = i.header_offset + 30 + len(i.filename.encode()) + i.compress_size
            out[i.filename] = (i.CRC, data[i.header_offset : end])
    return out


def strip_test(path, out):
    """A copy of a zip without the test split (as the bundled zips were before annotate-test)."""
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.comment)
    meta["data"].pop("test", None)
    meta["data"].pop("split", None)
    meta["training"].pop("test", None)
    meta["training"].pop("capital", None)
    shutil.copy(path, out)
    with zipfile.ZipFile(out, "a") as zf:
        zf.comment = json.dumps(meta, separators=(",", ":")).encode()
    return out


def test_annotate_test_records_the_test_split_and_keeps_every_member_byte(tmp_path):
    z = strip_test(MODELS / f"{NAME}.zip", tmp_path / f"{NAME}.zip")
    before = members_raw(z)
    old = sha256_file(z)
    golden = tmp_path / "golden"
    golden.mkdir()
    (golden / "manifest.json").write_text(
        json.dumps({"files": [{"model": NAME, "zip": f"models/{NAME}.zip", "zip_sha256": old}]})
    )

    figures = annotate_zip(z, DATA / f"{NAME}.csv", golden_dirs=[golden])

    assert members_raw(z) == before  # weights and every other member untouched
    meta = ModelZip(z).meta
    bars = read_bars(DATA / f"{NAME}.csv")
    train_range, golden_range = split(len(bars))
    # the test split: every bar after the training part, none of them trained on
    t = meta["data"]["test"]
    assert parse_time(t["from"]) > parse_time(meta["data"]["train"]["to"])
    assert parse_time(t["from"]) == int(bars.time[train_range[1]])
    assert t["bars"] == GOLDEN_DECISIONS == len(bars) - train_range[1]
    assert meta["training"]["test"] == figures
    assert figures["decided_bars"] == GOLDEN_DECISIONS
    assert figures["first_decided"] == t["from"] and figures["last_decided"] == t["to"]
    # the same figures `backtest` gives over those bars and the window - 1 before them
    tail = tmp_path / "tail.csv"
    lines = (DATA / f"{NAME}.csv").read_text().splitlines()
    tail.write_text("\n".join([lines[0], *lines[1 + golden_range[0] :]]) + "\n")
    whole = run_backtest(z, tail).to_json()
    whole.pop("model")
    assert {k: v for k, v in figures.items() if k != "coverage"} == whole
    # the golden manifest follows the zip's new hash
    assert sha256_file(z) != old
    manifest = json.loads((golden / "manifest.json").read_text())
    assert manifest["files"][0]["zip_sha256"] == sha256_file(z)
    # running it again changes nothing
    again = sha256_file(z)
    annotate_zip(z, DATA / f"{NAME}.csv", golden_dirs=[golden])
    assert sha256_file(z) == again


def test_annotate_test_refuses_a_test_split_overlapping_the_training_part(tmp_path):
    z = strip_test(MODELS / f"{NAME}.zip", tmp_path / f"{NAME}.zip")
    raw = z.read_bytes()
    train_to = ModelZip(z).meta["data"]["train"]["to"]
    for test_from in (train_to, ModelZip(z).meta["data"]["train"]["from"]):
        with pytest.raises(AnnotateError, match="overlaps the training part") as e:
            annotate_zip(z, DATA / f"{NAME}.csv", test_from=test_from)
        assert NAME in str(e.value) and train_to in str(e.value)
    assert z.read_bytes() == raw  # nothing written


def test_annotate_test_refuses_a_bar_file_without_the_training_range(tmp_path):
    z = MODELS / f"{NAME}.zip"
    lines = (DATA / f"{NAME}.csv").read_text().splitlines()
    short = tmp_path / "short.csv"
    short.write_text("\n".join([lines[0], *lines[400:]]) + "\n")  # the first training bars cut
    with pytest.raises(AnnotateError, match="does not hold the training range"):
        annotated_metadata(z, short)
    other = DATA / "SYNFX01_H1.csv"
    with pytest.raises(AnnotateError, match="training range|not the bar file"):
        annotated_metadata(z, other)


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_every_bundled_model_records_its_out_of_sample_figures(name):
    """models/*.zip carry the test split: the bars after data.train, the golden stream's
    decisions, with the backtest figures (docs/backtest.md's keys) `oracle doctor --models`
    prints; the golden manifest's hash is the zip's."""
    meta = ModelZip(MODELS / f"{name}.zip").meta
    train, test = meta["data"]["train"], meta["data"]["test"]
    bars = read_bars(DATA / f"{name}.csv")
    train_range, _ = split(len(bars))
    assert train["bars"] == train_range[1]
    assert parse_time(test["from"]) == int(bars.time[train_range[1]])
    assert test["bars"] == GOLDEN_DECISIONS
    figures = meta["training"]["test"]
    assert figures["decided_bars"] == GOLDEN_DECISIONS
    assert figures["first_decided"] == test["from"]
    for key in ("total_return_pct", "sharpe", "max_drawdown_pct", "trades", "profit_factor"):
        assert key in figures, key
    files = json.loads((GOLDEN / "manifest.json").read_text())["files"]
    entry = next(f for f in files if f["model"] == name)
    assert entry["zip_sha256"] == sha256_file(MODELS / f"{name}.zip")


def test_the_bundled_figures_are_what_annotate_test_computes():
    """Recomputed from the zip as shipped: the stored figures are not stale."""
    z = MODELS / f"{NAME}.zip"
    assert annotated_metadata(z, DATA / f"{NAME}.csv") == ModelZip(z).meta


def test_the_annotate_test_command_refuses_an_overlap_in_one_line_and_writes_nothing(
    tmp_path, capsys
):
    from oracle_training.cli import main

    z = strip_test(MODELS / f"{NAME}.zip", tmp_path / f"{NAME}.zip")
    raw = z.read_bytes()
    train_to = ModelZip(z).meta["data"]["train"]["to"]
    argv = ["--golden-dir", str(tmp_path), "annotate-test", str(z), "--test-from", train_to]
    with pytest.raises(SystemExit) as e:
        main(argv)
    msg = str(e.value.code)
    assert msg.startswith("python -m oracle_training annotate-test: ") and "\n" not in msg
    assert "overlaps the training part" in msg
    assert z.read_bytes() == raw
    # without --test-from: the bars after the training part, one summary line per zip
    main(argv[:-2])
    out = capsys.readouterr().out
    assert out.startswith(f"{NAME}.zip: test split ") and "2050 bars decided" in out
    assert "test" in ModelZip(z).meta["training"]
