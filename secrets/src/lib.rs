//! The secrets file: one name, one mode rule and one grammar for the executor (`--secrets`),
//! `oracle doctor` (`--secrets`) and the `oracle` commands that read credentials (`auth`,
//! `history`, `alert-test`).
//!
//! - **Name**: [`DEFAULT_SECRETS`] (`/etc/oracle-trader/secrets.env`), the file the deploy kit
//!   installs and doctor checks by default. The executor reads it when given `--secrets FILE`
//!   (without it: the environment, e.g. systemd's `EnvironmentFile=` of the same file).
//! - **Mode** ([`mode_verdict`]): the owner may read and write; the group may read (`0640`, the
//!   deploy kit's `root:oracle`) but not write; others get nothing. `0600`, `0400`, `0640` and
//!   `0440` are accepted; `0644`, `0660`, `0604`, … are refused with the `chmod` that fixes it.
//! - **Grammar**: `KEY=VALUE` lines, `#` comments and blank lines skipped, an optional
//!   `export `, a value optionally in `"…"` or `'…'` quotes (e.g. the file
//!   `oracle sim --credentials-out` writes).
//! - **Keys** ([`CTRADER_KEYS`]): each broker key is read as `CTRADER_<NAME>` or
//!   `ORACLE_CTRADER_<NAME>` (the deploy kit's spelling), the first that is set and non-empty;
//!   [`IPC_TOKEN_KEY`] holds the IPC token; [`TELEGRAM_BOT_TOKEN_KEY`] and [`TELEGRAM_CHAT_ID_KEY`]
//!   the alerts' Telegram bot (`oracle-alerts`, `docs/alerts.md`).
//!
//! - **The IPC token** ([`load_token`]): [`IPC_TOKEN_KEY`] from the environment, else a token
//!   file of mode 0600, as a [`Secret`] (redacted in `Debug`, compared in constant time).
//!
//! No error, `Debug` output or log line carries a value: only paths, line numbers and key names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The secrets file of a deployment (`deploy/secrets.env.example` installed).
pub const DEFAULT_SECRETS: &str = "/etc/oracle-trader/secrets.env";

/// The IPC token's key.
pub const IPC_TOKEN_KEY: &str = "ORACLE_IPC_TOKEN";

/// The alerts' Telegram bot token (`@BotFather`'s `<digits>:<key>`; `oracle_alerts::config`).
pub const TELEGRAM_BOT_TOKEN_KEY: &str = "ORACLE_TELEGRAM_BOT_TOKEN";
/// The chat the alerts go to (a number such as `-1001234567890`, or `@channel`).
pub const TELEGRAM_CHAT_ID_KEY: &str = "ORACLE_TELEGRAM_CHAT_ID";

/// The broker keys, each read as `CTRADER_<NAME>` or `ORACLE_CTRADER_<NAME>`.
pub const CTRADER_KEYS: [&str; 5] = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "ACCESS_TOKEN",
    "REFRESH_TOKEN",
    "ACCOUNT_ID",
];

/// The broker keys live trading cannot do without (the refresh token is optional).
pub const LIVE_REQUIRED: [&str; 4] = ["CLIENT_ID", "CLIENT_SECRET", "ACCESS_TOKEN", "ACCOUNT_ID"];

/// The mode rule of a secret file (module doc): `Ok` with a note, or why it is refused. Only
/// the permission bits (`0o777`) count.
pub fn mode_verdict(mode: u32) -> Result<String, String> {
    let m = mode & 0o777;
    if m & 0o007 != 0 {
        return Err(format!("mode {m:04o} gives access to others"));
    }
    if m & 0o020 != 0 {
        return Err(format!("mode {m:04o} lets the group write"));
    }
    Ok(format!("mode {m:04o}"))
}

/// The `chmod` that fixes a refused mode.
pub fn mode_fix(path: &Path) -> String {
    let p = path.display();
    format!("chmod 0600 {p} (or chown root:oracle {p} && chmod 0640 {p})")
}

/// A parsed secrets file. Its `Debug` shows the path and the key names, never a value.
#[derive(Clone, Default)]
pub struct SecretsFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Mode note (`mode 0640`).
    pub mode_note: String,
    vars: BTreeMap<String, String>,
}

impl std::fmt::Debug for SecretsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsFile")
            .field("path", &self.path)
            .field("keys", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Parses the grammar of the module doc. Errors name the line, never its text.
pub fn parse(text: &str, shown: &str) -> Result<BTreeMap<String, String>, String> {
    let mut vars = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!("{shown}:{}: expected KEY=VALUE", i + 1));
        };
        let k = k.trim();
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!(
                "{shown}:{}: the key before '=' must be letters, digits and _",
                i + 1
            ));
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        vars.insert(k.to_string(), v.to_string());
    }
    Ok(vars)
}

impl SecretsFile {
    /// Reads `path`: it must exist, follow [`mode_verdict`] and parse. Errors name the path and
    /// the fix.
    pub fn read(path: &Path) -> Result<Self, String> {
        let shown = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| format!("secrets file {shown}: {e}"))?;
        #[cfg(unix)]
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            meta.permissions().mode()
        };
        #[cfg(not(unix))]
        let mode = {
            let _ = meta;
            0o600
        };
        let mode_note = mode_verdict(mode).map_err(|why| {
            format!(
                "secrets file {shown}: {why}; refusing it: run `{}`",
                mode_fix(path)
            )
        })?;
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("secrets file {shown}: {e}"))?;
        let vars = parse(&text, &shown)?;
        Ok(Self {
            path: path.to_path_buf(),
            mode_note,
            vars,
        })
    }

    /// A file's contents without a file (tests; the environment's view).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            path: PathBuf::new(),
            mode_note: String::new(),
            vars: vars.into_iter().collect(),
        }
    }

    /// The value of `key` exactly as spelled, when set and non-empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// The broker key `name` (`CLIENT_ID`, …): `CTRADER_<name>`, else `ORACLE_CTRADER_<name>`.
    pub fn ctrader(&self, name: &str) -> Option<&str> {
        self.get(&format!("CTRADER_{name}"))
            .or_else(|| self.get(&format!("ORACLE_CTRADER_{name}")))
    }

    /// The [`LIVE_REQUIRED`] keys set under neither spelling (as `ORACLE_CTRADER_<NAME>`).
    pub fn live_missing(&self) -> Vec<String> {
        LIVE_REQUIRED
            .iter()
            .filter(|k| self.ctrader(k).is_none())
            .map(|k| format!("ORACLE_CTRADER_{k}"))
            .collect()
    }

    /// Keys that look like broker keys but are none of [`CTRADER_KEYS`] (a typo the executor
    /// would silently ignore).
    pub fn unknown_ctrader_keys(&self) -> Vec<String> {
        self.vars
            .keys()
            .filter(|k| {
                let name = k
                    .strip_prefix("ORACLE_CTRADER_")
                    .or_else(|| k.strip_prefix("CTRADER_"));
                name.is_some_and(|n| !CTRADER_KEYS.contains(&n))
            })
            .cloned()
            .collect()
    }
}

/// The trading account id: `--account-id`, else the secrets file's (`CTRADER_ACCOUNT_ID` or
/// `ORACLE_CTRADER_ACCOUNT_ID`), else the environment's. `Ok(None)` when none is set.
pub fn account_id(
    flag: Option<i64>,
    file: Option<&SecretsFile>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<i64>, String> {
    if flag.is_some() {
        return Ok(flag);
    }
    let (raw, from) = match file {
        Some(f) => (
            f.ctrader("ACCOUNT_ID").map(str::to_string),
            format!("secrets file {}", f.path.display()),
        ),
        None => (
            env("CTRADER_ACCOUNT_ID")
                .filter(|v| !v.trim().is_empty())
                .or_else(|| env("ORACLE_CTRADER_ACCOUNT_ID"))
                .filter(|v| !v.trim().is_empty()),
            "the environment".to_string(),
        ),
    };
    match raw {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .map(Some)
            .ok_or_else(|| {
                format!("{from}: ORACLE_CTRADER_ACCOUNT_ID is not a positive integer (ctidTraderAccountId)")
            }),
    }
}

// ---------------------------------------------------------------------------------------------
// The IPC token ([`IPC_TOKEN_KEY`] or a 0600 file), as the executor's WebSocket server checks it.

/// The shared IPC token. `Debug`/`Display` never show it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a token.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// Constant-time comparison.
    pub fn matches(&self, other: &str) -> bool {
        let a = self.0.as_bytes();
        let b = other.as_bytes();
        let mut diff = a.len() ^ b.len();
        for i in 0..a.len().max(b.len()) {
            diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff));
        }
        diff == 0
    }
    /// The token (to send it, never to log it).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why the token could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Neither the environment variable nor a file.
    #[error("no IPC token: set ORACLE_IPC_TOKEN or pass --token-file (a file with mode 0600)")]
    Missing,
    /// The file is readable or writable by group/others.
    #[error("token file {path} has mode {mode:o}: readable by others; run chmod 600 {path}")]
    WorldReadable {
        /// File.
        path: String,
        /// Mode bits.
        mode: u32,
    },
    /// Read error.
    #[error("token file {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Empty or contains `|`/control characters.
    #[error("the IPC token is empty or contains '|' or control characters")]
    Invalid,
}

/// Loads the token: `ORACLE_IPC_TOKEN` (given as `env`) wins, else the file, which must be 0600.
pub fn load_token(env: Option<String>, file: Option<&Path>) -> Result<Secret, TokenError> {
    let raw = if let Some(t) = env.filter(|t| !t.is_empty()) {
        t
    } else if let Some(p) = file {
        let path = p.display().to_string();
        let meta = std::fs::metadata(p).map_err(|source| TokenError::Io {
            path: path.clone(),
            source,
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(TokenError::WorldReadable { path, mode });
            }
        }
        let _ = meta;
        std::fs::read_to_string(p)
            .map_err(|source| TokenError::Io { path, source })?
            .trim()
            .to_string()
    } else {
        return Err(TokenError::Missing);
    };
    if raw.is_empty()
        || raw.len() > oracle_ipc::MAX_TOKEN
        || raw.contains('|')
        || raw.chars().any(char::is_control)
    {
        return Err(TokenError::Invalid);
    }
    Ok(Secret(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_mode_rule_owner_rw_group_read_only() {
        for ok in [0o600, 0o400, 0o640, 0o440, 0o100640] {
            assert!(mode_verdict(ok).is_ok(), "{ok:o}");
        }
        for bad in [0o644, 0o660, 0o604, 0o666, 0o620, 0o601] {
            assert!(mode_verdict(bad).is_err(), "{bad:o}");
        }
    }

    #[test]
    fn grammar_and_both_key_spellings_never_showing_values() {
        let v = parse(
            "# c\n\nexport CTRADER_CLIENT_ID=\"id-SECRET\"\nORACLE_CTRADER_ACCESS_TOKEN='t-SECRET'\nORACLE_CTRADER_ACCOUNT_ID=42\n",
            "f",
        )
        .unwrap();
        let f = SecretsFile::from_vars(v);
        assert_eq!(f.ctrader("CLIENT_ID"), Some("id-SECRET"));
        assert_eq!(f.ctrader("ACCESS_TOKEN"), Some("t-SECRET"));
        assert_eq!(f.live_missing(), vec!["ORACLE_CTRADER_CLIENT_SECRET"]);
        let dbg = format!("{f:?}");
        assert!(
            dbg.contains("CTRADER_CLIENT_ID") && !dbg.contains("SECRET"),
            "{dbg}"
        );
        let e = parse("A=1\nno-equals-SECRET\n", "f").unwrap_err();
        assert!(e.contains("f:2") && !e.contains("SECRET"), "{e}");
        assert_eq!(account_id(None, Some(&f), &|_| None), Ok(Some(42)));
        assert_eq!(account_id(Some(7), Some(&f), &|_| None), Ok(Some(7)));
        let env = |k: &str| (k == "ORACLE_CTRADER_ACCOUNT_ID").then(|| "9".to_string());
        assert_eq!(account_id(None, None, &env), Ok(Some(9)));
        let bad = SecretsFile::from_vars([("CTRADER_ACCOUNT_ID".into(), "x1".into())]);
        assert!(account_id(None, Some(&bad), &|_| None).is_err());
        let typo = SecretsFile::from_vars([("ORACLE_CTRADER_CLIENTID".into(), "x".into())]);
        assert_eq!(typo.unknown_ctrader_keys(), vec!["ORACLE_CTRADER_CLIENTID"]);
    }

    #[test]
    fn secret_is_redacted_and_compared() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(s.matches("hunter2"));
        assert!(!s.matches("hunter3") && !s.matches("hunter") && !s.matches(""));
    }

    #[test]
    fn token_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let p = std::env::temp_dir().join(format!("oracle-token-{}", std::process::id()));
        std::fs::write(&p, "tok-123\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_token(None, Some(&p)),
            Err(TokenError::WorldReadable { .. })
        ));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load_token(None, Some(&p)).unwrap().matches("tok-123"));
        assert!(
            load_token(Some("env-tok".into()), Some(&p))
                .unwrap()
                .matches("env-tok")
        );
        assert!(matches!(load_token(None, None), Err(TokenError::Missing)));
        std::fs::remove_file(&p).unwrap();
    }
}
