//! Crash failpoints for the chaos proof: `ORACLE_FAILPOINT=after_intent:N` aborts the process
//! after the N-th order intent is fsynced in a journal and before that order is put on the wire
//! (a batch's intents are fsynced together, then its orders submitted one by one: the orders
//! before the N-th are on the wire); `after_fill:N` right after the broker's N-th answer,
//! before its outcome is journaled; `before_refresh_request:N` just before the N-th
//! `RefreshTokenReq` is queued (the old pair not spent); `after_refresh_answer:N` when the N-th
//! refreshed token pair has come from the broker, before it is stored (the old refresh token is
//! spent);
//! `after_token_write:N` when it is stored, before the session is told to use it.
//! Several may be given, comma separated. Unset (the default): no effect.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where a failpoint sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// After the intent's fsync, before its order is put on the wire.
    AfterIntent,
    /// After the broker's answer, before the outcome is journaled.
    AfterFill,
    /// A refresh about to be requested (nothing on the wire yet: the old pair is not spent).
    BeforeRefreshRequest,
    /// A refreshed token pair received, not yet stored.
    AfterRefreshAnswer,
    /// A refreshed token pair stored, the session not yet told.
    AfterTokenWrite,
}

/// The environment variable read (once) by [`hit`].
pub const ENV: &str = "ORACLE_FAILPOINT";

/// Parses `after_intent:N[,after_fill:M]`; unknown or malformed items are ignored.
pub fn parse(spec: &str) -> Vec<(Point, u64)> {
    spec.split(',')
        .filter_map(|item| {
            let (name, n) = item.trim().split_once(':')?;
            let p = match name {
                "after_intent" => Point::AfterIntent,
                "after_fill" => Point::AfterFill,
                "before_refresh_request" => Point::BeforeRefreshRequest,
                "after_refresh_answer" => Point::AfterRefreshAnswer,
                "after_token_write" => Point::AfterTokenWrite,
                _ => return None,
            };
            Some((p, n.trim().parse().ok().filter(|&n| n > 0)?))
        })
        .collect()
}

static ARMED: OnceLock<Vec<(Point, u64)>> = OnceLock::new();
static INTENTS: AtomicU64 = AtomicU64::new(0);
static FILLS: AtomicU64 = AtomicU64::new(0);
static REFRESH_REQUESTS: AtomicU64 = AtomicU64::new(0);
static REFRESHES: AtomicU64 = AtomicU64::new(0);
static TOKEN_WRITES: AtomicU64 = AtomicU64::new(0);

/// Counts one passage through `p`; aborts the process (no unwinding, no flush: a `kill -9`)
/// when it is the armed N-th.
pub fn hit(p: Point) {
    let armed = ARMED.get_or_init(|| std::env::var(ENV).map(|s| parse(&s)).unwrap_or_default());
    if armed.is_empty() {
        return;
    }
    let n = match p {
        Point::AfterIntent => &INTENTS,
        Point::AfterFill => &FILLS,
        Point::BeforeRefreshRequest => &REFRESH_REQUESTS,
        Point::AfterRefreshAnswer => &REFRESHES,
        Point::AfterTokenWrite => &TOKEN_WRITES,
    }
    .fetch_add(1, Ordering::SeqCst)
        + 1;
    if armed.contains(&(p, n)) {
        eprintln!("{ENV}: aborting at {p:?} #{n}");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_points() {
        assert_eq!(parse("after_intent:3"), vec![(Point::AfterIntent, 3)]);
        assert_eq!(
            parse("after_fill:1, after_intent:2"),
            vec![(Point::AfterFill, 1), (Point::AfterIntent, 2)]
        );
        assert_eq!(
            parse("after_refresh_answer:1,after_token_write:2"),
            vec![(Point::AfterRefreshAnswer, 1), (Point::AfterTokenWrite, 2)]
        );
        assert_eq!(
            parse("before_refresh_request:1"),
            vec![(Point::BeforeRefreshRequest, 1)]
        );
        assert!(parse("").is_empty());
        assert!(parse("after_intent:0,bogus:1,after_fill:x").is_empty());
    }
}
