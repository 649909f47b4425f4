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


def _train_one(name, timesteps, data_dir, models_dir):
    from oracle_training.train import train_model

    _threads()
    t0 = time.time()
    train_model(name, timesteps=timesteps, data_dir=Path(data_dir), models_dir=Path(models_dir))
    return name, time.time() - t0


def cmd_train(args):
    _train_one(args.name, args.timesteps, args.data_dir, args.models_dir)


def cmd_train_all(args):
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from oracle_training.universe import UNIVERSE

    names = args.names or [m.name for m in UNIVERSE]
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=args.jobs) as ex:
        futs = [
            ex.submit(_train_one, n, args.timesteps, args.data_dir, args.models_dir) for n in names
        ]
        for f in as_completed(futs):
            name, secs = f.result()
            print(f"done {name} in {secs:.1f}s", flush=True)
    print(f"train-all: {len(names)} models in {time.time() - t0:.1f}s wall", flush=True)


def cmd_export(args):
    from oracle_training.export import export_zip

    _threads()
    for z in args.zips:
        print(json.dumps(export_zip(Path(z), rewrite=not args.verify_only)))


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
    from oracle_training.reference import replay_trace

    _threads()
    text = replay_trace(Path(args.model), Path(args.bars))
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m oracle_training")
    p.add_argument("--data-dir", default=str(REPO / "data"))
    p.add_argument("--models-dir", default=str(REPO / "models"))
    p.add_argument("--golden-dir", default=str(REPO / "tests" / "golden"))
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("data", help="write the bundled bar CSVs into data/")
    s.add_argument("names", nargs="*")
    s.set_defaults(func=cmd_data)

    s = sub.add_parser("train", help="train one model (SYM_TF) into models/SYM_TF.zip")
    s.add_argument("name")
    s.add_argument("--timesteps", type=int, default=50_000)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("train-all", help="train the 20 sample models in parallel processes")
    s.add_argument("names", nargs="*")
    s.add_argument("--timesteps", type=int, default=50_000)
    s.add_argument("--jobs", type=int, default=2)
    s.set_defaults(func=cmd_train_all)

    s = sub.add_parser("export", help="write and verify the portable members of model zips")
    s.add_argument("zips", nargs="+")
    s.add_argument("--verify-only", action="store_true")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("goldens", help="write tests/golden/ (files, manifest, restart)")
    s.add_argument("names", nargs="*")
    s.set_defaults(func=cmd_goldens)

    s = sub.add_parser("reference", help="reference predictor: SIGNAL lines, or --bench")
    s.add_argument("names", nargs="*")
    s.add_argument("--tail", type=int, default=None, help="feed only the last N bars per model")
    s.add_argument("--bench", action="store_true", help="print RSS and latency JSON")
    s.add_argument("--bench-bars", type=int, default=100)
    s.set_defaults(func=cmd_reference)

    s = sub.add_parser("replay", help="replay trace of one model zip over a bar CSV")
    s.add_argument("model")
    s.add_argument("bars")
    s.add_argument("--out")
    s.set_defaults(func=cmd_replay)

    args = p.parse_args(argv)
    args.names = getattr(args, "names", None)
    try:
        args.func(args)
    except BrokenPipeError:  # e.g. `reference | head`
        sys.stderr.close()
