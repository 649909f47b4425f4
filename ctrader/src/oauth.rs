//! The OAuth 2.0 authorization-code flow of a cTrader Open API application (`oracle auth`).
//!
//! 1. [`authorization_url`]: the page where the account's owner logs in with their cTrader ID
//!    and allows the application (`client_id`, `redirect_uri`, `scope`); the browser is then sent
//!    to `redirect_uri?code=…`. The code lives one minute.
//! 2. [`TokenEndpoint::exchange_code`]: the code for a token pair at the token endpoint, over
//!    HTTPS (`GET …/apps/token?grant_type=authorization_code&code&redirect_uri&client_id&
//!    client_secret`, as Spotware's own SDK does it). The access token lives `expiresIn`
//!    seconds (2,628,000, about 30 days); the refresh token has no expiry but works **once**.
//! 3. [`TokenEndpoint::refresh`]: `grant_type=refresh_token` gives a new pair and kills the old
//!    one; store the new pair ([`crate::tokenfile`]) before using it.
//!
//! The answer is JSON: `accessToken`, `refreshToken`, `expiresIn`, `tokenType` (snake-case
//! spellings are accepted too), or `errorCode` + `description`. Any `errorCode`, an HTTP status
//! other than 2xx, or a missing field is an error.
//!
//! **Secrets:** the client secret, the code and the tokens travel in the query string (Spotware's
//! API), so the endpoint must be `https://` (an `http://` URL is refused), no error of this module
//! carries a value (transport errors are scrubbed of every secret of the request), and the
//! response body is never shown. The HTTP client (`ureq`) writes the query to the `log` crate at
//! TRACE level only: a program that forwards `log` records must keep the `ureq` target below
//! TRACE (`oracle auth` installs no logger at all).

use std::time::Duration;

use crate::creds::Secret;
use crate::tokenfile::TokenPair;

/// The page where the owner allows the application (cTrader ID).
pub const DEFAULT_AUTH_URL: &str = "https://id.ctrader.com/my/settings/openapi/grantingaccess/";
/// Spotware's token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://openapi.ctrader.com/apps/token";
/// How long an access token lives when the answer does not say (`expiresIn` of Spotware's docs).
pub const ACCESS_TOKEN_LIFETIME_S: i64 = 2_628_000;

/// What the application may do with the accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `trading`: view and trade.
    Trading,
    /// `accounts`: view only.
    Accounts,
}

impl Scope {
    /// The query value.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Trading => "trading",
            Scope::Accounts => "accounts",
        }
    }
    /// `trading` or `accounts`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "trading" => Ok(Scope::Trading),
            "accounts" => Ok(Scope::Accounts),
            other => Err(format!(
                "scope `{other}`: expected trading (view and trade) or accounts (view only)"
            )),
        }
    }
}

/// Why a token request failed. No variant carries a secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OAuthError {
    /// The endpoint URL is not usable.
    #[error("token endpoint {url}: {why}")]
    BadUrl {
        /// The URL as given (it carries no secret: the query is added per request).
        url: String,
        /// What is wrong.
        why: String,
    },
    /// The CA file could not be used.
    #[error("CA certificate: {0}")]
    BadCa(String),
    /// The request did not get an answer (connect, TLS, timeout).
    #[error("token endpoint {host}: {why}")]
    Transport {
        /// The endpoint's host.
        host: String,
        /// What happened (scrubbed of every secret).
        why: String,
    },
    /// The server refused (`errorCode`).
    #[error("token endpoint {host} refused the {grant}: {code}{}", if .description.is_empty() { String::new() } else { format!(" ({})", .description) })]
    Refused {
        /// The endpoint's host.
        host: String,
        /// `authorization code` or `refresh token`.
        grant: &'static str,
        /// The server's `errorCode` (or `HTTP <status>` when it gave none).
        code: String,
        /// The server's `description` (scrubbed).
        description: String,
    },
    /// The answer is not a token pair.
    #[error("token endpoint {host}: the answer is not a token pair: {why}")]
    BadAnswer {
        /// The endpoint's host.
        host: String,
        /// What is missing or wrong (never a value).
        why: String,
    },
}

/// The authorization page's URL for `client_id`, `redirect_uri` and `scope` (values
/// percent-encoded). `product=web` as Spotware's documentation shows it.
pub fn authorization_url(
    auth_url: &str,
    client_id: &Secret,
    redirect_uri: &str,
    scope: Scope,
) -> String {
    let sep = if auth_url.contains('?') { '&' } else { '?' };
    format!(
        "{auth_url}{sep}client_id={}&redirect_uri={}&scope={}&product=web",
        encode(client_id.expose()),
        encode(redirect_uri),
        scope.as_str()
    )
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The code in what the browser was sent to: a bare code, or the redirect URL (or its query)
/// with `code=…`. An `error=…` in the URL (the owner refused) is an error.
pub fn code_from(input: &str) -> Result<Secret, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("no authorization code given".into());
    }
    if !s.contains('=') {
        return Ok(Secret::new(s));
    }
    let query = s.split_once('?').map_or(s, |(_, q)| q);
    let query = query.split('#').next().unwrap_or(query);
    let mut code = None;
    for kv in query.split('&') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "code" => code = Some(decode(v)),
            "error" => {
                return Err(format!(
                    "the authorization page answered error={} (access not allowed?)",
                    decode(v)
                ));
            }
            _ => {}
        }
    }
    code.filter(|c| !c.is_empty())
        .map(Secret::new)
        .ok_or_else(|| "the redirect URL has no code=… parameter".into())
}

/// Percent-decodes a query value (`+` is a space).
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A token pair from the endpoint's answer (status and body), obtained at `now_ms`. `grant`
/// names the request in errors; `secrets` are scrubbed from the server's description.
pub fn parse_token_answer(
    host: &str,
    grant: &'static str,
    status: u16,
    body: &str,
    now_ms: i64,
    secrets: &[&Secret],
) -> Result<TokenPair, OAuthError> {
    let bad = |why: &str| OAuthError::BadAnswer {
        host: host.to_string(),
        why: why.to_string(),
    };
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let field = |names: &[&str]| -> Option<serde_json::Value> {
        let obj = json.as_ref()?.as_object()?;
        names
            .iter()
            .find_map(|n| obj.get(*n).filter(|v| !v.is_null()).cloned())
    };
    let text = |names: &[&str]| field(names).and_then(|v| v.as_str().map(str::to_string));
    let error_code = field(&["errorCode", "error_code", "error"]).map(|v| match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    });
    if error_code.is_some() || !(200..300).contains(&status) {
        let code = error_code.unwrap_or_else(|| format!("HTTP {status}"));
        let description = text(&["description", "error_description"]).unwrap_or_default();
        return Err(OAuthError::Refused {
            host: host.to_string(),
            grant,
            code: scrub(&code, secrets),
            description: scrub(&description, secrets),
        });
    }
    if json.is_none() {
        return Err(bad("not JSON"));
    }
    let access = text(&["accessToken", "access_token"])
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("no accessToken"))?;
    let refresh = text(&["refreshToken", "refresh_token"])
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("no refreshToken"))?;
    let expires_in = match field(&["expiresIn", "expires_in"]) {
        None => ACCESS_TOKEN_LIFETIME_S,
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .filter(|s| *s > 0)
            .ok_or_else(|| bad("expiresIn is not a positive number of seconds"))?,
    };
    Ok(TokenPair {
        access_token: Secret::new(access),
        refresh_token: Secret::new(refresh),
        obtained_at_ms: now_ms,
        expires_at_ms: now_ms.saturating_add(expires_in.saturating_mul(1000)),
    })
}

/// `text` with every secret's value (raw and percent-encoded) replaced by `<redacted>`.
pub fn scrub(text: &str, secrets: &[&Secret]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if s.expose().len() < 4 {
            continue;
        }
        out = out.replace(s.expose(), "<redacted>");
        out = out.replace(&encode(s.expose()), "<redacted>");
    }
    out
}

/// The token endpoint over HTTPS.
pub struct TokenEndpoint {
    url: String,
    host: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for TokenEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEndpoint")
            .field("url", &self.url)
            .finish()
    }
}

impl TokenEndpoint {
    /// The endpoint at `url` (`https://` only, no query), trusting the public roots or, when
    /// given, exactly the certificates of `ca_pem` (the simulator's CA). 30 s per request.
    pub fn new(url: &str, ca_pem: Option<&[u8]>) -> Result<Self, OAuthError> {
        let bad = |why: &str| OAuthError::BadUrl {
            url: url.to_string(),
            why: why.to_string(),
        };
        let rest = url.strip_prefix("https://").ok_or_else(|| {
            bad("must start with https:// (the client secret and the tokens travel in the query)")
        })?;
        if url.contains('?') || url.contains('#') {
            return Err(bad("must not carry a query or fragment"));
        }
        let host = rest.split('/').next().unwrap_or_default().to_string();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let roots = match ca_pem {
            None => ureq::tls::RootCerts::WebPki,
            Some(pem) => {
                let mut certs = Vec::new();
                for item in ureq::tls::parse_pem(pem) {
                    match item.map_err(|e| OAuthError::BadCa(e.to_string()))? {
                        ureq::tls::PemItem::Certificate(c) => certs.push(c),
                        _ => continue,
                    }
                }
                if certs.is_empty() {
                    return Err(OAuthError::BadCa("no certificate found".into()));
                }
                ureq::tls::RootCerts::new_with_certs(&certs)
            }
        };
        let tls = ureq::tls::TlsConfig::builder().root_certs(roots).build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .https_only(true)
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        Ok(Self {
            url: url.to_string(),
            host,
            agent,
        })
    }

    /// The endpoint's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Exchanges an authorization code (it lives one minute) for a token pair obtained at
    /// `now_ms`.
    pub fn exchange_code(
        &self,
        client_id: &Secret,
        client_secret: &Secret,
        redirect_uri: &str,
        code: &Secret,
        now_ms: i64,
    ) -> Result<TokenPair, OAuthError> {
        let query = [
            ("grant_type", "authorization_code"),
            ("code", code.expose()),
            ("redirect_uri", redirect_uri),
            ("client_id", client_id.expose()),
            ("client_secret", client_secret.expose()),
        ];
        self.get(
            "authorization code",
            &query,
            now_ms,
            &[client_id, client_secret, code],
        )
    }

    /// Spends `refresh_token` (it works once) for a new pair obtained at `now_ms`.
    pub fn refresh(
        &self,
        client_id: &Secret,
        client_secret: &Secret,
        refresh_token: &Secret,
        now_ms: i64,
    ) -> Result<TokenPair, OAuthError> {
        let query = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
            ("client_id", client_id.expose()),
            ("client_secret", client_secret.expose()),
        ];
        self.get(
            "refresh token",
            &query,
            now_ms,
            &[client_id, client_secret, refresh_token],
        )
    }

    fn get(
        &self,
        grant: &'static str,
        query: &[(&str, &str)],
        now_ms: i64,
        secrets: &[&Secret],
    ) -> Result<TokenPair, OAuthError> {
        let mut req = self
            .agent
            .get(&self.url)
            .header("Accept", "application/json");
        for (k, v) in query {
            req = req.query(*k, *v);
        }
        let transport = |why: String| OAuthError::Transport {
            host: self.host.clone(),
            why: scrub(&why, secrets),
        };
        let mut resp = req.call().map_err(|e| transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .map_err(|e| transport(format!("reading the answer: {e}")))?;
        parse_token_answer(&self.host, grant, status, &body, now_ms, secrets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorization_url_carries_client_id_redirect_and_scope_encoded() {
        let u = authorization_url(
            DEFAULT_AUTH_URL,
            &Secret::new("12_ab"),
            "https://example.com/cb?x=1",
            Scope::Trading,
        );
        assert_eq!(
            u,
            "https://id.ctrader.com/my/settings/openapi/grantingaccess/?client_id=12_ab&redirect_uri=https%3A%2F%2Fexample.com%2Fcb%3Fx%3D1&scope=trading&product=web"
        );
    }

    #[test]
    fn a_code_is_taken_bare_or_from_the_redirect_url_and_a_refusal_is_an_error() {
        assert_eq!(code_from(" abc ").unwrap().expose(), "abc");
        assert_eq!(
            code_from("https://example.com/cb?state=1&code=A%2BB#frag")
                .unwrap()
                .expose(),
            "A+B"
        );
        assert!(
            code_from("https://example.com/cb?error=access_denied")
                .unwrap_err()
                .contains("access_denied")
        );
        assert!(code_from("https://example.com/cb?x=1").is_err());
        assert!(code_from("").is_err());
    }

    #[test]
    fn the_answer_gives_a_pair_with_its_expiry_or_an_error_without_values() {
        let p = parse_token_answer(
            "h",
            "refresh token",
            200,
            r#"{"accessToken":"AT","tokenType":"bearer","expiresIn":100,"refreshToken":"RT","errorCode":null,"description":null}"#,
            1_000,
            &[],
        )
        .unwrap();
        assert_eq!(p.access_token.expose(), "AT");
        assert_eq!(p.refresh_token.expose(), "RT");
        assert_eq!((p.obtained_at_ms, p.expires_at_ms), (1_000, 101_000));
        let snake = parse_token_answer(
            "h",
            "refresh token",
            200,
            r#"{"access_token":"AT","refresh_token":"RT","expires_in":"5"}"#,
            0,
            &[],
        )
        .unwrap();
        assert_eq!(snake.expires_at_ms, 5_000);
        let secret = Secret::new("rt-SECRET");
        let e = parse_token_answer(
            "h",
            "refresh token",
            400,
            r#"{"errorCode":"ACCESS_DENIED","description":"token rt-SECRET used"}"#,
            0,
            &[&secret],
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("ACCESS_DENIED") && text.contains("refresh token"),
            "{text}"
        );
        assert!(!text.contains("SECRET"), "{text}");
        let e = parse_token_answer("h", "refresh token", 502, "<html>", 0, &[]).unwrap_err();
        assert!(e.to_string().contains("HTTP 502"), "{e}");
        let e = parse_token_answer(
            "h",
            "refresh token",
            200,
            r#"{"accessToken":"AT-SECRET"}"#,
            0,
            &[],
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("no refreshToken") && !e.to_string().contains("SECRET"),
            "{e}"
        );
    }

    #[test]
    fn an_http_token_endpoint_is_refused() {
        let e = TokenEndpoint::new("http://example.com/apps/token", None).unwrap_err();
        assert!(e.to_string().contains("https://"), "{e}");
        assert!(TokenEndpoint::new(DEFAULT_TOKEN_URL, None).is_ok());
    }
}
