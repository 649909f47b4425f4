//! The token file: the OAuth token pair with its expiry, kept where the executor can rotate it.
//!
//! A refresh token works once, so the pair a refresh returns must be on disk **before** it is
//! used and before the old one is forgotten: [`store`] writes a temporary file beside the target
//! (created `0600`, exclusive), fsyncs it, renames it over the target and fsyncs the folder, so a
//! crash at any instant leaves either the old pair or the new one, whole. [`load`] reads it back;
//! [`newest`] picks, among pairs from several places (token file, secrets file), the one obtained
//! last (each refresh kills the pair before it, so the latest is the only live one).
//!
//! Format (JSON, one object): `version` (1), `access_token`, `refresh_token`, `obtained_at_ms`
//! and `expires_at_ms` (Unix ms; the access token's end).
//!
//! Permissions: the file is `0600`; a token file that group or others may access is refused on
//! [`load`] with the `chmod` that fixes it. [`store`] refuses a folder that group or others may
//! write (they could swap the file) or read (list, enter), naming the mode and the `chmod`. The
//! token file's home is therefore its own folder, `tokens/` in the state folder ([`path_in`]):
//! the state folder itself is `0750` (the units' `StateDirectoryMode`), and [`prepare_folder`]
//! creates `tokens/` as `0700`.
//!
//! For a process that rotates the pair (the executor, issue 17 item 2): at start take
//! [`newest`] of the token file's pair and the secrets file's (stamped `obtained_at_ms` 0, so a
//! pair `oracle auth` or a refresh wrote wins); before a refresh, [`prepare_folder`]; after the
//! answer, [`store`] **then** use the new pair — a store that fails after a refresh is fatal and
//! loud, since the old pair is already dead.
//!
//! No error or `Debug` output carries a token: only paths, field names and modes.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::creds::Secret;

/// The token file's name.
pub const TOKEN_FILE_NAME: &str = "ctrader-token.json";
/// The token file's private folder in the state folder.
pub const TOKEN_DIR_NAME: &str = "tokens";

/// An access token and the refresh token that replaces it, with their times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenPair {
    /// The access token (Open API `AccountAuthReq`, `GetAccountListByAccessTokenReq`).
    pub access_token: Secret,
    /// The refresh token (works once).
    pub refresh_token: Secret,
    /// When the pair was obtained (Unix ms).
    pub obtained_at_ms: i64,
    /// When the access token expires (Unix ms).
    pub expires_at_ms: i64,
}

impl TokenPair {
    /// Whether the access token is still valid at `now_ms`.
    pub fn is_valid_at(&self, now_ms: i64) -> bool {
        now_ms < self.expires_at_ms
    }

    /// Whole seconds the access token has left at `now_ms` (negative once expired).
    pub fn seconds_left(&self, now_ms: i64) -> i64 {
        (self.expires_at_ms - now_ms).div_euclid(1000)
    }

    /// Whether it is time to refresh: the access token expires within `margin_ms` of `now_ms`.
    pub fn needs_refresh(&self, now_ms: i64, margin_ms: i64) -> bool {
        self.expires_at_ms.saturating_sub(margin_ms) <= now_ms
    }

    fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(&serde_json::json!({
            "version": 1,
            "access_token": self.access_token.expose(),
            "refresh_token": self.refresh_token.expose(),
            "obtained_at_ms": self.obtained_at_ms,
            "expires_at_ms": self.expires_at_ms,
        }))
        .unwrap_or_default();
        s.push('\n');
        s
    }

    fn from_json(text: &str, shown: &str) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            format!(
                "token file {shown}: not JSON (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        let obj = v
            .as_object()
            .ok_or_else(|| format!("token file {shown}: not a JSON object"))?;
        match obj.get("version").and_then(serde_json::Value::as_i64) {
            Some(1) => {}
            _ => return Err(format!("token file {shown}: version is not 1")),
        }
        let text = |k: &str| {
            obj.get(k)
                .and_then(serde_json::Value::as_str)
                .filter(|s| !s.is_empty())
                .map(Secret::new)
                .ok_or_else(|| format!("token file {shown}: {k} is missing or not a string"))
        };
        let ms = |k: &str| {
            obj.get(k)
                .and_then(serde_json::Value::as_i64)
                .ok_or_else(|| format!("token file {shown}: {k} is missing or not an integer"))
        };
        Ok(Self {
            access_token: text("access_token")?,
            refresh_token: text("refresh_token")?,
            obtained_at_ms: ms("obtained_at_ms")?,
            expires_at_ms: ms("expires_at_ms")?,
        })
    }
}

/// The token file of the state folder `state`: `state/tokens/ctrader-token.json`.
pub fn path_in(state: &Path) -> PathBuf {
    state.join(TOKEN_DIR_NAME).join(TOKEN_FILE_NAME)
}

/// The folder `path` is written in (`.` for a bare name).
pub fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Makes the token file's folder ready: created `0700` when missing (its parent must exist),
/// then [`folder_verdict`]. Call it before spending a code or a refresh token, so that the pair
/// they give can be stored.
pub fn prepare_folder(path: &Path) -> Result<(), String> {
    let dir = folder_of(path);
    if !dir.exists() {
        let mut b = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(&dir)
            .map_err(|e| format!("token folder {}: cannot create it: {e}", dir.display()))?;
    }
    folder_verdict(&dir)
}

/// The pair in `path`: `Ok(None)` when there is no such file; an error (naming the path and the
/// fix) when it is open to group or others, or not a token file.
pub fn load(path: &Path) -> Result<Option<TokenPair>, String> {
    let shown = path.display().to_string();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("token file {shown}: {e}")),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "token file {shown}: mode {mode:04o} lets group or others at the tokens; refusing it: run `chmod 0600 {shown}`"
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = std::fs::read_to_string(path).map_err(|e| format!("token file {shown}: {e}"))?;
    TokenPair::from_json(&text, &shown).map(Some)
}

/// Why `dir` is no place for a token file, if it is not.
pub fn folder_verdict(dir: &Path) -> Result<(), String> {
    let shown = dir.display().to_string();
    let meta = std::fs::metadata(dir).map_err(|e| format!("token folder {shown}: {e}"))?;
    if !meta.is_dir() {
        return Err(format!("token folder {shown}: not a folder"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o022 != 0 {
            return Err(format!(
                "token folder {shown}: mode {mode:04o} lets group or others write there (they could replace the token file); refusing to write the tokens: run `chmod 0700 {shown}` or choose a private folder"
            ));
        }
        if mode & 0o055 != 0 {
            return Err(format!(
                "token folder {shown}: mode {mode:04o} lets group or others read it; refusing to write the tokens: run `chmod 0700 {shown}` or choose a private folder"
            ));
        }
    }
    Ok(())
}

/// Writes `pair` to `path` durably: temp file (0600, exclusive) in the same folder, fsync,
/// rename over `path`, fsync the folder. Refuses a folder [`folder_verdict`] refuses.
pub fn store(path: &Path, pair: &TokenPair) -> Result<(), String> {
    let shown = path.display().to_string();
    let dir = folder_of(path);
    folder_verdict(&dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| format!("token file {shown}: no file name"))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let _ = std::fs::remove_file(&tmp); // a leftover of a crash of this pid
    let write = || -> std::io::Result<()> {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(pair.to_json().as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        #[cfg(unix)]
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("token file {shown}: cannot write it: {e}")
    })
}

/// The pair obtained last among `pairs` (each refresh kills the pair before it).
pub fn newest<'a>(pairs: impl IntoIterator<Item = &'a TokenPair>) -> Option<&'a TokenPair> {
    pairs.into_iter().max_by_key(|p| p.obtained_at_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state folder (0750, as the units make it) whose token file's folder is not made yet.
    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("oracle-tokenfile-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o750)).unwrap();
        }
        d
    }

    fn pair(n: i64) -> TokenPair {
        TokenPair {
            access_token: Secret::new(format!("at-SECRET-{n}")),
            refresh_token: Secret::new(format!("rt-SECRET-{n}")),
            obtained_at_ms: 1_000 * n,
            expires_at_ms: 1_000 * n + 2_628_000_000,
        }
    }

    #[test]
    fn a_stored_pair_loads_back_whole_with_mode_0600_and_replaces_the_old_one() {
        let state = dir("roundtrip");
        let p = path_in(&state);
        let d = folder_of(&p);
        assert_eq!(load(&p).unwrap(), None);
        assert!(store(&p, &pair(1)).is_err(), "no folder yet");
        prepare_folder(&p).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700);
        }
        store(&p, &pair(1)).unwrap();
        store(&p, &pair(2)).unwrap();
        assert_eq!(load(&p).unwrap(), Some(pair(2)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let left: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from(TOKEN_FILE_NAME)]);
        let _ = std::fs::remove_dir_all(&state);
    }

    #[cfg(unix)]
    #[test]
    fn a_token_file_or_folder_open_to_others_is_refused_with_the_fix_and_no_value() {
        use std::os::unix::fs::PermissionsExt;
        let state = dir("modes");
        let p = path_in(&state);
        let d = folder_of(&p);
        prepare_folder(&p).unwrap();
        store(&p, &pair(1)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = load(&p).unwrap_err();
        assert!(e.contains("0640") && e.contains("chmod 0600"), "{e}");
        assert!(!e.contains("SECRET"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        for (mode, why) in [
            (0o770, "write"),
            (0o702, "write"),
            (0o750, "read"),
            (0o705, "read"),
            (0o710, "read"),
        ] {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = store(&p, &pair(2)).unwrap_err();
            assert!(
                e.contains(why) && e.contains("refusing") && e.contains(&format!("{mode:04o}")),
                "{mode:o}: {e}"
            );
            assert!(prepare_folder(&p).is_err(), "{mode:o}");
        }
        assert_eq!(
            load(&p).unwrap(),
            Some(pair(1)),
            "a refused store leaves the old pair"
        );
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        store(&p, &pair(3)).unwrap();
        assert_eq!(load(&p).unwrap(), Some(pair(3)));
        let _ = std::fs::remove_dir_all(&state);
    }

    #[test]
    fn a_damaged_token_file_is_an_error_naming_the_field_not_the_value() {
        let state = dir("damaged");
        let p = path_in(&state);
        prepare_folder(&p).unwrap();
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&p).unwrap();
        f.write_all(br#"{"version":1,"access_token":"at-SECRET","refresh_token":"rt-SECRET","obtained_at_ms":"x-SECRET","expires_at_ms":5}"#)
            .unwrap();
        drop(f);
        let e = load(&p).unwrap_err();
        assert!(e.contains("obtained_at_ms") && !e.contains("SECRET"), "{e}");
        std::fs::write(&p, "{not json SECRET").unwrap();
        let e = load(&p).unwrap_err();
        assert!(e.contains("not JSON") && !e.contains("SECRET"), "{e}");
        let _ = std::fs::remove_dir_all(&state);
    }

    #[test]
    fn the_pair_obtained_last_wins_and_expiry_is_counted_from_the_given_now() {
        let (a, b) = (pair(1), pair(5));
        assert_eq!(newest([&a, &b]), Some(&b));
        assert_eq!(newest([&b, &a]), Some(&b));
        assert_eq!(newest([]), None);
        assert!(a.is_valid_at(a.expires_at_ms - 1) && !a.is_valid_at(a.expires_at_ms));
        assert_eq!(a.seconds_left(a.expires_at_ms - 10_500), 10);
        assert!(a.needs_refresh(a.expires_at_ms - 60_000, 60_000));
        assert!(!a.needs_refresh(a.expires_at_ms - 60_001, 60_000));
        assert!(!format!("{a:?}").contains("SECRET"));
    }
}
