//! Opening one `SYM_TF.zip`: metadata, member hashes, the portable HMM member, the plain policy
//! weights member (no ONNX parsing here: the ONNX policy is imported when the model is packed),
//! and the core's fixed-size [`Model`].

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use oracle_core::model::{
    Activation, CostParams, CovarianceParams, HmmParams, HmmPeriods, LayerParams, MarketPeriods,
    ModelParams, policy_weights,
};
use oracle_core::{
    Action, MAX_LAYERS, MAX_POLICY_WEIGHTS, MAX_STATES, MAX_SYMBOL, MAX_WIDTH, Model, ModelOf,
    N_ACTIONS, N_HMM_FEATURES, N_MARKET_FEATURES, Symbol, Timeframe,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{LoadError, LoadErrorKind};
use crate::json::{
    array_at, f64_array, f64_at, f64_tensor, i64_at, object_at, str_at, usize_at, usize_vec,
};
use crate::weights::{PolicyWeights, WEIGHTS_SUFFIX, decode_weights, pack_weights_command};

/// The only metadata version this loader reads.
pub const FORMAT_VERSION: &str = "2.0";

/// The largest uncompressed size of one zip member the loader will read (16 MiB; the shipped
/// models' largest member, the SB3 `_ppo.zip`, is about 160 KB). Members are hashed as streams:
/// the declared size is checked before reading and the bytes are counted while reading (a zip
/// header can understate the size), so a refused member never sits in memory.
pub const MAX_MEMBER_BYTES: u64 = 16 * 1024 * 1024;

/// The largest model zip file the loader will read (64 MiB), checked before reading it.
pub const MAX_ZIP_BYTES: u64 = 64 * 1024 * 1024;

/// The names of the timeframes a model may have: core's [`Timeframe::STREAMED`], the cTrader
/// trendbar periods with a fixed length, which the executor can stream (all but `MN1`, which the
/// cTrader session refuses for bar streams). Anything else (`H2`, `MN1`, …) would load and then
/// never get a bar.
pub const SUPPORTED_TIMEFRAMES: [&str; Timeframe::STREAMED.len()] = {
    let mut names = [""; Timeframe::STREAMED.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = Timeframe::STREAMED[i].as_str();
        i += 1;
    }
    names
};

/// Size limits of a load; [`LoadLimits::DEFAULT`] is what [`load_model`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadLimits {
    /// The largest zip file, in bytes.
    pub max_zip_bytes: u64,
    /// The largest uncompressed member, in bytes.
    pub max_member_bytes: u64,
}

impl LoadLimits {
    /// [`MAX_ZIP_BYTES`] and [`MAX_MEMBER_BYTES`].
    pub const DEFAULT: LoadLimits = LoadLimits {
        max_zip_bytes: MAX_ZIP_BYTES,
        max_member_bytes: MAX_MEMBER_BYTES,
    };
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits::DEFAULT
    }
}

/// The HMM's covariance type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CovarianceType {
    /// hmmlearn `diag`.
    Diag,
    /// hmmlearn `full`.
    Full,
}

impl CovarianceType {
    /// `diag` or `full`.
    pub fn name(self) -> &'static str {
        match self {
            CovarianceType::Diag => "diag",
            CovarianceType::Full => "full",
        }
    }
}

/// The metadata fields the runtime uses, validated, plus the whole JSON.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// `format_version` (always `"2.0"`).
    pub format_version: String,
    /// `generated_at`.
    pub generated_at: String,
    /// `symbol.name`, e.g. `EURUSD` or `GER40.cash`, parsed at load: the model's symbol everywhere in the
    /// system (zip file name, IPC lines, streams, the executor's configuration keys, the broker
    /// symbol unless the configuration maps it); see docs/contract.md, "Symbol identity".
    pub symbol: Symbol,
    /// `symbol.clean`, e.g. `GER40` for `GER40.cash`: the instrument's plain name, for people
    /// (reports, doctor). Nothing is looked up by it.
    pub symbol_clean: String,
    /// `symbol.timeframe`, e.g. `M15`: parsed at load, always one of [`Timeframe::STREAMED`].
    pub timeframe: Timeframe,
    /// `window`.
    pub window: usize,
    /// `hmm.n_states`.
    pub n_states: usize,
    /// `hmm.covariance_type`.
    pub covariance_type: CovarianceType,
    /// `observation.dim`.
    pub obs_dim: usize,
    /// `policy.net_arch`.
    pub net_arch: Vec<usize>,
    /// `training_config`.
    pub costs: CostParams,
    /// `members`: file name → sha256 (hex).
    pub members: BTreeMap<String, String>,
    /// The full metadata JSON.
    pub raw: Value,
}

impl Metadata {
    /// `SYM_TF`, the model's name and its members' prefix.
    pub fn name(&self) -> String {
        format!("{}_{}", self.symbol, self.timeframe)
    }
}

/// A loaded model: its metadata and the core model twins borrow.
#[derive(Debug)]
pub struct LoadedModel {
    /// Where it was loaded from (or the label given to [`load_model_bytes`]).
    pub path: PathBuf,
    /// `SYM_TF`.
    pub name: String,
    /// sha256 of the whole zip file (hex).
    pub zip_sha256: String,
    /// The validated metadata.
    pub metadata: Metadata,
    /// The core model, its weight storage sized to its policy.
    pub model: Box<Model>,
}

/// Loads and validates one model zip. Its file name must be `<symbol.name>_<timeframe>.zip` as
/// the metadata says.
pub fn load_model(path: &Path) -> Result<LoadedModel, LoadError> {
    load_model_limited(path, &LoadLimits::DEFAULT)
}

/// [`load_model`] with other size limits.
pub fn load_model_limited(path: &Path, limits: &LoadLimits) -> Result<LoadedModel, LoadError> {
    let label = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let fail = |kind| LoadError {
        file: label.clone(),
        kind,
    };
    let file = std::fs::File::open(path).map_err(|e| fail(LoadErrorKind::Io(e)))?;
    let size = file
        .metadata()
        .map_err(|e| fail(LoadErrorKind::Io(e)))?
        .len();
    if size > limits.max_zip_bytes {
        return Err(fail(LoadErrorKind::ZipTooLarge {
            size,
            cap: limits.max_zip_bytes,
        }));
    }
    // The file may grow between the check and the read: read at most one byte past the cap.
    let mut bytes = Vec::new();
    file.take(limits.max_zip_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(LoadErrorKind::Io(e)))?;
    if bytes.len() as u64 > limits.max_zip_bytes {
        return Err(fail(LoadErrorKind::ZipTooLarge {
            size: bytes.len() as u64,
            cap: limits.max_zip_bytes,
        }));
    }
    let mut loaded = load_model_bytes_limited(&label, &bytes, limits).map_err(|mut e| {
        // The command that adds the weights member names the zip as given, not only its name.
        if let LoadErrorKind::MissingWeights { command, .. } = &mut e.kind {
            *command = pack_weights_command(&path.display().to_string());
        }
        e
    })?;
    let want = format!("{}.zip", loaded.name);
    if label != want {
        return Err(fail(LoadErrorKind::WrongFileName {
            symbol: loaded.metadata.symbol,
            timeframe: loaded.metadata.timeframe,
            expected: want,
        }));
    }
    loaded.path = path.to_path_buf();
    Ok(loaded)
}

/// Loads and validates a model zip held in memory; `label` names it in errors. There is no file
/// name here, so the name check of [`load_model`] is not made.
pub fn load_model_bytes(label: &str, bytes: &[u8]) -> Result<LoadedModel, LoadError> {
    load_model_bytes_limited(label, bytes, &LoadLimits::DEFAULT)
}

/// [`load_model_bytes`] with other size limits.
pub fn load_model_bytes_limited(
    label: &str,
    bytes: &[u8],
    limits: &LoadLimits,
) -> Result<LoadedModel, LoadError> {
    load_inner(label, bytes, limits.max_member_bytes)
        .map_err(|kind| LoadError {
            file: label.to_owned(),
            kind,
        })
        .map(|(metadata, model)| LoadedModel {
            path: PathBuf::from(label),
            name: metadata.name(),
            zip_sha256: hex::encode(Sha256::digest(bytes)),
            metadata,
            model,
        })
}

/// Hashes one member as a stream, refusing it once more than `cap` bytes come out (whatever its
/// header declared); keeps the bytes only when `keep`.
fn hash_member(
    member: &str,
    file: &mut dyn Read,
    cap: u64,
    keep: bool,
) -> Result<(String, Vec<u8>), LoadErrorKind> {
    let too_large = || LoadErrorKind::MemberTooLarge {
        member: member.to_owned(),
        cap,
    };
    let mut hasher = Sha256::new();
    let mut kept = Vec::new();
    let mut total: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|source| LoadErrorKind::ReadMember {
                member: member.to_owned(),
                source,
            })?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > cap {
            return Err(too_large());
        }
        hasher.update(&buf[..n]);
        if keep {
            kept.extend_from_slice(&buf[..n]);
        }
    }
    Ok((hex::encode(hasher.finalize()), kept))
}

fn load_inner(
    label: &str,
    bytes: &[u8],
    max_member: u64,
) -> Result<(Metadata, Box<Model>), LoadErrorKind> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(LoadErrorKind::NotZip)?;
    let comment = archive.comment();
    if comment.iter().all(u8::is_ascii_whitespace) {
        return Err(LoadErrorKind::NoMetadata);
    }
    let raw: Value = serde_json::from_slice(comment).map_err(LoadErrorKind::MetadataJson)?;
    let names: Vec<String> = archive.file_names().map(str::to_owned).collect();
    if let Some(seed) = crate::features::seed_format(&raw, &names, label) {
        return Err(seed);
    }
    let meta = parse_metadata(raw)?;

    // Members: every zip member listed, every listed member present, every hash right.
    for name in &names {
        if !meta.members.contains_key(name) {
            return Err(LoadErrorKind::UnlistedMember {
                member: name.clone(),
            });
        }
    }
    let prefix = meta.name();
    let hmm_member = format!("{prefix}_hmm.json");
    let onnx_member = format!("{prefix}_policy.onnx");
    let weights_member = format!("{prefix}{WEIGHTS_SUFFIX}");
    for required in [&hmm_member, &onnx_member] {
        if !meta.members.contains_key(required) {
            return Err(LoadErrorKind::InvalidField {
                field: "members".to_owned(),
                reason: format!("lacks the portable member '{required}'"),
            });
        }
    }
    if !meta.members.contains_key(&weights_member) {
        return Err(LoadErrorKind::MissingWeights {
            member: weights_member,
            command: pack_weights_command(label),
        });
    }
    let mut contents: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (member, expected) in &meta.members {
        let mut file = match archive.by_name(member) {
            Ok(f) => f,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(LoadErrorKind::MissingMember {
                    member: member.clone(),
                });
            }
            Err(e) => return Err(LoadErrorKind::NotZip(e)),
        };
        if file.size() > max_member {
            return Err(LoadErrorKind::MemberTooLarge {
                member: member.clone(),
                cap: max_member,
            });
        }
        let keep = *member == hmm_member || *member == weights_member;
        let (actual, data) = hash_member(member, &mut file, max_member, keep)?;
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(LoadErrorKind::HashMismatch {
                member: member.clone(),
                expected: expected.clone(),
                actual,
            });
        }
        if keep {
            contents.insert(member.clone(), data);
        }
    }

    let hmm_bytes = contents.remove(&hmm_member).unwrap_or_default();
    let weights_bytes = contents.remove(&weights_member).unwrap_or_default();
    let hmm = parse_hmm(&meta, &hmm_member, &hmm_bytes)?;
    let policy = decode_weights(&weights_bytes).map_err(|source| LoadErrorKind::BadWeights {
        member: weights_member.clone(),
        source,
    })?;
    // The weights must be the ONNX member's (listed, hence hashed above): a member written from
    // another export is refused, not run.
    let onnx_sha = hex::encode(policy.onnx_sha256);
    if meta.members.get(&onnx_member) != Some(&onnx_sha) {
        return Err(shape(
            &format!("{weights_member}: onnx_sha256"),
            format!(
                "the sha256 of {onnx_member}, {}",
                meta.members.get(&onnx_member).map_or("", String::as_str)
            ),
            onnx_sha,
        ));
    }
    let (layers, weights, n_layers) = convert_layers(&meta, &weights_member, &policy)?;

    let params = build_params(&meta, hmm, layers, weights, n_layers)?;
    // The weights are stored exactly as the policy needs them (a `[64, 64]` policy ~21 KB, not
    // the ~280 KB of the largest policy a model may hold): a model keeps resident only the
    // weights it uses. Capped: a policy over the cap is refused by name when validated.
    let storage = vec![0.0f32; params.policy_weights().min(MAX_POLICY_WEIGHTS)];
    let model =
        ModelOf::with_weights(&params, storage.into_boxed_slice()).map_err(LoadErrorKind::Model)?;
    Ok((meta, Box::new(model)))
}

fn invalid(field: &str, reason: impl Into<String>) -> LoadErrorKind {
    LoadErrorKind::InvalidField {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

fn shape(field: &str, expected: impl ToString, found: impl ToString) -> LoadErrorKind {
    LoadErrorKind::ShapeMismatch {
        field: field.to_owned(),
        expected: expected.to_string(),
        found: found.to_string(),
    }
}

/// Validates the metadata JSON (contract §9) and extracts what the runtime uses.
pub fn parse_metadata(raw: Value) -> Result<Metadata, LoadErrorKind> {
    if !raw.is_object() {
        return Err(LoadErrorKind::WrongType {
            field: "(metadata)".to_owned(),
            expected: "a JSON object",
        });
    }
    let version = str_at(&raw, "format_version")?;
    if version != FORMAT_VERSION {
        return Err(LoadErrorKind::WrongVersion {
            found: version.to_owned(),
        });
    }
    // Presence and type of every required field, in the contract's order.
    let generated_at = str_at(&raw, "generated_at")?.to_owned();
    let symbol_name = str_at(&raw, "symbol.name")?;
    let symbol_clean = str_at(&raw, "symbol.clean")?.to_owned();
    let timeframe_name = str_at(&raw, "symbol.timeframe")?;
    let Some(timeframe) = Timeframe::from_name(timeframe_name).filter(|t| t.is_streamed()) else {
        return Err(invalid(
            "symbol.timeframe",
            format!(
                "{timeframe_name:?} is not a timeframe the system streams ({})",
                SUPPORTED_TIMEFRAMES.join(", ")
            ),
        ));
    };
    // Parsed once, here, into the symbol every stream key carries: a name no IPC line, stream
    // or file name could carry (empty, a path separator, a space, over MAX_SYMBOL bytes) is refused.
    let Ok(symbol) = Symbol::new(symbol_name) else {
        return Err(invalid(
            "symbol.name",
            format!(
                "{symbol_name:?} cannot name a model: a symbol is 1 to {MAX_SYMBOL} characters of \
                 A-Z a-z 0-9 . _ - #"
            ),
        ));
    };
    let costs = parse_costs(&raw)?;
    for f in [
        "hmm_config.n_states",
        "hmm_config.momentum_period",
        "hmm_config.consistency_period",
        "hmm_config.range_period",
        "rl_config.roc_period",
        "rl_config.atr_period",
        "rl_config.ema_period",
        "rl_config.range_period",
        "rl_config.volume_ma_period",
    ] {
        usize_at(&raw, f)?;
    }
    check_actions(&raw)?;
    let window = usize_at(&raw, "window")?;
    let obs_dim = usize_at(&raw, "observation.dim")?;
    let layout = array_at(&raw, "observation.layout")?;
    f64_array::<N_MARKET_FEATURES>(&raw, "observation.rl_norm.mean")?;
    f64_array::<N_MARKET_FEATURES>(&raw, "observation.rl_norm.std")?;
    f64_at(&raw, "observation.clip")?;
    let covariance_type = match str_at(&raw, "hmm.covariance_type")? {
        "diag" => CovarianceType::Diag,
        "full" => CovarianceType::Full,
        other => {
            return Err(invalid(
                "hmm.covariance_type",
                format!("{other:?} is not supported (diag, full)"),
            ));
        }
    };
    let n_states = usize_at(&raw, "hmm.n_states")?;
    let n_features = usize_at(&raw, "hmm.n_features")?;
    f64_array::<N_HMM_FEATURES>(&raw, "hmm.feature_norm.mean")?;
    f64_array::<N_HMM_FEATURES>(&raw, "hmm.feature_norm.std")?;
    let policy_obs_dim = usize_at(&raw, "policy.obs_dim")?;
    let n_actions = usize_at(&raw, "policy.n_actions")?;
    let net_arch = usize_vec(&raw, "policy.net_arch")?;
    let activation = str_at(&raw, "policy.activation")?;
    let members_obj = object_at(&raw, "members")?;
    object_at(&raw, "data")?;

    // Consistency.
    if n_states == 0 || n_states > MAX_STATES {
        return Err(invalid(
            "hmm.n_states",
            format!("{n_states} is not in 1..={MAX_STATES}"),
        ));
    }
    let cfg_states = usize_at(&raw, "hmm_config.n_states")?;
    if cfg_states != n_states {
        return Err(shape("hmm_config.n_states", n_states, cfg_states));
    }
    if n_features != N_HMM_FEATURES {
        return Err(shape("hmm.n_features", N_HMM_FEATURES, n_features));
    }
    let want_dim = N_MARKET_FEATURES + n_states + 3;
    if obs_dim != want_dim {
        return Err(shape(
            "observation.dim",
            format!("5 + n_states + 3 = {want_dim}"),
            obs_dim,
        ));
    }
    if layout.len() != obs_dim {
        return Err(shape(
            "observation.layout",
            format!("{obs_dim} names"),
            format!("{} names", layout.len()),
        ));
    }
    crate::features::check_declared_features(&raw, n_states)?;
    if policy_obs_dim != obs_dim {
        return Err(shape("policy.obs_dim", obs_dim, policy_obs_dim));
    }
    if n_actions != N_ACTIONS {
        return Err(shape("policy.n_actions", N_ACTIONS, n_actions));
    }
    if net_arch.len() + 1 > MAX_LAYERS
        || net_arch.iter().any(|w| *w == 0 || *w > MAX_WIDTH)
        || policy_weights(obs_dim, &net_arch) > MAX_POLICY_WEIGHTS
    {
        return Err(invalid(
            "policy.net_arch",
            format!(
                "{net_arch:?}: at most {} hidden layers of 1..={MAX_WIDTH} units, \
                 no larger than [{MAX_WIDTH}, {MAX_WIDTH}] in all",
                MAX_LAYERS - 1
            ),
        ));
    }
    if !matches!(activation, "tanh" | "relu") {
        return Err(invalid(
            "policy.activation",
            format!("{activation:?} is not supported (tanh, relu)"),
        ));
    }
    let mut members = BTreeMap::new();
    for (name, info) in members_obj {
        let field = format!("members.{name}.sha256");
        let digest = info
            .get("sha256")
            .ok_or_else(|| LoadErrorKind::MissingField {
                field: field.clone(),
            })?
            .as_str()
            .ok_or_else(|| LoadErrorKind::WrongType {
                field: field.clone(),
                expected: "a string",
            })?;
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(&field, "not a 64-digit hex sha256"));
        }
        members.insert(name.clone(), digest.to_ascii_lowercase());
    }

    Ok(Metadata {
        format_version: version.to_owned(),
        generated_at,
        symbol,
        symbol_clean,
        timeframe,
        window,
        n_states,
        covariance_type,
        obs_dim,
        net_arch,
        costs,
        members,
        raw,
    })
}

fn parse_costs(raw: &Value) -> Result<CostParams, LoadErrorKind> {
    let point = f64_at(raw, "training_config.point")?;
    let pip_value = f64_at(raw, "training_config.pip_value")?;
    let spread_points = f64_at(raw, "training_config.spread_points")?;
    let slippage_points = f64_at(raw, "training_config.slippage_points")?;
    let commission_per_lot = f64_at(raw, "training_config.commission_per_lot")?;
    let digits = i64_at(raw, "training_config.digits")?;
    let digits = u32::try_from(digits)
        .ok()
        .filter(|d| *d <= 12)
        .ok_or_else(|| {
            invalid(
                "training_config.digits",
                format!("{digits} is not in 0..=12"),
            )
        })?;
    let lot_sizes = f64_array::<4>(raw, "training_config.lot_sizes")?;
    for (name, v) in [
        ("training_config.point", point),
        ("training_config.pip_value", pip_value),
    ] {
        if v <= 0.0 {
            return Err(invalid(name, format!("{v} must be positive")));
        }
    }
    for (name, v) in [
        ("training_config.spread_points", spread_points),
        ("training_config.slippage_points", slippage_points),
        ("training_config.commission_per_lot", commission_per_lot),
    ] {
        if v < 0.0 {
            return Err(invalid(name, format!("{v} must not be negative")));
        }
    }
    if lot_sizes.iter().any(|l| *l < 0.0) {
        return Err(invalid(
            "training_config.lot_sizes",
            "a lot size is negative",
        ));
    }
    Ok(CostParams {
        point,
        pip_value,
        spread_points,
        slippage_points,
        commission_per_lot,
        digits,
        lot_sizes,
    })
}

/// The metadata's `actions` must be the contract's table (§6).
fn check_actions(raw: &Value) -> Result<(), LoadErrorKind> {
    let actions = object_at(raw, "actions")?;
    if actions.len() != N_ACTIONS {
        return Err(shape(
            "actions",
            format!("{N_ACTIONS} entries"),
            actions.len(),
        ));
    }
    for a in Action::ALL {
        let base = format!("actions.{}", a.index());
        let name = str_at(raw, &format!("{base}.name"))?;
        let direction = i64_at(raw, &format!("{base}.direction"))?;
        let intensity = i64_at(raw, &format!("{base}.intensity"))?;
        if name != a.name()
            || direction != i64::from(a.direction())
            || intensity != i64::from(a.intensity().get())
        {
            return Err(invalid(
                &base,
                format!(
                    "({name}, {direction}, {intensity}) differs from the contract's ({}, {}, {})",
                    a.name(),
                    a.direction(),
                    a.intensity()
                ),
            ));
        }
    }
    Ok(())
}

/// Parses the portable HMM member and checks it against the metadata.
fn parse_hmm(meta: &Metadata, member: &str, bytes: &[u8]) -> Result<HmmParams, LoadErrorKind> {
    let v: Value = serde_json::from_slice(bytes).map_err(|source| LoadErrorKind::MemberJson {
        member: member.to_owned(),
        source,
    })?;
    let bad = |field: &str, reason: String| LoadErrorKind::MemberField {
        member: member.to_owned(),
        field: field.to_owned(),
        reason,
    };
    let get = |field: &str| -> Result<&Value, LoadErrorKind> {
        v.get(field).ok_or_else(|| bad(field, "missing".to_owned()))
    };
    let cov = get("covariance_type")?
        .as_str()
        .ok_or_else(|| bad("covariance_type", "must be a string".to_owned()))?;
    if cov != meta.covariance_type.name() {
        return Err(shape(
            &format!("{member}: covariance_type"),
            meta.covariance_type.name(),
            cov,
        ));
    }
    let k = meta.n_states;
    for (field, want) in [("n_states", k), ("n_features", N_HMM_FEATURES)] {
        let found = get(field)?
            .as_u64()
            .ok_or_else(|| bad(field, "must be a non-negative integer".to_owned()))?;
        if found != want as u64 {
            return Err(shape(&format!("{member}: {field}"), want, found));
        }
    }
    let d = N_HMM_FEATURES;
    let tensor = |field: &str, dims: &[usize]| -> Result<Vec<f64>, LoadErrorKind> {
        f64_tensor(get(field)?, dims).map_err(|reason| bad(field, reason))
    };
    let sp = tensor("startprob", &[k])?;
    let tm = tensor("transmat", &[k, k])?;
    let mu = tensor("means", &[k, d])?;
    let mut startprob = [0.0; MAX_STATES];
    startprob[..k].copy_from_slice(&sp);
    let mut transmat = [[0.0; MAX_STATES]; MAX_STATES];
    for (row, src) in transmat.iter_mut().zip(tm.chunks_exact(k)) {
        row[..k].copy_from_slice(src);
    }
    let mut means = [[0.0; N_HMM_FEATURES]; MAX_STATES];
    for (row, src) in means.iter_mut().zip(mu.chunks_exact(d)) {
        row.copy_from_slice(src);
    }
    let covars = match meta.covariance_type {
        CovarianceType::Diag => {
            let c = tensor("covars", &[k, d])?;
            let mut out = [[0.0; N_HMM_FEATURES]; MAX_STATES];
            for (row, src) in out.iter_mut().zip(c.chunks_exact(d)) {
                row.copy_from_slice(src);
            }
            CovarianceParams::Diag(out)
        }
        CovarianceType::Full => {
            let c = tensor("covars", &[k, d, d])?;
            let mut out = [[[0.0; N_HMM_FEATURES]; N_HMM_FEATURES]; MAX_STATES];
            for (mat, src) in out.iter_mut().zip(c.chunks_exact(d * d)) {
                for (row, s) in mat.iter_mut().zip(src.chunks_exact(d)) {
                    row.copy_from_slice(s);
                }
            }
            CovarianceParams::Full(out)
        }
    };
    Ok(HmmParams {
        n_states: k,
        startprob,
        transmat,
        means,
        covars,
        feature_mean: f64_array(&meta.raw, "hmm.feature_norm.mean")?,
        feature_std: f64_array(&meta.raw, "hmm.feature_norm.std")?,
    })
}

/// Checks the weights member's layers against the metadata and copies them into fixed-size
/// layers.
fn convert_layers(
    meta: &Metadata,
    member: &str,
    mlp: &PolicyWeights,
) -> Result<(Vec<LayerParams>, Vec<f32>, usize), LoadErrorKind> {
    let n = mlp.layers.len();
    let want_layers = meta.net_arch.len() + 1;
    if n != want_layers {
        return Err(shape(
            &format!("{member}: layers"),
            format!(
                "{want_layers} (policy.net_arch {:?} + the action layer)",
                meta.net_arch
            ),
            n,
        ));
    }
    let hidden_act = match str_at(&meta.raw, "policy.activation")? {
        "relu" => Activation::Relu,
        _ => Activation::Tanh,
    };
    let mut out = Vec::with_capacity(n);
    let mut weights = Vec::new();
    let mut in_dim = meta.obs_dim;
    for (i, layer) in mlp.layers.iter().enumerate() {
        let last = i + 1 == n;
        let out_dim = if last { N_ACTIONS } else { meta.net_arch[i] };
        if layer.in_dim != in_dim || layer.out_dim != out_dim {
            return Err(shape(
                &format!("{member}: layer {i}"),
                format!("{out_dim}x{in_dim}"),
                format!("{}x{}", layer.out_dim, layer.in_dim),
            ));
        }
        if layer.weights.len() != in_dim * out_dim || layer.bias.len() != out_dim {
            return Err(shape(
                &format!("{member}: layer {i} tensors"),
                format!("{} weights and {out_dim} biases", in_dim * out_dim),
                format!(
                    "{} weights and {} biases",
                    layer.weights.len(),
                    layer.bias.len()
                ),
            ));
        }
        let act = layer.activation;
        let want_act = if last {
            Activation::Identity
        } else {
            hidden_act
        };
        if act != want_act {
            return Err(invalid(
                "policy.activation",
                format!("layer {i} of {member} applies {act:?}, the metadata implies {want_act:?}"),
            ));
        }
        let mut p = LayerParams::ZERO;
        p.in_dim = in_dim;
        p.out_dim = out_dim;
        p.activation = act;
        weights.extend_from_slice(&layer.weights);
        p.bias[..out_dim].copy_from_slice(&layer.bias);
        out.push(p);
        in_dim = out_dim;
    }
    Ok((out, weights, n))
}

fn build_params(
    meta: &Metadata,
    hmm: HmmParams,
    layers: Vec<LayerParams>,
    weights: Vec<f32>,
    n_layers: usize,
) -> Result<Box<ModelParams>, LoadErrorKind> {
    let raw = &meta.raw;
    let mut params = Box::new(ModelParams {
        window: meta.window,
        market: MarketPeriods {
            roc: usize_at(raw, "rl_config.roc_period")?,
            atr: usize_at(raw, "rl_config.atr_period")?,
            ema: usize_at(raw, "rl_config.ema_period")?,
            range: usize_at(raw, "rl_config.range_period")?,
            volume_ma: usize_at(raw, "rl_config.volume_ma_period")?,
        },
        hmm_periods: HmmPeriods {
            momentum: usize_at(raw, "hmm_config.momentum_period")?,
            consistency: usize_at(raw, "hmm_config.consistency_period")?,
            range: usize_at(raw, "hmm_config.range_period")?,
        },
        rl_mean: f64_array(raw, "observation.rl_norm.mean")?,
        rl_std: f64_array(raw, "observation.rl_norm.std")?,
        clip: f64_at(raw, "observation.clip")?,
        costs: meta.costs,
        hmm,
        layers: [LayerParams::ZERO; MAX_LAYERS],
        n_layers,
        weights: [0.0; MAX_POLICY_WEIGHTS],
    });
    for (dst, src) in params.layers.iter_mut().zip(layers) {
        *dst = src;
    }
    // `parse_metadata` kept `net_arch` within `MAX_POLICY_WEIGHTS`, and `convert_layers` held
    // every layer to it.
    params.weights[..weights.len()].copy_from_slice(&weights);
    Ok(params)
}
