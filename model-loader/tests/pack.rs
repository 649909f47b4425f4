//! `python -m oracle_training pack` end to end: a model trained the way a notebook would (an SB3
//! PPO and an hmmlearn GaussianHMM, saved as the seed's two files) is packed by the Python
//! command and loaded here, where it replays exactly as the Python twin; the same two files in
//! the seed's format are refused with the command that packs them.
//!
//! The Python side runs with the repository's `.venv`. Without it the test says so and passes,
//! except under CI (`CI` set), where a missing `.venv` is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use oracle_model::{LoadErrorKind, load_model, replay};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Trains a small model on generated bars, packs it with the CLI into `out/`, writes the seed-
/// format zip of the same two files into `seed/` and the Python replay trace into `trace.csv`.
const PYTHON: &str = r#"
import io, json, pickle, sys, zipfile
from pathlib import Path

import torch
from hmmlearn.hmm import GaussianHMM
from stable_baselines3 import PPO

from oracle_training.bars import format_time, read_bars, write_bars
from oracle_training.cli import main
from oracle_training.data import generate
from oracle_training.env import TradingEnv
from oracle_training.features import RLConfig, fit_normalisation, hmm_inputs
from oracle_training.hmm import PortableHMM
from oracle_training.reference import replay_trace
from oracle_training.spec import TwinSpec, precompute
from oracle_training.twin import actions_metadata
from oracle_training.universe import FX5, ModelDef

torch.set_num_threads(1)
d = Path(sys.argv[1])
csv = d / "bars.csv"
write_bars(csv, generate(ModelDef("SYNPACK", "H1", "fx5", "full", 5, 1.1, 0.001), 900), 5)
bars = read_bars(csv)
train = bars.slice(0, 700)
norm = fit_normalisation(train)
hmm = GaussianHMM(n_components=3, covariance_type="full", n_iter=20, random_state=2)
hmm.fit(hmm_inputs(train, norm))
spec = TwinSpec("SYNPACK", "H1", dict(FX5), PortableHMM.from_hmmlearn(hmm),
                norm["hmm_norm"]["mean"], norm["hmm_norm"]["std"],
                norm["rl_norm"]["mean"], norm["rl_norm"]["std"])
env = TradingEnv(spec, precompute(bars, spec), stop=700, episode_len=64, seed=2)
model = PPO("MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=1, seed=2, device="cpu",
            policy_kwargs={"net_arch": {"pi": [48, 24], "vf": [32]}})
model.learn(total_timesteps=128)
buf = io.BytesIO()
model.save(buf)
(d / "SYNPACK_H1_ppo.zip").write_bytes(buf.getvalue())
(d / "SYNPACK_H1_hmm.pkl").write_bytes(pickle.dumps(hmm))
main(["pack", "--ppo", str(d / "SYNPACK_H1_ppo.zip"), "--hmm", str(d / "SYNPACK_H1_hmm.pkl"),
      "--symbol", "SYNPACK", "--timeframe", "H1", "--point", "0.00001", "--pip-value", "10",
      "--spread-points", "7", "--slippage-points", "2", "--commission-per-lot", "7",
      "--digits", "5", "--lot-sizes", "0,0.01,0.03,0.05", "--n-states", "3",
      "--bars", str(csv), "--train-to", format_time(int(train.time[-1])),
      "--out", str(d / "out")])
(d / "trace.csv").write_text(replay_trace(d / "out" / "SYNPACK_H1.zip", csv))
(d / "seed").mkdir()
meta = {"format_version": "2.0", "generated_at": "2026-02-03T10:30:00Z",
        "symbol": {"name": "SYNPACK", "clean": "SYNPACK", "timeframe": "H1"},
        "training_config": dict(FX5),
        "hmm_config": {"n_states": 3, "momentum_period": 12, "consistency_period": 12,
                       "range_period": 20},
        "rl_config": RLConfig().as_dict(), "actions": actions_metadata()}
with zipfile.ZipFile(d / "seed" / "SYNPACK_H1.zip", "w") as zf:
    for n in ("SYNPACK_H1_hmm.pkl", "SYNPACK_H1_ppo.zip"):
        zf.write(d / n, n)
    zf.comment = json.dumps(meta).encode()
"#;

#[test]
fn a_notebook_model_packed_by_python_loads_and_replays_alike_and_its_seed_zip_names_pack() {
    let python = repo().join(".venv/bin/python");
    let under_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
    if !python.exists() {
        assert!(
            !under_ci,
            ".venv/bin/python is missing: the pack test cannot run"
        );
        println!("no .venv/bin/python: the pack test is skipped");
        return;
    }
    let dir = std::env::temp_dir().join(format!("oracle-pack-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(&python)
        .arg("-c")
        .arg(PYTHON)
        .arg(&dir)
        .current_dir(repo())
        .output()
        .expect("run Python");
    assert!(
        out.status.success(),
        "training and packing failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let packed = dir.join("out/SYNPACK_H1.zip");
    let m = load_model(&packed).expect("the packed zip loads");
    assert_eq!(m.metadata.n_states, 3);
    assert_eq!(m.metadata.net_arch, vec![48, 24]);
    assert_eq!(m.metadata.raw["features"]["set"], "oracle");
    let (mut trace, mut err) = (Vec::new(), Vec::new());
    replay(&packed, &dir.join("bars.csv"), &mut trace, &mut err).expect("replay");
    let python_trace = std::fs::read_to_string(dir.join("trace.csv")).unwrap();
    assert_eq!(String::from_utf8(trace).unwrap(), python_trace);
    assert!(python_trace.lines().count() == 901, "one row per bar");

    let e = load_model(&dir.join("seed/SYNPACK_H1.zip")).expect_err("a seed-format zip");
    let msg = e.to_string();
    assert!(matches!(e.kind, LoadErrorKind::SeedFormat { .. }), "{msg}");
    assert!(
        msg.contains(
            "`python -m oracle_training pack --from SYNPACK_H1.zip --bars TRAINING_BARS.csv`"
        ),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
