//! Load errors: each names the zip file and, where there is one, the metadata field or member.

use std::fmt;

/// A model zip that was refused, with the file it came from.
#[derive(Debug)]
pub struct LoadError {
    /// The zip's file name (or the label given to [`crate::load_model_bytes`]).
    pub file: String,
    /// What is wrong.
    pub kind: LoadErrorKind,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.kind)
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.kind.source_error()
    }
}

/// Why a model zip was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadErrorKind {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Io(#[source] std::io::Error),
    /// The file is not a readable zip archive.
    #[error("not a readable zip archive: {0}")]
    NotZip(#[source] zip::result::ZipError),
    /// The zip has no comment, so no metadata.
    #[error("the zip comment (the metadata JSON) is empty")]
    NoMetadata,
    /// The zip comment is not valid UTF-8 JSON.
    #[error("the zip comment is not metadata JSON: {0}")]
    MetadataJson(#[source] serde_json::Error),
    /// A required field is absent.
    #[error("metadata field '{field}' is missing")]
    MissingField {
        /// Dotted path of the field, e.g. `training_config.point`.
        field: String,
    },
    /// A field has the wrong JSON type.
    #[error("metadata field '{field}' must be {expected}")]
    WrongType {
        /// Dotted path of the field.
        field: String,
        /// What it must be, e.g. `a number`.
        expected: &'static str,
    },
    /// `format_version` is not the one this loader reads.
    #[error("metadata field 'format_version' is {found:?}, expected \"2.0\"")]
    WrongVersion {
        /// The version found.
        found: String,
    },
    /// A field has a value the contract does not allow.
    #[error("metadata field '{field}' is invalid: {reason}")]
    InvalidField {
        /// Dotted path of the field.
        field: String,
        /// Why.
        reason: String,
    },
    /// Two dimensions that must agree do not.
    #[error("shape mismatch in '{field}': expected {expected}, found {found}")]
    ShapeMismatch {
        /// The field or member (and part) whose shape is wrong.
        field: String,
        /// The expected shape.
        expected: String,
        /// The shape found.
        found: String,
    },
    /// A member the metadata requires is not in the zip.
    #[error("member '{member}' is missing from the zip")]
    MissingMember {
        /// The member's file name.
        member: String,
    },
    /// A zip member is not listed in the metadata's `members`.
    #[error("member '{member}' is not listed in metadata field 'members'")]
    UnlistedMember {
        /// The member's file name.
        member: String,
    },
    /// A member could not be read from the zip.
    #[error("member '{member}' cannot be read: {source}")]
    ReadMember {
        /// The member's file name.
        member: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The zip file is larger than the loader reads.
    #[error("the file is {size} bytes, more than the {cap}-byte cap on a model zip")]
    ZipTooLarge {
        /// The size found (or read so far).
        size: u64,
        /// The cap ([`crate::MAX_ZIP_BYTES`] by default).
        cap: u64,
    },
    /// A member is larger, declared or read, than the loader reads.
    #[error("member '{member}' is larger than the {cap}-byte cap on a member; not read")]
    MemberTooLarge {
        /// The member's file name.
        member: String,
        /// The cap ([`crate::MAX_MEMBER_BYTES`] by default).
        cap: u64,
    },
    /// The zip's file name is not `<symbol.name>_<timeframe>.zip` of its metadata.
    #[error(
        "the file name must be {expected:?}: its metadata says symbol.name {symbol:?}, \
         symbol.timeframe {tf:?}",
        symbol = .symbol.as_str(),
        tf = .timeframe.as_str()
    )]
    WrongFileName {
        /// `symbol.name`.
        symbol: oracle_core::Symbol,
        /// `symbol.timeframe`.
        timeframe: oracle_core::Timeframe,
        /// `<symbol.name>_<timeframe>.zip`.
        expected: String,
    },
    /// A member's sha256 differs from the metadata's.
    #[error("member '{member}' sha256 mismatch: metadata {expected}, file {actual}")]
    HashMismatch {
        /// The member's file name.
        member: String,
        /// The digest in `members.<member>.sha256`.
        expected: String,
        /// The digest of the bytes.
        actual: String,
    },
    /// The HMM member is not valid JSON.
    #[error("member '{member}' is not valid JSON: {source}")]
    MemberJson {
        /// The member's file name.
        member: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A field of the HMM member is missing, mistyped or mis-shaped.
    #[error("member '{member}' field '{field}': {reason}")]
    MemberField {
        /// The member's file name.
        member: String,
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The zip has no plain policy weights member (`SYM_TF_policy.weights`): the ONNX policy is
    /// imported when a model is packed, never at load; `command` adds the member.
    #[error(
        "lacks the plain policy weights member '{member}' (the ONNX policy is imported when a \
         model is packed, not at load): add it with `{command}`"
    )]
    MissingWeights {
        /// The member's file name.
        member: String,
        /// The `python -m oracle_training pack-weights` command line.
        command: String,
    },
    /// The policy weights member cannot be decoded (the error names the header field).
    #[error("member '{member}': {source}")]
    BadWeights {
        /// The member's file name.
        member: String,
        /// The field at fault.
        #[source]
        source: crate::weights::WeightsError,
    },
    /// A seed-format zip (the seed's SB3 and hmmlearn members, metadata without the runtime
    /// fields): it has no runtime members; `command` packs it.
    #[error(
        "a seed-format model zip ({}, no runtime members or runtime metadata): pack it into a \
         runtime zip, in its place, with `{command}` (training/README.md)",
        members.join(", ")
    )]
    SeedFormat {
        /// The seed members found (`SYM_TF_ppo.zip`, `SYM_TF_hmm.pkl`).
        members: Vec<String>,
        /// The `python -m oracle_training pack` command line.
        command: String,
    },
    /// The metadata declares features (or an observation layout) this loader does not
    /// implement.
    #[error(
        "the metadata declares features this loader does not implement: {} \
         (it implements {implemented})",
        features.join(", ")
    )]
    UnsupportedFeatures {
        /// Each feature not implemented, with where it was declared and its period.
        features: Vec<String>,
        /// What the loader implements.
        implemented: String,
    },
    /// The core refused the assembled parameters (the error names the parameter).
    #[error("model refused by the core: {0}")]
    Model(#[source] oracle_core::ModelError),
}

impl LoadErrorKind {
    fn source_error(&self) -> Option<&(dyn std::error::Error + 'static)> {
        use std::error::Error as _;
        self.source()
    }
}
