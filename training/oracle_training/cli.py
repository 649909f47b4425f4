"""``python -m oracle_training <command>``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _threads():
    import torch

    torch.set_num_threads(1)


def cmd_data(args):
    from oracle_training.data import write_all

    write_all(Path(args.data_dir), names=args.names or None)


def _train_one(name, timesteps, data_dir, models_dir, net_arch=None, activation=None):
    from oracle_training.train import ppo_with, train_model

    _threads()
    t0 = time.time()
    train_model(
        name,
        timesteps=timesteps,
        data_dir=Path(data_dir),
        models_dir=Path(models_dir),
        ppo=ppo_with(net_arch, activation),
    )
    return name, time.time() - t0


def cmd_train(args):
    if args.bars is None:
        out = args.out_dir or args.models_dir
        Path(out).mkdir(parents=True, exist_ok=True)
        from oracle_training.train import TrainError

        try:
            net, act = args.net_arch, args.activation
            _train_one(args.name, args.timesteps or 50_000, args.data_dir, out, net, act)
        except TrainError as e:
            sys.exit(f"python -m oracle_training train: {e}")
        return
    from oracle_training.bars import BarError
    from oracle_training.policy import ExportError
    from oracle_training.train import TrainError, config_from_args, train_on_bars

    _threads()
    try:
        cfg = config_from_args(args)
        train_on_bars(Path(args.bars), cfg, Path(args.out_dir or args.models_dir), args.capital)
    except (TrainError, BarError, ExportError) as e:
        sys.exit(f"python -m oracle_training train: {e}")


def cmd_train_all(args):
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from oracle_training.universe import UNIVERSE

    names = args.names or [m.name for m in UNIVERSE]
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=args.jobs) as ex:
        futs = [
            ex.submit(
                _train_one,
                n,
                args.timesteps,
                args.data_dir,
                args.models_dir,
                args.net_arch,
                args.activation,
            )
            for n in names
        ]
        for f in as_completed(futs):
            name, secs = f.result()
            print(f"done {name} in {secs:.1f}s", flush=True)
    print(f"train-all: {len(names)} models in {time.time() - t0:.1f}s wall", flush=True)


def cmd_export(args):
    from oracle_training.bars import BarError
    from oracle_training.export import export_zip
    from oracle_training.modelzip import ModelZipError
    from oracle_training.policy import ExportError

    _threads()
    for z in args.zips:
        try:
            bars = Path(args.bars) if args.bars else None
            print(json.dumps(export_zip(Path(z), rewrite=not args.verify_only, bars=bars)))
        except (ModelZipError, ExportError, BarError) as e:
            # One line; a seed-format zip's names the pack command (export reads runtime zips).
            sys.exit(f"python -m oracle_training export: {e}")


def cmd_goldens(args):
    from oracle_training.golden import coverage_problems, generate_all

    _threads()
    m = generate_all(
        args.names or None,
        models_dir=Path(args.models_dir),
        golden_dir=Path(args.golden_dir),
        data_dir=Path(args.data_dir),
    )
    probs = coverage_problems(m, expect_models=20 if not args.names else None)
    for p in probs:
        print(f"COVERAGE: {p}", file=sys.stderr)
    if probs:
        sys.exit(2)


def _zips_and_bars(args):
    from oracle_training.data import data_path

    zips = sorted(Path(args.models_dir).glob("*.zip"))
    if args.names:
        zips = [z for z in zips if z.stem in args.names]
    bars = {z.stem: data_path(z.stem, Path(args.data_dir)) for z in zips}
    return zips, bars


def cmd_reference(args):
    from oracle_training.reference import bench, run_reference

    _threads()
    zips, bars = _zips_and_bars(args)
    if args.bench:
        print(json.dumps(bench(zips, bars, args.bench_bars)))
    else:
        run_reference(zips, bars, args.tail)


def cmd_replay(args):
    from oracle_training.bars import BarError
    from oracle_training.modelzip import ModelZipError
    from oracle_training.reference import replay_trace

    _threads()
    try:
        text = replay_trace(Path(args.model), Path(args.bars))
    except (BarError, ModelZipError) as e:
        # One line, as `oracle replay: REASON` (the reason is the same text on both sides).
        sys.exit(f"python -m oracle_training replay: {e}")
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)


def cmd_backtest(args):
    from oracle_training.backtest import run_backtest
    from oracle_training.bars import BarError
    from oracle_training.modelzip import ModelZipError

    _threads()
    try:
        b = run_backtest(Path(args.model), Path(args.bars), args.capital)
    except (BarError, ModelZipError, ValueError) as e:
        sys.exit(f"python -m oracle_training backtest: {e}")
    trades = Path(args.trades) if args.trades else Path("out/backtest") / f"{b.name}.trades.csv"
    trades.parent.mkdir(parents=True, exist_ok=True)
    trades.write_text(b.trades_csv())
    sys.stdout.write(json.dumps(b.to_json(), indent=2) + "\n" if args.json else b.summary())
    print(f"trade list: {trades} ({b.stats.trades} closed trades)", file=sys.stderr)


def cmd_annotate_test(args):
    from oracle_training.annotate import AnnotateError, annotate_zip
    from oracle_training.backtest import fixed
    from oracle_training.bars import BarError
    from oracle_training.modelzip import ModelZipError

    _threads()
    golden = Path(args.golden_dir)
    dirs = [golden, *sorted(p for p in golden.iterdir() if p.is_dir())] if golden.is_dir() else []
    for z in args.zips:
        z = Path(z)
        bars = Path(args.bars) if args.bars else Path(args.data_dir) / f"{z.stem}.csv"
        try:
            t = annotate_zip(z, bars, args.capital, args.test_from, dirs)
        except (AnnotateError, ModelZipError, BarError, OSError, ValueError) as e:
            sys.exit(f"python -m oracle_training annotate-test: {e}")
        print(
            f"{z.name}: test split {t['first_decided']} to {t['last_decided']} "
            f"({t['decided_bars']} bars decided): return {fixed(t['total_return_pct'], 2)}%, "
            f"Sharpe {fixed(t['sharpe'], 2)}, {t['trades']} trades",
            flush=True,
        )


def cmd_pack_weights(args):
    from oracle_training.weights import WeightsError, pack_weights

    golden = Path(args.golden_dir)
    dirs = [golden, *sorted(p for p in golden.iterdir() if p.is_dir())] if golden.is_dir() else []
    for z in args.zips:
        try:
            changed = pack_weights(Path(z), dirs)
        except WeightsError as e:
            sys.exit(f"python -m oracle_training pack-weights: {e}")
        print(f"{Path(z).name}: {'weights written' if changed else 'weights already there'}")


def cmd_pack(args):
    from oracle_training.bars import BarError
    from oracle_training.modelzip import ModelZipError
    from oracle_training.pack import PackError, run
    from oracle_training.policy import ExportError

    _threads()
    try:
        run(args)
    except (PackError, BarError, ModelZipError, ExportError) as e:
        sys.exit(f"python -m oracle_training pack: {e}")


class CliError(Exception):
    """A mistake in the command line or its inputs: printed as one line, exit code 2."""


def _known_names(names, known, what, hint):
    """Refuses a model name that is not in ``known`` (one line naming it and the known ones)."""
    bad = [n for n in names or [] if n not in known]
    if bad:
        listed = ", ".join(sorted(known)) or "none"
        raise CliError(f"unknown model name {', '.join(bad)} ({what}: {listed}; {hint})")


def _check_names(args):
    """Model names are SYM_TF: the 20 of the sample universe for data/train/train-all, the zips in
    --models-dir for goldens/reference."""
    from oracle_training.universe import BY_NAME

    if args.cmd in ("data", "train", "train-all"):
        if args.cmd == "train" and (args.name is None) == (args.bars is None):
            raise CliError("give a sample model NAME or --bars FILE (with --symbol, --timeframe)")
        if args.cmd == "train" and args.bars is not None and not Path(args.bars).is_file():
            raise CliError(f"bar file {args.bars}: no such file")
        names = ([args.name] if args.name else []) if args.cmd == "train" else args.names
        _known_names(names, BY_NAME, "the sample universe", "see oracle_training/universe.py")
    elif args.cmd in ("goldens", "reference"):
        zips = {z.stem for z in Path(args.models_dir).glob("*.zip")}
        _known_names(args.names, zips, f"zips in {args.models_dir}", "pass --models-dir")
    elif args.cmd in ("replay", "backtest"):
        for what, f in (("model zip", args.model), ("bar file", args.bars)):
            if not Path(f).is_file():
                raise CliError(f"{what} {f}: no such file")
    elif args.cmd in ("export", "annotate-test", "pack-weights"):
        for z in args.zips:
            if not Path(z).is_file():
                raise CliError(f"model zip {z}: no such file")


def build_parser() -> argparse.ArgumentParser:
    """The command line; every option's help shows its default."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = argparse.ArgumentParser(
        prog="python -m oracle_training",
        description="Train, export and check the Oracle Trader models (training/README.md).",
        formatter_class=fmt,
    )
    p.add_argument(
        "--data-dir", default=str(REPO / "data"), help="folder of the bar CSVs (SYM_TF.csv)"
    )
    p.add_argument(
        "--models-dir", default=str(REPO / "models"), help="folder of the model zips (SYM_TF.zip)"
    )
    p.add_argument(
        "--golden-dir",
        default=str(REPO / "tests" / "golden"),
        help="folder of the golden decision files and manifest.json",
    )
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    names_help = "model names (SYM_TF); none = all"

    s = sub.add_parser("data", help="write the bundled bar CSVs into data/", formatter_class=fmt)
    s.add_argument("names", nargs="*", help=names_help)
    s.set_defaults(func=cmd_data)

    s = sub.add_parser(
        "train",
        help="train one model (SYM_TF, or any bar file with --bars) into SYM_TF.zip",
        formatter_class=fmt,
    )
    s.add_argument(
        "name", nargs="?", help="the sample model to train (SYM_TF, one of the sample universe)"
    )
    s.add_argument(
        "--timesteps", type=int, default=None, help="PPO training timesteps (None = 50,000)"
    )
    from oracle_training.train import add_bars_arguments

    add_bars_arguments(s)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser(
        "train-all", help="train the 20 sample models in parallel processes", formatter_class=fmt
    )
    s.add_argument("names", nargs="*", help=names_help)
    s.add_argument("--timesteps", type=int, default=50_000, help="PPO training timesteps per model")
    s.add_argument("--jobs", type=int, default=2, help="models trained at the same time")
    s.add_argument(
        "--net-arch",
        default=None,
        help="hidden layers, e.g. 256,256 or pi=256,256/vf=64,64 (None = the bundled 64,64)",
    )
    s.add_argument(
        "--activation", choices=["tanh", "relu"], default=None, help="None = tanh (bundled)"
    )
    s.set_defaults(func=cmd_train_all)

    s = sub.add_parser(
        "export", help="write and verify the portable members of model zips", formatter_class=fmt
    )
    s.add_argument("zips", nargs="+", help="model zips to export")
    s.add_argument(
        "--verify-only",
        action="store_true",
        help="verify the existing portable members instead of rewriting them",
    )
    s.add_argument(
        "--bars",
        default=None,
        help="bar CSV for the check's observations (None = --data-dir/SYM_TF.csv)",
    )
    s.set_defaults(func=cmd_export)

    s = sub.add_parser(
        "goldens", help="write tests/golden/ (files, manifest, restart)", formatter_class=fmt
    )
    s.add_argument("names", nargs="*", help="models (zips in --models-dir); none = all")
    s.set_defaults(func=cmd_goldens)

    s = sub.add_parser(
        "reference", help="reference predictor: SIGNAL lines, or --bench", formatter_class=fmt
    )
    s.add_argument("names", nargs="*", help="models (zips in --models-dir); none = all")
    s.add_argument(
        "--tail", type=int, default=None, help="feed only the last N bars per model (None = all)"
    )
    s.add_argument("--bench", action="store_true", help="print RSS and latency JSON")
    s.add_argument("--bench-bars", type=int, default=100, help="bars per model timed by --bench")
    s.set_defaults(func=cmd_reference)

    s = sub.add_parser(
        "replay", help="replay trace of one model zip over a bar CSV", formatter_class=fmt
    )
    s.add_argument("model", help="the model zip")
    s.add_argument("bars", help="the bar CSV")
    s.add_argument("--out", default=None, help="write the trace to this file (None = stdout)")
    s.set_defaults(func=cmd_replay)

    s = sub.add_parser(
        "backtest",
        help="backtest statistics and trade list of one model zip over a bar CSV",
        description="The same text and trade list as `oracle backtest` (docs/backtest.md).",
        formatter_class=fmt,
    )
    s.add_argument("--model", required=True, help="the model zip")
    s.add_argument("--bars", required=True, help="the bar CSV")
    s.add_argument(
        "--capital",
        type=float,
        default=10_000.0,
        help="initial capital the returns and drawdown are relative to (account currency)",
    )
    s.add_argument(
        "--trades",
        default=None,
        help="write the trade list (CSV) here (None = out/backtest/SYM_TF.trades.csv)",
    )
    s.add_argument(
        "--json",
        action="store_true",
        help="print the figures as JSON (full precision) instead of the text summary",
    )
    s.set_defaults(func=cmd_backtest)

    s = sub.add_parser(
        "annotate-test",
        help="write the test split's backtest figures into model zips' metadata (no retraining)",
        description="Runs each model, as it is, over the bars after its training range "
        "(data.train), never trained on, and writes the figures into its metadata "
        "(training.test, data.test; what `oracle doctor --models` prints). Only the zip comment "
        "changes: the members (weights) stay byte-identical; the golden manifests' zip_sha256 "
        "under --golden-dir follow.",
        formatter_class=fmt,
    )
    s.add_argument("zips", nargs="+", help="model zips (e.g. models/*.zip)")
    s.add_argument(
        "--bars", default=None, help="the bar CSV it was trained on (None = --data-dir/SYM_TF.csv)"
    )
    s.add_argument(
        "--test-from",
        default=None,
        help="open time of the first test bar (None = the bar after data.train.to); refused "
        "if it is not after the training range",
    )
    s.add_argument("--capital", type=float, default=10_000.0, help="capital of the test figures")
    s.set_defaults(func=cmd_annotate_test)

    s = sub.add_parser(
        "pack-weights",
        help="write the plain policy weights member (SYM_TF_policy.weights) into model zips",
        description="Reads each zip's ONNX policy once and writes its dense layers as the plain "
        "weights member the Rust loader reads (docs/contract.md section 9). Only that member and "
        "the metadata's members change; a zip already holding the right member is left as it "
        "is. The golden manifests' zip_sha256 under --golden-dir follow.",
        formatter_class=fmt,
    )
    s.add_argument("zips", nargs="+", help="model zips (e.g. models/*.zip)")
    s.set_defaults(func=cmd_pack_weights)

    from oracle_training.pack import add_arguments as pack_arguments

    s = sub.add_parser(
        "pack",
        help="pack an SB3 PPO zip and an hmmlearn pickle (or a seed-format zip) into a runtime zip",
        description="Checks the policy and the HMM against the contract, exports and checks the "
        "ONNX policy and writes the atomic SYM_TF.zip (training/README.md).",
        formatter_class=fmt,
    )
    pack_arguments(s)
    s.set_defaults(func=cmd_pack)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.names = getattr(args, "names", None)
    try:
        _check_names(args)
        args.func(args)
    except CliError as e:
        print(f"python -m oracle_training {args.cmd}: {e}", file=sys.stderr)
        sys.exit(2)
    except BrokenPipeError:  # e.g. `reference | head`
        sys.stderr.close()
