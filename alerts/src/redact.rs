//! No secret in an alert's text, a log line or an error: known values and token-shaped words are
//! replaced by `<redacted>`.

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// Replaces, in any text it is given:
/// - every known secret (the bot token, the webhook URL's path, whatever the process adds: the
///   broker's client secret and tokens) of 6 characters or more, as written and percent-encoded;
/// - a word shaped like a Telegram bot token (`<digits>:<30+ of A-Z a-z 0-9 _ ->`);
/// - a word of 32 or more token characters (`A-Z a-z 0-9 _ - . ~ + /`) with an upper-case
///   letter, a lower-case letter and a digit (an OAuth token, an API key); hex digests (lower
///   case) and words are left alone.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'~' | b'+' | b'/')
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn looks_like_opaque_token(w: &str) -> bool {
    w.len() >= 32
        && w.bytes().any(|b| b.is_ascii_uppercase())
        && w.bytes().any(|b| b.is_ascii_lowercase())
        && w.bytes().any(|b| b.is_ascii_digit())
}

impl Redactor {
    /// A redactor that knows `secrets` (values shorter than 6 characters are ignored: they would
    /// blank ordinary words).
    pub fn new<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) -> Self {
        let mut r = Redactor::default();
        for s in secrets {
            r.add(s.as_ref());
        }
        r
    }

    /// Adds a known secret.
    pub fn add(&mut self, secret: &str) {
        let s = secret.trim();
        if s.len() < 6 || self.secrets.iter().any(|k| k == s) {
            return;
        }
        self.secrets.push(s.to_string());
        let enc = percent_encode(s);
        if enc != s {
            self.secrets.push(enc);
        }
        // Longest first, so a secret containing another is replaced whole.
        self.secrets.sort_by_key(|k| std::cmp::Reverse(k.len()));
    }

    /// `text` with every secret replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        redact_shapes(&out)
    }

    /// A `serde_json` value with every string redacted (the webhook's body).
    pub fn redact_json(&self, v: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::String(s) => Value::String(self.redact(&s)),
            Value::Array(a) => Value::Array(a.into_iter().map(|x| self.redact_json(x)).collect()),
            Value::Object(o) => Value::Object(
                o.into_iter()
                    .map(|(k, x)| (k, self.redact_json(x)))
                    .collect(),
            ),
            other => other,
        }
    }
}

/// Replaces bot-token-shaped and opaque-token-shaped words (see [`Redactor`]).
fn redact_shapes(s: &str) -> String {
    let b = s.as_bytes();
    let key_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
    let mut out = String::with_capacity(s.len());
    let (mut i, mut last) = (0, 0);
    while i < b.len() {
        if !is_token_char(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_token_char(b[i]) {
            i += 1;
        }
        let word = &s[start..i];
        if word.len() >= 5 && word.bytes().all(|c| c.is_ascii_digit()) && b.get(i) == Some(&b':') {
            let mut k = i + 1;
            while k < b.len() && key_char(b[k]) {
                k += 1;
            }
            if k - (i + 1) >= 30 {
                out.push_str(&s[last..start]);
                out.push_str(REDACTED);
                (i, last) = (k, k);
                continue;
            }
        }
        if looks_like_opaque_token(word) {
            out.push_str(&s[last..start]);
            out.push_str(REDACTED);
            last = i;
        }
    }
    out.push_str(&s[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOT: &str = "123456789:AAH7xk_Qz-9VbLpWm3nR5tYc2dFgHjKl0Oq";

    #[test]
    fn known_secrets_and_token_shaped_words_are_redacted_and_the_rest_kept() {
        let r = Redactor::new(["s3cr3t-value", "ab"]);
        assert_eq!(
            r.redact("client secret s3cr3t-value, short ab kept"),
            "client secret <redacted>, short ab kept"
        );
        assert_eq!(
            r.redact(&format!("token={BOT} refused")),
            "token=<redacted> refused"
        );
        // A bot token the redactor was not told about: its shape is enough.
        let unknown = Redactor::default();
        let t = unknown.redact(&format!("reason: {BOT}"));
        assert_eq!(t, "reason: <redacted>");
        // An OAuth-shaped access token.
        let t = unknown.redact("access token Zk3vQ9x_Lm2Np8Rt5Wy7Ab1Cd4Ef6Gh0Ij refused");
        assert_eq!(t, "access token <redacted> refused");
        // A sha256 digest (lower-case hex) and ordinary text stay readable.
        let digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let t = unknown.redact(&format!("sha256 {digest} mismatch in EURUSD_H1.zip"));
        assert_eq!(t, format!("sha256 {digest} mismatch in EURUSD_H1.zip"));
    }

    #[test]
    fn a_percent_encoded_secret_is_redacted_too() {
        let r = Redactor::new(["a b/c+d=e"]);
        assert_eq!(r.redact("q=a%20b%2Fc%2Bd%3De&x=1"), "q=<redacted>&x=1");
        assert!(!format!("{r:?}").contains("a b"));
    }

    #[test]
    fn json_strings_are_redacted_at_any_depth() {
        let r = Redactor::new(["hunter2-secret"]);
        let v =
            serde_json::json!({"a": ["x hunter2-secret"], "b": {"c": "hunter2-secret"}, "n": 3});
        assert_eq!(
            r.redact_json(v),
            serde_json::json!({"a": ["x <redacted>"], "b": {"c": "<redacted>"}, "n": 3})
        );
    }
}
