"""``python -m oracle_training``: every option documented with its default; a mistake in the
command line is one line on stderr, not a traceback."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
from paths import REPO

from oracle_training.cli import build_parser


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            return dict(a.choices)
    return {}


def test_every_option_is_documented_with_its_default():
    top = build_parser()
    parsers = {"(top)": top, **_subparsers(top)}
    assert set(parsers) >= {"data", "train", "train-all", "export", "goldens", "reference"}
    for name, p in parsers.items():
        text = " ".join(p.format_help().split())
        for a in p._actions:
            if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            what = f"{name} {a.option_strings or a.dest}"
            assert a.help and a.help != argparse.SUPPRESS, f"{what}: no help"
            if a.required and not a.option_strings:
                continue  # a required positional has no default
            assert f"(default: {a.default})" in text, f"{what}: default not shown\n{text}"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "oracle_training", *args],
        cwd=REPO / "training",
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["train", "NOPE_H1"],
        ["train-all", "EURUSD_H1", "NOPE_H1"],
        ["data", "NOPE_H1"],
        ["reference", "NOPE_H1"],
        ["goldens", "NOPE_H1"],
    ],
)
def test_unknown_model_name_is_one_line_error(args, tmp_path):
    r = _run("--golden-dir", str(tmp_path), "--data-dir", str(tmp_path), *args)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "unknown model name NOPE_H1" in lines[0] and args[0] in lines[0], lines[0]
    assert "EURUSD_H1" not in lines[0].split("(")[0], lines[0]
    assert r.stdout == ""
    assert list(tmp_path.iterdir()) == [], "nothing written"


def test_missing_files_are_one_line_errors(tmp_path):
    r = _run("replay", str(tmp_path / "absent.zip"), str(tmp_path / "bars.csv"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        f"python -m oracle_training replay: model zip {tmp_path / 'absent.zip'}: no such file"
    ]
    r = _run("export", str(tmp_path / "absent.zip"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
