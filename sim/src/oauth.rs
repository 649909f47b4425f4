//! The simulator's OAuth endpoints, served over its one TLS listener.
//!
//! A connection whose first byte is an ASCII letter is HTTP (an Open API frame starts with its
//! 4-byte big-endian length, whose first byte is 0 for every frame under 16 MiB); it gets one
//! HTTP/1.1 answer and is closed. So `https://127.0.0.1:<port>/apps/token` is the token
//! endpoint of a sim listening on `<port>`, trusted through the same CA as its Open API.
//!
//! - `GET /apps/auth?client_id&redirect_uri&scope` — the authorization page. The sim's one cTrader
//!   ID owns every configured account and allows at once: `302 Found` to
//!   `redirect_uri?code=<code>`. The code lives 60 s and works once. `scope` is `trading`
//!   (trade) or `accounts` (view only).
//! - `GET` or `POST` (form body) `/apps/token` with `grant_type=authorization_code` (`code`,
//!   `redirect_uri` as given to the authorization page, `client_id`, `client_secret`) or
//!   `grant_type=refresh_token` (`refresh_token`, `client_id`, `client_secret`): `200` with
//!   `{"accessToken","tokenType":"bearer","expiresIn","refreshToken","errorCode":null,
//!   "description":null}`, else `400` with `errorCode` and `description` (our codes, Spotware's
//!   documentation names none: `ACCESS_DENIED` for a wrong client id/secret, `INVALID_GRANT`
//!   for an unknown, expired, used or mismatched code or refresh token, `INVALID_REQUEST` for a
//!   missing parameter or an unknown grant type).
//!
//! Tokens are the broker core's own ([`Broker::oauth_exchange_code`], [`Broker::oauth_refresh`]):
//! the access token a code or a refresh gives is the one `AccountAuthReq` accepts, it expires
//! after `token_ttl_s`, and a refresh here revokes the old pair exactly as `RefreshTokenReq`
//! does (the sessions on it get `ProtoOAAccountsTokenInvalidatedEvent`).
//!
//! No log line carries a code, a token or a secret.

use std::collections::BTreeMap;

use crate::broker::Broker;
use crate::msg::Scope;

/// Largest request head + body accepted.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// Whether a connection's first byte makes it an HTTP request (module doc).
pub fn is_http(first: &[u8]) -> bool {
    first.first().is_some_and(u8::is_ascii_uppercase)
}

/// A parsed HTTP request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// Query and form parameters (form body values win).
    pub params: BTreeMap<String, String>,
}

/// An answer: status, its reason, extra headers and a body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// `Location` (redirects).
    pub location: Option<String>,
    /// `Content-Type` of the body.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
}

impl HttpResponse {
    fn json(status: u16, v: &serde_json::Value) -> Self {
        Self {
            status,
            location: None,
            content_type: "application/json",
            body: v.to_string(),
        }
    }

    fn error(status: u16, code: &str, description: &str) -> Self {
        Self::json(
            status,
            &serde_json::json!({"errorCode": code, "description": description}),
        )
    }

    /// The bytes on the wire (`Connection: close`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            302 => "Found",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            413 => "Payload Too Large",
            _ => "Error",
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        if let Some(l) = &self.location {
            head.push_str(&format!("Location: {l}\r\n"));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(self.body.as_bytes());
        out
    }
}

/// Why a request could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRequest(pub HttpResponse);

/// Parses `buf`: `Ok(None)` while the head (or the announced body) is incomplete.
pub fn parse_request(buf: &[u8]) -> Result<Option<HttpRequest>, BadRequest> {
    let bad = |why: &str| BadRequest(HttpResponse::error(400, "INVALID_REQUEST", why));
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_REQUEST_BYTES {
            return Err(BadRequest(HttpResponse::error(
                413,
                "INVALID_REQUEST",
                "request head too large",
            )));
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| bad("request head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(bad("HTTP/1.x only"));
    }
    let mut content_length = 0usize;
    for h in lines {
        let Some((k, v)) = h.split_once(':') else {
            return Err(bad("malformed header"));
        };
        if k.trim().eq_ignore_ascii_case("content-length") {
            content_length = v
                .trim()
                .parse()
                .map_err(|_| bad("Content-Length is not a number"))?;
        }
    }
    if end + 4 + content_length > MAX_REQUEST_BYTES {
        return Err(BadRequest(HttpResponse::error(
            413,
            "INVALID_REQUEST",
            "request too large",
        )));
    }
    if buf.len() < end + 4 + content_length {
        return Ok(None);
    }
    let body = &buf[end + 4..end + 4 + content_length];
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut params = BTreeMap::new();
    add_params(&mut params, query);
    if !body.is_empty() {
        add_params(
            &mut params,
            std::str::from_utf8(body).map_err(|_| bad("form body is not UTF-8"))?,
        );
    }
    Ok(Some(HttpRequest {
        method: method.to_string(),
        path: path.to_string(),
        params,
    }))
}

fn add_params(params: &mut BTreeMap<String, String>, s: &str) {
    for kv in s.split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        params.insert(
            oracle_ctrader::oauth::decode(k),
            oracle_ctrader::oauth::decode(v),
        );
    }
}

/// Why the broker refused an OAuth request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// `errorCode`.
    pub code: &'static str,
    /// `description` (never a value).
    pub description: String,
}

impl Refusal {
    /// A refusal.
    pub fn new(code: &'static str, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }
}

/// A token pair the broker issued.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// Access token.
    pub access_token: String,
    /// Refresh token (works once).
    pub refresh_token: String,
    /// Seconds the access token lives.
    pub expires_in_s: i64,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("expires_in_s", &self.expires_in_s)
            .finish_non_exhaustive()
    }
}

/// Answers one request on the broker at `now_ms` (sans-IO).
pub fn handle(broker: &mut Broker, now_ms: i64, req: &HttpRequest) -> HttpResponse {
    let p = |k: &str| req.params.get(k).map(String::as_str).unwrap_or_default();
    match req.path.as_str() {
        "/apps/auth" => {
            if req.method != "GET" {
                return HttpResponse::error(405, "INVALID_REQUEST", "GET only");
            }
            let scope = match p("scope") {
                "trading" => Scope::Trade,
                "accounts" => Scope::View,
                _ => {
                    return HttpResponse::error(
                        400,
                        "INVALID_REQUEST",
                        "scope must be trading or accounts",
                    );
                }
            };
            let redirect = p("redirect_uri");
            match broker.oauth_authorize(now_ms, p("client_id"), redirect, scope) {
                Err(r) => HttpResponse::error(400, r.code, &r.description),
                Ok(code) => {
                    let sep = if redirect.contains('?') { '&' } else { '?' };
                    HttpResponse {
                        status: 302,
                        location: Some(format!(
                            "{redirect}{sep}code={}",
                            oracle_ctrader::oauth::encode(&code)
                        )),
                        content_type: "text/plain",
                        body: String::new(),
                    }
                }
            }
        }
        "/apps/token" => {
            if req.method != "GET" && req.method != "POST" {
                return HttpResponse::error(405, "INVALID_REQUEST", "GET or POST only");
            }
            let (id, secret) = (p("client_id"), p("client_secret"));
            let issued = match p("grant_type") {
                "authorization_code" => {
                    broker.oauth_exchange_code(now_ms, id, secret, p("code"), p("redirect_uri"))
                }
                "refresh_token" => broker.oauth_refresh(now_ms, id, secret, p("refresh_token")),
                _ => Err(Refusal::new(
                    "INVALID_REQUEST",
                    "grant_type must be authorization_code or refresh_token",
                )),
            };
            match issued {
                Ok(t) => HttpResponse::json(
                    200,
                    &serde_json::json!({
                        "accessToken": t.access_token,
                        "tokenType": "bearer",
                        "expiresIn": t.expires_in_s,
                        "refreshToken": t.refresh_token,
                        "errorCode": null,
                        "description": null,
                    }),
                ),
                Err(r) => HttpResponse::error(400, r.code, &r.description),
            }
        }
        _ => HttpResponse::error(
            404,
            "NOT_FOUND",
            "no such endpoint: /apps/auth, /apps/token",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_parsed_once_head_and_body_are_in() {
        let r = b"POST /apps/token?grant_type=refresh_token HTTP/1.1\r\nHost: x\r\nContent-Length: 19\r\n\r\nrefresh_token=a%2Bb";
        assert_eq!(parse_request(&r[..40]), Ok(None));
        assert_eq!(parse_request(&r[..r.len() - 2]), Ok(None));
        let req = parse_request(r).unwrap().unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/apps/token");
        assert_eq!(req.params["grant_type"], "refresh_token");
        assert_eq!(req.params["refresh_token"], "a+b");
        assert!(parse_request(b"GET / FTP/1\r\n\r\n").is_err());
        assert!(is_http(b"GET /") && is_http(b"P") && !is_http(&[0, 0, 0, 9]));
    }
}
