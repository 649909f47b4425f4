//! The declared feature set (contract §9 "Declared features") and the seed-format zip.
//!
//! A model's metadata may declare the features its policy was trained on: `features.set`,
//! `features.version`, each market and HMM feature with its period. The loader implements one
//! set, `oracle` version 1 (contract §3–5); a zip declaring anything else is refused with the
//! features it does not implement named. A zip without `features` is the v1 set (the bundled
//! zips predate the declaration); its `observation.layout` is checked either way.

use serde_json::Value;

use crate::error::LoadErrorKind;
use crate::json::{array_at, at, str_at, usize_at};

/// The feature set this loader implements.
pub const FEATURE_SET: &str = "oracle";

/// Its version.
pub const FEATURE_SET_VERSION: u64 = 1;

/// Market features in observation order, with the `rl_config` field holding each one's period.
pub const MARKET_FEATURES: [(&str, &str); 5] = [
    ("roc", "rl_config.roc_period"),
    ("atr", "rl_config.atr_period"),
    ("ema", "rl_config.ema_period"),
    ("range", "rl_config.range_period"),
    ("volume", "rl_config.volume_ma_period"),
];

/// HMM features in the HMM's input order, with the `hmm_config` field holding each period.
pub const HMM_FEATURES: [(&str, &str); 3] = [
    ("momentum", "hmm_config.momentum_period"),
    ("consistency", "hmm_config.consistency_period"),
    ("range", "hmm_config.range_period"),
];

/// The position features that end the observation.
pub const POSITION_FEATURES: [&str; 3] = ["position_direction", "position_intensity", "upnl_norm"];

/// The observation layout of the v1 set for `n_states` regimes (contract §5).
pub fn v1_layout(n_states: usize) -> Vec<String> {
    MARKET_FEATURES
        .iter()
        .map(|(n, _)| (*n).to_owned())
        .chain((0..n_states).map(|k| format!("regime_{k}")))
        .chain(POSITION_FEATURES.iter().map(|n| (*n).to_owned()))
        .collect()
}

/// What this loader implements, for messages.
fn implemented() -> String {
    let names = |list: &[(&str, &str)]| list.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    format!(
        "feature set {FEATURE_SET} v{FEATURE_SET_VERSION}: market {}; hmm {}; docs/contract.md §3-5",
        names(&MARKET_FEATURES),
        names(&HMM_FEATURES)
    )
}

fn invalid(field: &str, reason: impl Into<String>) -> LoadErrorKind {
    LoadErrorKind::InvalidField {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Checks `observation.layout` and, when present, the `features` declaration against the v1
/// set and the periods of `rl_config` / `hmm_config`.
pub(crate) fn check_declared_features(raw: &Value, n_states: usize) -> Result<(), LoadErrorKind> {
    let want_layout = v1_layout(n_states);
    let layout = array_at(raw, "observation.layout")?;
    let mut unknown = Vec::new();
    let mut names = Vec::with_capacity(layout.len());
    for (i, v) in layout.iter().enumerate() {
        let name = v.as_str().ok_or_else(|| LoadErrorKind::WrongType {
            field: format!("observation.layout.{i}"),
            expected: "a string",
        })?;
        if !want_layout.iter().any(|w| w == name) {
            unknown.push(format!("observation.layout[{i}] {name:?}"));
        }
        names.push(name);
    }
    if raw.get("features").is_some() {
        check_declaration(raw, &mut unknown)?;
    }
    if !unknown.is_empty() {
        return Err(LoadErrorKind::UnsupportedFeatures {
            features: unknown,
            implemented: implemented(),
        });
    }
    for (i, (found, want)) in names.iter().zip(&want_layout).enumerate() {
        if found != want {
            return Err(invalid(
                "observation.layout",
                format!("entry {i} is {found:?}, the contract's observation has {want:?} there"),
            ));
        }
    }
    Ok(())
}

/// `features`: set, version, and each feature with its period. Features the loader does not
/// implement are pushed on `unknown` (all of them are named in one refusal).
fn check_declaration(raw: &Value, unknown: &mut Vec<String>) -> Result<(), LoadErrorKind> {
    let set = str_at(raw, "features.set")?;
    if set != FEATURE_SET {
        return Err(invalid(
            "features.set",
            format!("{set:?} is not a feature set this loader implements ({FEATURE_SET:?})"),
        ));
    }
    let version =
        at(raw, "features.version")?
            .as_u64()
            .ok_or_else(|| LoadErrorKind::WrongType {
                field: "features.version".to_owned(),
                expected: "a non-negative integer",
            })?;
    if version != FEATURE_SET_VERSION {
        return Err(invalid(
            "features.version",
            format!(
                "{version} is not a version of feature set {FEATURE_SET:?} this loader \
                 implements ({FEATURE_SET_VERSION})"
            ),
        ));
    }
    for (group, list) in [("market", &MARKET_FEATURES[..]), ("hmm", &HMM_FEATURES[..])] {
        let path = format!("features.{group}");
        let declared = array_at(raw, &path)?;
        let mut seen = Vec::new();
        for (i, f) in declared.iter().enumerate() {
            let name = str_at(f, "name").map_err(|_| LoadErrorKind::WrongType {
                field: format!("{path}.{i}.name"),
                expected: "a string",
            })?;
            let period = usize_at(f, "period").map_err(|_| LoadErrorKind::WrongType {
                field: format!("{path}.{i}.period"),
                expected: "a non-negative integer",
            })?;
            match list.iter().find(|(n, _)| *n == name) {
                None => unknown.push(format!("{group} {name}({period})")),
                Some((_, config)) => {
                    let configured = usize_at(raw, config)?;
                    if configured != period {
                        return Err(LoadErrorKind::ShapeMismatch {
                            field: format!("{path}.{i} ({name}) period"),
                            expected: format!("{config} = {configured}"),
                            found: period.to_string(),
                        });
                    }
                    seen.push(name);
                }
            }
        }
        let want: Vec<&str> = list.iter().map(|(n, _)| *n).collect();
        if unknown.is_empty() && seen != want {
            return Err(invalid(
                &path,
                format!(
                    "declares [{}]; the set's {group} features are [{}], each once, in this order",
                    seen.join(", "),
                    want.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// A seed-format zip: none of the runtime metadata fields, and the seed's SB3 or hmmlearn
/// member. Returns the refusal naming the command that packs it.
pub(crate) fn seed_format(raw: &Value, members: &[String], file: &str) -> Option<LoadErrorKind> {
    const RUNTIME_FIELDS: [&str; 5] = ["window", "observation", "hmm", "policy", "members"];
    let obj = raw.as_object()?;
    if RUNTIME_FIELDS.iter().any(|f| obj.contains_key(*f)) {
        return None;
    }
    let seed_members: Vec<String> = members
        .iter()
        .filter(|m| m.ends_with("_ppo.zip") || m.ends_with("_hmm.pkl"))
        .cloned()
        .collect();
    if seed_members.is_empty() {
        return None;
    }
    Some(LoadErrorKind::SeedFormat {
        members: seed_members,
        command: pack_command(file),
    })
}

/// `python -m oracle_training pack --from FILE --bars TRAINING_BARS.csv`: packs a seed-format
/// zip (or re-packs any zip from its SB3 and hmmlearn members) into a runtime zip, in its place.
pub fn pack_command(file: &str) -> String {
    format!("python -m oracle_training pack --from {file} --bars TRAINING_BARS.csv")
}
