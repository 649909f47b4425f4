//! Credentials that never print: [`Secret`]'s `Debug` and `Display` write `<redacted>`, and no
//! error or event of this crate formats a secret's value.

use core::fmt;

/// A secret string (client id/secret, access/refresh token). Read it only with [`Secret::expose`],
/// at the one place it goes on the wire.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// Everything needed to authorize the application and one trading account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// Open API application client id (treated as secret too).
    pub client_id: Secret,
    /// Open API application client secret.
    pub client_secret: Secret,
    /// OAuth access token of the account's owner.
    pub access_token: Secret,
    /// OAuth refresh token (works once; `None` disables automatic refresh).
    pub refresh_token: Option<Secret>,
}

impl Credentials {
    /// Reads `CTRADER_CLIENT_ID`, `CTRADER_CLIENT_SECRET`, `CTRADER_ACCESS_TOKEN` and, optionally,
    /// `CTRADER_REFRESH_TOKEN` from the environment (each also as `ORACLE_CTRADER_<NAME>`, the
    /// deploy names). The error names the missing variable only.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|k| std::env::var(k).ok(), "environment variable")
    }

    /// Reads the same keys from an env file (`KEY=VALUE` lines, `#` comments, optional `export `
    /// and quotes; e.g. the file `oracle sim --credentials-out` writes). The file must be private
    /// (mode 0600 or stricter): one readable or writable by group or others is refused. Errors
    /// name the path and the key or line number, never a value.
    pub fn from_file(path: &std::path::Path) -> Result<Self, String> {
        let text = read_private(path)?;
        let mut map = std::collections::HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((k, v)) = line.split_once('=') else {
                return Err(format!("{}:{}: expected KEY=VALUE", path.display(), i + 1));
            };
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            map.insert(k.trim().to_string(), v.to_string());
        }
        let what = format!("{}: key", path.display());
        Self::from_lookup(|k| map.get(k).cloned(), &what)
    }

    /// The file when one is given, else the environment.
    pub fn from_env_or_file(path: Option<&std::path::Path>) -> Result<Self, String> {
        match path {
            Some(p) => Self::from_file(p),
            None => Self::from_env(),
        }
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>, what: &str) -> Result<Self, String> {
        let find = |name: &str| {
            get(&format!("CTRADER_{name}"))
                .or_else(|| get(&format!("ORACLE_CTRADER_{name}")))
                .filter(|v| !v.is_empty())
                .map(Secret::new)
        };
        let need =
            |name: &str| find(name).ok_or_else(|| format!("{what} CTRADER_{name} is not set"));
        Ok(Self {
            client_id: need("CLIENT_ID")?,
            client_secret: need("CLIENT_SECRET")?,
            access_token: need("ACCESS_TOKEN")?,
            refresh_token: find("REFRESH_TOKEN"),
        })
    }
}

/// Reads a file that must not be accessible to group or others (Unix permissions).
fn read_private(path: &std::path::Path) -> Result<String, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("credentials file {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "credentials file {} is accessible to group/others (mode {mode:04o}); refusing it: run `chmod 600 {}`",
                path.display(),
                path.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    std::fs::read_to_string(path).map_err(|e| format!("credentials file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        p
    }

    #[test]
    fn file_credentials_private_only_and_errors_never_show_values() {
        let dir = std::env::temp_dir().join(format!("oracle-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = "# sim\nexport ORACLE_CTRADER_CLIENT_ID=\"id-SECRET-1\"\nCTRADER_CLIENT_SECRET=sec-SECRET-2\nCTRADER_ACCESS_TOKEN='acc-SECRET-3'\nCTRADER_ACCOUNT_ID=1001\n";
        let ok = write(&dir, "ok.env", text, 0o600);
        let c = Credentials::from_file(&ok).unwrap();
        assert_eq!(c.client_id.expose(), "id-SECRET-1");
        assert_eq!(c.client_secret.expose(), "sec-SECRET-2");
        assert_eq!(c.access_token.expose(), "acc-SECRET-3");
        assert!(c.refresh_token.is_none());
        #[cfg(unix)]
        {
            let open = write(&dir, "open.env", text, 0o644);
            let e = Credentials::from_file(&open).unwrap_err();
            assert!(
                e.contains("open.env") && e.contains("0644") && e.contains("chmod 600"),
                "{e}"
            );
            assert!(!e.contains("SECRET"), "{e}");
        }
        let bad = write(
            &dir,
            "bad.env",
            "CTRADER_CLIENT_ID=x-SECRET\ngarbage-SECRET-line\n",
            0o600,
        );
        let e = Credentials::from_file(&bad).unwrap_err();
        assert!(e.contains("bad.env:2") && !e.contains("SECRET"), "{e}");
        let missing = write(&dir, "missing.env", "CTRADER_CLIENT_ID=x-SECRET\n", 0o600);
        let e = Credentials::from_file(&missing).unwrap_err();
        assert!(
            e.contains("CTRADER_CLIENT_SECRET") && !e.contains("x-SECRET"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
