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
    /// `CTRADER_REFRESH_TOKEN` from the environment. The error names the missing variable only.
    pub fn from_env() -> Result<Self, String> {
        let get = |k: &str| {
            std::env::var(k)
                .map(Secret::new)
                .map_err(|_| format!("environment variable {k} is not set"))
        };
        Ok(Self {
            client_id: get("CTRADER_CLIENT_ID")?,
            client_secret: get("CTRADER_CLIENT_SECRET")?,
            access_token: get("CTRADER_ACCESS_TOKEN")?,
            refresh_token: std::env::var("CTRADER_REFRESH_TOKEN").ok().map(Secret::new),
        })
    }
}
