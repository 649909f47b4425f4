//! The predictor ⇄ executor line codec (`docs/ipc.md`).
//!
//! One text line per WebSocket frame, fields separated by `|`. The seed's fields come first, in the
//! seed's order; everything added follows as `KEY:value` tags. Tag order is free on input (unknown
//! tags are ignored, a repeated tag is an error) and fixed on output.
//!
//! **Architecture invariant:** the codec never allocates. [`parse`] borrows every text field from
//! the input line; formatting goes through [`core::fmt::Display`] (any `fmt::Write`) or
//! [`Message::encode`] into a caller-supplied buffer. The `std` feature only adds `to_line()` and
//! `std::error::Error`.
//!
//! Parsing never panics on any input (a property test feeds it arbitrary bytes); every error names
//! the line kind, the field and why ([`ParseError`]).

#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod fmt_buf;
pub mod time;

use core::fmt;

pub use time::{Iso, IsoUtc, parse_iso, parse_time};

/// Maximum length of one line in bytes (a longer frame is refused with `ERR|TOO_LONG`).
pub const MAX_LINE: usize = 1024;
/// Protocol version announced in `WELCOME|V:1`.
pub const PROTOCOL_VERSION: u32 = 1;
/// Maximum bytes of an `ERR|MALFORMED|<detail>` detail (the start of the offending line).
pub const MAX_ERR_DETAIL: usize = 64;
/// Maximum bar count of one `HISTORY` request.
pub const MAX_HISTORY: u32 = 100_000;
/// Maximum length of a symbol name (`oracle_core::MAX_SYMBOL`).
pub const MAX_SYMBOL: usize = oracle_core::MAX_SYMBOL;
/// Maximum length of the `HELLO` token.
pub const MAX_TOKEN: usize = 256;
/// Maximum length of an ACK reason code (`MISSED_ENTRY`, `HALTED_DAILY_LOSS`…).
pub const MAX_REASON: usize = 48;

// ---------------------------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------------------------

/// The seven actions of the model (seed §3), by name, and the intensity 0..=3 each targets: the
/// one type of the whole system, defined in `oracle-core` (the codec parses the wire name and a
/// `SIGNAL`'s `INT:` once into them).
pub use oracle_core::{Action, Intensity};

/// Bar timeframes: the one type of the whole system, defined in `oracle-core` (the codec parses
/// the wire name once into it).
pub use oracle_core::Timeframe;
/// The typed stream key (symbol + timeframe) and its symbol, from `oracle-core`.
pub use oracle_core::{StreamKey, StreamKeyError, Symbol};

/// `ERR` codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrCode {
    /// The line could not be parsed (detail: the first 64 bytes of it).
    Malformed,
    /// A symbol the executor does not know or does not serve.
    UnknownSymbol,
    /// The frame is longer than [`MAX_LINE`].
    TooLong,
    /// Wrong token; the executor closes the connection after it.
    Auth,
    /// A line other than `HELLO` before authentication.
    NotAuthenticated,
    /// A `SIGNAL` for a model (symbol, timeframe) the executor does not stream: no model of
    /// that timeframe is loaded for the symbol (detail: `<SYM>_<TF>`).
    UnknownModel,
    /// A `SIGNAL` whose bar time is not a bar the executor has streamed on that model's stream
    /// (not closed yet, in the future, or not a bar time at all; detail: `<SYM>_<TF>|<time>`).
    UnknownBar,
}

impl ErrCode {
    /// Every code.
    pub const ALL: [ErrCode; 7] = [
        ErrCode::Malformed,
        ErrCode::UnknownSymbol,
        ErrCode::TooLong,
        ErrCode::Auth,
        ErrCode::NotAuthenticated,
        ErrCode::UnknownModel,
        ErrCode::UnknownBar,
    ];

    /// The name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrCode::Malformed => "MALFORMED",
            ErrCode::UnknownSymbol => "UNKNOWN_SYMBOL",
            ErrCode::TooLong => "TOO_LONG",
            ErrCode::Auth => "AUTH",
            ErrCode::NotAuthenticated => "NOT_AUTHENTICATED",
            ErrCode::UnknownModel => "UNKNOWN_MODEL",
            ErrCode::UnknownBar => "UNKNOWN_BAR",
        }
    }

    /// Parses the wire name.
    pub fn from_name(s: &str) -> Option<ErrCode> {
        ErrCode::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ErrCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Money in hundredths of the account currency (the `SIGNAL`'s virtual P&L, two decimals).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Cents(pub i64);

impl Cents {
    /// Rounds an amount of money to cents (half away from zero); non-finite → 0.
    pub fn from_f64(v: f64) -> Cents {
        if !v.is_finite() {
            return Cents(0);
        }
        let x = v * 100.0;
        // `as` saturates for out-of-range floats; the `+ 0.5` rounding is done by hand because
        // `f64::round` needs std.
        let r = if x >= 0.0 {
            (x + 0.5) as i64
        } else {
            -((-x + 0.5) as i64)
        };
        Cents(r)
    }

    /// The amount as f64.
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 100.0
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", a / 100, a % 100)
    }
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/// `HELLO|<token>` (P → E), the first frame. `Debug` never shows the token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Hello<'a> {
    /// The shared secret.
    pub token: &'a str,
}

impl fmt::Debug for Hello<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hello")
            .field("token", &"<redacted>")
            .finish()
    }
}

/// `WELCOME|V:<version>` (E → P).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Welcome {
    /// Protocol version ([`PROTOCOL_VERSION`]).
    pub version: u32,
}

/// `HISTORY|<SYM>|<TF>|<count>` (P → E): the last `count` closed bars.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryReq<'a> {
    /// Symbol.
    pub symbol: &'a str,
    /// Timeframe.
    pub tf: Timeframe,
    /// Bars wanted (≤ [`MAX_HISTORY`]).
    pub count: u32,
}

/// `BAR|<SYM>|<TF>|<time>|<o>|<h>|<l>|<c>|<volume>|SEQ:<n>[|HIST:1][|REV:1]` (E → P): a closed
/// bid bar.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bar<'a> {
    /// Symbol.
    pub symbol: &'a str,
    /// Timeframe.
    pub tf: Timeframe,
    /// Open time, Unix seconds UTC.
    pub time: i64,
    /// Open (bid).
    pub open: f64,
    /// High (bid).
    pub high: f64,
    /// Low (bid).
    pub low: f64,
    /// Close (bid).
    pub close: f64,
    /// Tick volume.
    pub volume: u64,
    /// Executor's per-(symbol, timeframe) sequence, strictly increasing.
    pub seq: u64,
    /// Part of a `HISTORY` answer rather than the live stream.
    pub hist: bool,
    /// A correction: the broker's history differs from the bar sent earlier with this time and
    /// `seq` (sent from the live stream's final snapshot); this is the bar that counts.
    pub rev: bool,
}

impl Bar<'_> {
    /// The bar as the twins take it (`oracle_core::Bar`: open time in seconds, bid prices, the
    /// tick volume as f64).
    pub fn bar(&self) -> oracle_core::Bar {
        oracle_core::Bar {
            time: self.time,
            open: self.open,
            high: self.high,
            low: self.low,
            close: self.close,
            volume: self.volume as f64,
        }
    }

    /// The bar's stream; an error only for a symbol the codec would not have parsed.
    pub fn key(&self) -> Result<StreamKey, StreamKeyError> {
        Ok(StreamKey::new(Symbol::new(self.symbol)?, self.tf))
    }
}

impl HistoryReq<'_> {
    /// The stream asked for; an error only for a symbol the codec would not have parsed.
    pub fn key(&self) -> Result<StreamKey, StreamKeyError> {
        Ok(StreamKey::new(Symbol::new(self.symbol)?, self.tf))
    }
}

impl HistoryEnd<'_> {
    /// The stream answered; an error only for a symbol the codec would not have parsed.
    pub fn key(&self) -> Result<StreamKey, StreamKeyError> {
        Ok(StreamKey::new(Symbol::new(self.symbol)?, self.tf))
    }
}

/// `HISTORY_END|<SYM>|<TF>|<count sent>` (E → P).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryEnd<'a> {
    /// Symbol.
    pub symbol: &'a str,
    /// Timeframe.
    pub tf: Timeframe,
    /// Bars sent.
    pub count: u32,
}

/// `SIGNAL|<SYM>|<ACTION>|<regime>|<pnl>|TF:|BT:|SEQ:|DIR:|INT:` (P → E).
///
/// The tags are optional on input so the seed's bare `SIGNAL|EURUSD|LONG_WEAK|3|0.00` parses;
/// `DIR`/`INT` are checked against the action and always written on output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signal<'a> {
    /// Symbol.
    pub symbol: &'a str,
    /// The model's target.
    pub action: Action,
    /// The model's HMM regime.
    pub regime: u8,
    /// The virtual position's unrealised P&L in account money.
    pub virtual_pnl: Cents,
    /// `TF:` the model's timeframe.
    pub tf: Option<Timeframe>,
    /// `BT:` open time of the bar that produced the signal (Unix seconds).
    pub bar_time: Option<i64>,
    /// `SEQ:` the `SEQ` of that bar.
    pub seq: Option<u64>,
}

/// What an `ACK` says.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome<'a> {
    /// `OK|T:<ticket>|P:<price>`: the real position follows (ticket = position id).
    Ok {
        /// Broker position id.
        ticket: u64,
        /// Fill price.
        price: f64,
    },
    /// `FAIL|<REASON>`: refused or failed; the real position did not follow.
    Fail {
        /// Reason code (`MARGIN`, `HALTED_DAILY_LOSS`…).
        reason: &'a str,
    },
    /// `WAIT_SYNC|<REASON>` (`MISSED_ENTRY`): real and virtual differ until the next transition.
    WaitSync {
        /// Reason code.
        reason: &'a str,
    },
    /// `HOLD`: no transition, nothing to do.
    Hold,
}

/// `ACK|<SYM>|<ACTION>|<outcome…>|TF:|BT:|SEQ:` (E → P).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ack<'a> {
    /// Symbol.
    pub symbol: &'a str,
    /// The signal's action.
    pub action: Action,
    /// Outcome.
    pub outcome: Outcome<'a>,
    /// `TF:` of the signal.
    pub tf: Option<Timeframe>,
    /// `BT:` of the signal.
    pub bar_time: Option<i64>,
    /// `SEQ:` of the signal.
    pub seq: Option<u64>,
}

/// `ERR|<CODE>[|<detail>]`. The detail is the rest of the line and may contain `|`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrLine<'a> {
    /// Code.
    pub code: ErrCode,
    /// Detail (may be empty; control characters are written as `?`).
    pub detail: &'a str,
}

/// Kinds of line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Kind {
    Hello,
    Welcome,
    History,
    Bar,
    HistoryEnd,
    Signal,
    Ack,
    Err,
}

impl Kind {
    /// The first field on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Hello => "HELLO",
            Kind::Welcome => "WELCOME",
            Kind::History => "HISTORY",
            Kind::Bar => "BAR",
            Kind::HistoryEnd => "HISTORY_END",
            Kind::Signal => "SIGNAL",
            Kind::Ack => "ACK",
            Kind::Err => "ERR",
        }
    }
}

/// One line of the protocol.
#[derive(Clone, Copy, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum Message<'a> {
    Hello(Hello<'a>),
    Welcome(Welcome),
    History(HistoryReq<'a>),
    Bar(Bar<'a>),
    HistoryEnd(HistoryEnd<'a>),
    Signal(Signal<'a>),
    Ack(Ack<'a>),
    Err(ErrLine<'a>),
}

impl Message<'_> {
    /// The line's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Message::Hello(_) => Kind::Hello,
            Message::Welcome(_) => Kind::Welcome,
            Message::History(_) => Kind::History,
            Message::Bar(_) => Kind::Bar,
            Message::HistoryEnd(_) => Kind::HistoryEnd,
            Message::Signal(_) => Kind::Signal,
            Message::Ack(_) => Kind::Ack,
            Message::Err(_) => Kind::Err,
        }
    }

    /// Writes the line into `buf` and checks that it is a valid line (it parses back and fits in
    /// [`MAX_LINE`]): a message built by hand with, say, a `|` in a symbol is refused here instead
    /// of reaching the peer.
    pub fn encode<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str, EncodeError> {
        let s = fmt_buf::write(buf, format_args!("{self}")).map_err(|()| EncodeError::TooLong)?;
        if s.len() > MAX_LINE {
            return Err(EncodeError::TooLong);
        }
        parse(s).map_err(EncodeError::Invalid)?;
        Ok(s)
    }

    /// [`Message::encode`] into a new `String`.
    #[cfg(feature = "std")]
    pub fn to_line(&self) -> Result<String, EncodeError> {
        let mut buf = [0u8; MAX_LINE];
        self.encode(&mut buf).map(str::to_owned)
    }
}

/// Why a message could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// Longer than [`MAX_LINE`] (or the caller's buffer).
    TooLong,
    /// The written line does not parse back (a field holds a forbidden character…).
    Invalid(ParseError),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::TooLong => write!(f, "line longer than {MAX_LINE} bytes"),
            EncodeError::Invalid(e) => write!(f, "invalid field: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EncodeError {}

// ---------------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------------

/// Writes a price (`f64`'s shortest round-trip decimal, never an exponent).
struct Price(f64);

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Hello(m) => write!(f, "HELLO|{}", m.token),
            Message::Welcome(m) => write!(f, "WELCOME|V:{}", m.version),
            Message::History(m) => write!(f, "HISTORY|{}|{}|{}", m.symbol, m.tf, m.count),
            Message::Bar(m) => {
                write!(
                    f,
                    "BAR|{}|{}|{}|{}|{}|{}|{}|{}|SEQ:{}",
                    m.symbol,
                    m.tf,
                    Iso(m.time),
                    Price(m.open),
                    Price(m.high),
                    Price(m.low),
                    Price(m.close),
                    m.volume,
                    m.seq
                )?;
                if m.hist {
                    f.write_str("|HIST:1")?;
                }
                if m.rev {
                    f.write_str("|REV:1")?;
                }
                Ok(())
            }
            Message::HistoryEnd(m) => write!(f, "HISTORY_END|{}|{}|{}", m.symbol, m.tf, m.count),
            Message::Signal(m) => {
                write!(
                    f,
                    "SIGNAL|{}|{}|{}|{}",
                    m.symbol, m.action, m.regime, m.virtual_pnl
                )?;
                write_ctx_tags(f, m.tf, m.bar_time, m.seq)?;
                write!(
                    f,
                    "|DIR:{}|INT:{}",
                    m.action.direction(),
                    m.action.intensity()
                )
            }
            Message::Ack(m) => {
                write!(f, "ACK|{}|{}|", m.symbol, m.action)?;
                match m.outcome {
                    Outcome::Ok { ticket, price } => write!(f, "OK|T:{ticket}|P:{}", Price(price))?,
                    Outcome::Fail { reason } => write!(f, "FAIL|{reason}")?,
                    Outcome::WaitSync { reason } => write!(f, "WAIT_SYNC|{reason}")?,
                    Outcome::Hold => f.write_str("HOLD")?,
                }
                write_ctx_tags(f, m.tf, m.bar_time, m.seq)
            }
            Message::Err(m) => {
                write!(f, "ERR|{}", m.code)?;
                if !m.detail.is_empty() {
                    f.write_str("|")?;
                    for c in m.detail.chars() {
                        if c.is_control() {
                            f.write_str("?")?;
                        } else {
                            write!(f, "{c}")?;
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

fn write_ctx_tags(
    f: &mut fmt::Formatter<'_>,
    tf: Option<Timeframe>,
    bt: Option<i64>,
    seq: Option<u64>,
) -> fmt::Result {
    if let Some(tf) = tf {
        write!(f, "|TF:{tf}")?;
    }
    if let Some(bt) = bt {
        write!(f, "|BT:{}", Iso(bt))?;
    }
    if let Some(seq) = seq {
        write!(f, "|SEQ:{seq}")?;
    }
    Ok(())
}

macro_rules! display_via_message {
    ($t:ident, $v:ident) => {
        impl fmt::Display for $t<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&Message::$v(*self), f)
            }
        }
    };
}
display_via_message!(HistoryReq, History);
display_via_message!(Bar, Bar);
display_via_message!(HistoryEnd, HistoryEnd);
display_via_message!(Signal, Signal);
display_via_message!(Ack, Ack);
display_via_message!(ErrLine, Err);

impl fmt::Display for Welcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Message::Welcome(*self), f)
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Why a line was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Longer than [`MAX_LINE`] bytes.
    TooLong {
        /// Length seen.
        len: usize,
    },
    /// Not UTF-8 ([`parse_bytes`]).
    NotUtf8,
    /// Empty line.
    Empty,
    /// A control character (tab, NUL…) inside the line.
    ControlCharacter,
    /// The first field is not a known line kind.
    UnknownKind,
    /// A required field or tag is absent.
    Missing,
    /// A field that is not a `KEY:value` tag after the fixed fields.
    UnexpectedField,
    /// Not a non-negative integer.
    NotAnInteger,
    /// An integer written with a leading zero (`01`): integers have one spelling.
    LeadingZero,
    /// Integer too large or otherwise out of its range.
    OutOfRange,
    /// Not a decimal number (`-?digits[.digits]`).
    NotADecimal,
    /// More decimals than allowed.
    TooManyDecimals,
    /// A price that is not > 0.
    NotPositive,
    /// Not `YYYY-MM-DDTHH:MM:SSZ` (UTC, year ≥ 1970) or an impossible date.
    BadTime,
    /// Symbol empty, too long, or with a character outside `A-Z a-z 0-9 . _ - #`.
    BadSymbol,
    /// Not one of M1 M2 M3 M4 M5 M10 M15 M30 H1 H4 H12 D1 W1 MN1.
    BadTimeframe,
    /// Not one of the seven action names.
    BadAction,
    /// Not OK, FAIL, WAIT_SYNC or HOLD.
    BadOutcome,
    /// A reason code that is not `[A-Z][A-Z0-9_]*` (≤ 48).
    BadReasonCode,
    /// Not a known ERR code.
    BadErrCode,
    /// Not `KEY:value` with an upper-case key and a non-empty value.
    BadTag,
    /// The same tag twice.
    DuplicateTag,
    /// `DIR`/`INT` disagree with the action.
    Inconsistent,
    /// Empty or longer than [`MAX_TOKEN`].
    BadToken,
    /// A flag tag whose value is not `1`.
    BadFlag,
}

impl Reason {
    /// A readable sentence.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::TooLong { .. } => "line too long",
            Reason::NotUtf8 => "not UTF-8",
            Reason::Empty => "empty line",
            Reason::ControlCharacter => "control character in line",
            Reason::UnknownKind => "unknown line kind",
            Reason::Missing => "missing",
            Reason::UnexpectedField => "unexpected field (extra fields must be KEY:value tags)",
            Reason::NotAnInteger => "not a non-negative integer",
            Reason::LeadingZero => "integer with a leading zero (write 1, not 01)",
            Reason::OutOfRange => "out of range",
            Reason::NotADecimal => "not a decimal number",
            Reason::TooManyDecimals => "too many decimals",
            Reason::NotPositive => "not > 0",
            Reason::BadTime => "not an ISO-8601 UTC time YYYY-MM-DDTHH:MM:SSZ",
            Reason::BadSymbol => "bad symbol (1-32 of A-Z a-z 0-9 . _ - #)",
            Reason::BadTimeframe => "unknown timeframe",
            Reason::BadAction => "unknown action",
            Reason::BadOutcome => "unknown outcome (OK, FAIL, WAIT_SYNC, HOLD)",
            Reason::BadReasonCode => "bad reason code ([A-Z][A-Z0-9_]*)",
            Reason::BadErrCode => "unknown ERR code",
            Reason::BadTag => "bad tag (KEY:value)",
            Reason::DuplicateTag => "tag given twice",
            Reason::Inconsistent => "disagrees with the action",
            Reason::BadToken => "bad token",
            Reason::BadFlag => "flag must be 1",
        }
    }
}

/// A refused line: which kind, which field, why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The line's kind, when the first field was recognised.
    pub kind: Option<Kind>,
    /// The field or tag (`"regime"`, `"BT"`, `"line"`…).
    pub field: &'static str,
    /// Why.
    pub reason: Reason,
}

impl ParseError {
    /// The `ERR` code a peer answers with.
    pub fn err_code(&self) -> ErrCode {
        match self.reason {
            Reason::TooLong { .. } => ErrCode::TooLong,
            _ => ErrCode::Malformed,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(k) = self.kind {
            write!(f, "{} ", k.as_str())?;
        }
        write!(f, "{}: {}", self.field, self.reason.as_str())?;
        if let Reason::TooLong { len } = self.reason {
            write!(f, " ({len} > {MAX_LINE} bytes)")?;
        }
        Ok(())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ParseError {}

/// Parses raw frame bytes (checks the length before UTF-8).
pub fn parse_bytes(b: &[u8]) -> Result<Message<'_>, ParseError> {
    if b.len() > MAX_LINE + 2 {
        return Err(err(None, "line", Reason::TooLong { len: b.len() }));
    }
    let s = core::str::from_utf8(b).map_err(|_| err(None, "line", Reason::NotUtf8))?;
    parse(s)
}

/// Parses one line. One trailing `\n` or `\r\n` is tolerated (for line-oriented tools).
pub fn parse(line: &str) -> Result<Message<'_>, ParseError> {
    let line = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(line);
    if line.len() > MAX_LINE {
        return Err(err(None, "line", Reason::TooLong { len: line.len() }));
    }
    if line.is_empty() {
        return Err(err(None, "line", Reason::Empty));
    }
    if line.chars().any(char::is_control) {
        return Err(err(None, "line", Reason::ControlCharacter));
    }
    let (head, rest) = match line.split_once('|') {
        Some((h, r)) => (h, Some(r)),
        None => (line, None),
    };
    let kind = match head {
        "HELLO" => Kind::Hello,
        "WELCOME" => Kind::Welcome,
        "HISTORY" => Kind::History,
        "BAR" => Kind::Bar,
        "HISTORY_END" => Kind::HistoryEnd,
        "SIGNAL" => Kind::Signal,
        "ACK" => Kind::Ack,
        "ERR" => Kind::Err,
        _ => return Err(err(None, "kind", Reason::UnknownKind)),
    };
    let mut p = Fields { kind, rest };
    let msg = match kind {
        Kind::Hello => {
            // The token is the rest of the line, verbatim.
            let token = p.rest.take().unwrap_or("");
            if token.is_empty() || token.len() > MAX_TOKEN || token.contains('|') {
                return Err(p.err("token", Reason::BadToken));
            }
            Message::Hello(Hello { token })
        }
        Kind::Welcome => {
            let mut v = None;
            p.tags(|p, k, val| match k {
                "V" => p.set(&mut v, "V", val, parse_u32),
                _ => Ok(()),
            })?;
            Message::Welcome(Welcome {
                version: p.required(v, "V")?,
            })
        }
        Kind::History | Kind::HistoryEnd => {
            let symbol = p.symbol()?;
            let tf = p.tf("tf")?;
            let count = p.field("count", parse_u32)?;
            if count > MAX_HISTORY {
                return Err(p.err("count", Reason::OutOfRange));
            }
            p.tags(|_, _, _| Ok(()))?;
            if kind == Kind::History {
                Message::History(HistoryReq { symbol, tf, count })
            } else {
                Message::HistoryEnd(HistoryEnd { symbol, tf, count })
            }
        }
        Kind::Bar => {
            let symbol = p.symbol()?;
            let tf = p.tf("tf")?;
            let time = p.field("time", parse_time_r)?;
            let open = p.field("open", parse_price)?;
            let high = p.field("high", parse_price)?;
            let low = p.field("low", parse_price)?;
            let close = p.field("close", parse_price)?;
            let volume = p.field("volume", parse_u64)?;
            let (mut seq, mut hist, mut rev) = (None, None, None);
            p.tags(|p, k, v| match k {
                "SEQ" => p.set(&mut seq, "SEQ", v, parse_u64),
                "HIST" => p.set(&mut hist, "HIST", v, parse_flag),
                "REV" => p.set(&mut rev, "REV", v, parse_flag),
                _ => Ok(()),
            })?;
            Message::Bar(Bar {
                symbol,
                tf,
                time,
                open,
                high,
                low,
                close,
                volume,
                seq: p.required(seq, "SEQ")?,
                hist: hist.unwrap_or(false),
                rev: rev.unwrap_or(false),
            })
        }
        Kind::Signal => {
            let symbol = p.symbol()?;
            let action = p.field("action", |s| Action::from_name(s).ok_or(Reason::BadAction))?;
            let regime = p.field("regime", |s| {
                let v = parse_u64(s)?;
                u8::try_from(v).map_err(|_| Reason::OutOfRange)
            })?;
            let virtual_pnl = p.field("virtual_pnl", parse_cents)?;
            let (mut tf, mut bt, mut seq, mut dir, mut int) = (None, None, None, None, None);
            p.tags(|p, k, v| match k {
                "TF" => p.set(&mut tf, "TF", v, |s| {
                    Timeframe::from_name(s).ok_or(Reason::BadTimeframe)
                }),
                "BT" => p.set(&mut bt, "BT", v, parse_time_r),
                "SEQ" => p.set(&mut seq, "SEQ", v, parse_u64),
                "DIR" => p.set(&mut dir, "DIR", v, |s| match s {
                    "-1" => Ok(-1i8),
                    "0" => Ok(0),
                    "1" => Ok(1),
                    _ => Err(Reason::OutOfRange),
                }),
                "INT" => p.set(&mut int, "INT", v, |s| {
                    u8::try_from(parse_u64(s)?)
                        .ok()
                        .and_then(Intensity::new)
                        .ok_or(Reason::OutOfRange)
                }),
                _ => Ok(()),
            })?;
            if dir.is_some_and(|d| d != action.direction()) {
                return Err(p.err("DIR", Reason::Inconsistent));
            }
            if int.is_some_and(|i| i != action.intensity()) {
                return Err(p.err("INT", Reason::Inconsistent));
            }
            Message::Signal(Signal {
                symbol,
                action,
                regime,
                virtual_pnl,
                tf,
                bar_time: bt,
                seq,
            })
        }
        Kind::Ack => {
            let symbol = p.symbol()?;
            let action = p.field("action", |s| Action::from_name(s).ok_or(Reason::BadAction))?;
            let status = p.field("status", Ok)?;
            let outcome = match status {
                "OK" => Outcome::Ok {
                    ticket: 0,
                    price: 0.0,
                },
                "FAIL" => Outcome::Fail {
                    reason: p.field("reason", parse_reason)?,
                },
                "WAIT_SYNC" => Outcome::WaitSync {
                    reason: p.field("reason", parse_reason)?,
                },
                "HOLD" => Outcome::Hold,
                _ => return Err(p.err("status", Reason::BadOutcome)),
            };
            let (mut t, mut pr, mut tf, mut bt, mut seq) = (None, None, None, None, None);
            let is_ok = matches!(outcome, Outcome::Ok { .. });
            p.tags(|p, k, v| match k {
                "T" if is_ok => p.set(&mut t, "T", v, parse_u64),
                "P" if is_ok => p.set(&mut pr, "P", v, parse_price),
                "TF" => p.set(&mut tf, "TF", v, |s| {
                    Timeframe::from_name(s).ok_or(Reason::BadTimeframe)
                }),
                "BT" => p.set(&mut bt, "BT", v, parse_time_r),
                "SEQ" => p.set(&mut seq, "SEQ", v, parse_u64),
                _ => Ok(()),
            })?;
            let outcome = if is_ok {
                Outcome::Ok {
                    ticket: p.required(t, "T")?,
                    price: p.required(pr, "P")?,
                }
            } else {
                outcome
            };
            Message::Ack(Ack {
                symbol,
                action,
                outcome,
                tf,
                bar_time: bt,
                seq,
            })
        }
        Kind::Err => {
            let code = p.field("code", |s| ErrCode::from_name(s).ok_or(Reason::BadErrCode))?;
            let detail = p.rest.take().unwrap_or("");
            Message::Err(ErrLine { code, detail })
        }
    };
    Ok(msg)
}

fn err(kind: Option<Kind>, field: &'static str, reason: Reason) -> ParseError {
    ParseError {
        kind,
        field,
        reason,
    }
}

/// Cursor over the `|`-separated fields after the kind.
struct Fields<'a> {
    kind: Kind,
    rest: Option<&'a str>,
}

impl<'a> Fields<'a> {
    fn err(&self, field: &'static str, reason: Reason) -> ParseError {
        err(Some(self.kind), field, reason)
    }

    fn next(&mut self) -> Option<&'a str> {
        let r = self.rest?;
        match r.split_once('|') {
            Some((h, t)) => {
                self.rest = Some(t);
                Some(h)
            }
            None => {
                self.rest = None;
                Some(r)
            }
        }
    }

    fn field<T>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&'a str) -> Result<T, Reason>,
    ) -> Result<T, ParseError> {
        let s = self.next().ok_or_else(|| self.err(name, Reason::Missing))?;
        f(s).map_err(|r| self.err(name, r))
    }

    fn symbol(&mut self) -> Result<&'a str, ParseError> {
        self.field("symbol", |s| {
            if valid_symbol(s) {
                Ok(s)
            } else {
                Err(Reason::BadSymbol)
            }
        })
    }

    fn tf(&mut self, name: &'static str) -> Result<Timeframe, ParseError> {
        self.field(name, |s| {
            Timeframe::from_name(s).ok_or(Reason::BadTimeframe)
        })
    }

    /// Reads the remaining fields as tags; `on` stores the known ones.
    fn tags(
        &mut self,
        mut on: impl FnMut(&Self, &'a str, &'a str) -> Result<(), ParseError>,
    ) -> Result<(), ParseError> {
        while let Some(f) = self.next() {
            let Some((k, v)) = f.split_once(':') else {
                return Err(self.err("tags", Reason::UnexpectedField));
            };
            let key_ok = !k.is_empty()
                && k.len() <= 16
                && k.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                && k.as_bytes()[0].is_ascii_uppercase();
            if !key_ok || v.is_empty() {
                return Err(self.err("tags", Reason::BadTag));
            }
            on(self, k, v)?;
        }
        Ok(())
    }

    fn set<T>(
        &self,
        slot: &mut Option<T>,
        name: &'static str,
        v: &'a str,
        f: impl FnOnce(&'a str) -> Result<T, Reason>,
    ) -> Result<(), ParseError> {
        if slot.is_some() {
            return Err(self.err(name, Reason::DuplicateTag));
        }
        *slot = Some(f(v).map_err(|r| self.err(name, r))?);
        Ok(())
    }

    fn required<T>(&self, v: Option<T>, name: &'static str) -> Result<T, ParseError> {
        v.ok_or_else(|| self.err(name, Reason::Missing))
    }
}

/// True for 1–32 bytes of `A-Z a-z 0-9 . _ - #` (the rule of `oracle_core::Symbol`).
pub use oracle_core::stream::valid_symbol;

/// True for a reason code: `[A-Z][A-Z0-9_]*`, at most [`MAX_REASON`] bytes.
pub fn valid_reason(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_REASON
        && s.as_bytes()[0].is_ascii_uppercase()
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

fn parse_reason(s: &str) -> Result<&str, Reason> {
    if valid_reason(s) {
        Ok(s)
    } else {
        Err(Reason::BadReasonCode)
    }
}

/// A canonical decimal integer: `0`, or ASCII digits not starting with `0` (`INT:01`, `SEQ:007`
/// are malformed: every integer has one spelling on the wire, the one the codec writes).
fn parse_u64(s: &str) -> Result<u64, Reason> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Reason::NotAnInteger);
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(Reason::LeadingZero);
    }
    s.parse::<u64>().map_err(|_| Reason::OutOfRange)
}

fn parse_u32(s: &str) -> Result<u32, Reason> {
    u32::try_from(parse_u64(s)?).map_err(|_| Reason::OutOfRange)
}

fn parse_flag(s: &str) -> Result<bool, Reason> {
    if s == "1" {
        Ok(true)
    } else {
        Err(Reason::BadFlag)
    }
}

fn parse_time_r(s: &str) -> Result<i64, Reason> {
    parse_time(s).ok_or(Reason::BadTime)
}

/// `-?digits[.digits]`: returns (negative, integer digits, fraction digits).
fn split_decimal(s: &str) -> Result<(bool, &str, &str), Reason> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => {
            if f.is_empty() {
                return Err(Reason::NotADecimal);
            }
            (i, f)
        }
        None => (body, ""),
    };
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) {
        return Err(Reason::NotADecimal);
    }
    Ok((neg, int, frac))
}

fn parse_price(s: &str) -> Result<f64, Reason> {
    split_decimal(s)?;
    let v: f64 = s.parse().map_err(|_| Reason::NotADecimal)?;
    if !v.is_finite() {
        return Err(Reason::OutOfRange);
    }
    if v <= 0.0 {
        return Err(Reason::NotPositive);
    }
    Ok(v)
}

fn parse_cents(s: &str) -> Result<Cents, Reason> {
    let (neg, int, frac) = split_decimal(s)?;
    if frac.len() > 2 {
        return Err(Reason::TooManyDecimals);
    }
    if int.len() > 15 {
        return Err(Reason::OutOfRange);
    }
    // ≤ 15 integer digits and ≤ 2 fraction digits fit in i64 (< 10^17).
    let i: i64 = int.parse().map_err(|_| Reason::OutOfRange)?;
    let mut f: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| Reason::NotADecimal)?
    };
    if frac.len() == 1 {
        f *= 10;
    }
    let v = i * 100 + f;
    Ok(Cents(if neg { -v } else { v }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parsed_bar_gives_the_core_bar_and_its_stream_key() {
        let line = "BAR|US500.cash|M5|2021-03-01T00:05:00Z|3900.5|3901|3899.25|3900|17|SEQ:4";
        let Ok(Message::Bar(b)) = parse(line) else {
            panic!("{line}")
        };
        assert_eq!(
            b.bar(),
            oracle_core::Bar {
                time: 1_614_557_100,
                open: 3900.5,
                high: 3901.0,
                low: 3899.25,
                close: 3900.0,
                volume: 17.0,
            }
        );
        let key = b.key().expect("key");
        assert_eq!(
            (key.symbol.as_str(), key.timeframe),
            ("US500.cash", Timeframe::M5)
        );
        let Ok(Message::HistoryEnd(h)) = parse("HISTORY_END|US500.cash|M5|350") else {
            panic!("history end")
        };
        assert_eq!(h.key(), Ok(key));
        let Ok(Message::History(r)) = parse("HISTORY|US500.cash|M5|350") else {
            panic!("history")
        };
        assert_eq!(r.key(), Ok(key));
        let made = Bar {
            symbol: "BAD SYMBOL",
            ..b
        };
        assert_eq!(made.key(), Err(StreamKeyError::Symbol));
    }

    #[test]
    fn seed_lines_parse() {
        let m = parse("SIGNAL|EURUSD|LONG_WEAK|3|0.00").unwrap();
        assert_eq!(
            m,
            Message::Signal(Signal {
                symbol: "EURUSD",
                action: Action::LongWeak,
                regime: 3,
                virtual_pnl: Cents(0),
                tf: None,
                bar_time: None,
                seq: None
            })
        );
        let Message::Signal(s) = parse("SIGNAL|EURUSD|WAIT|2|-15.30").unwrap() else {
            panic!()
        };
        assert_eq!(s.virtual_pnl, Cents(-1530));
        let Message::Ack(a) = parse("ACK|EURUSD|LONG_WEAK|OK|T:12345|P:1.08542").unwrap() else {
            panic!()
        };
        assert_eq!(
            a.outcome,
            Outcome::Ok {
                ticket: 12345,
                price: 1.08542
            }
        );
        let Message::Ack(a) = parse("ACK|EURUSD|LONG_MODERATE|FAIL|MARGIN").unwrap() else {
            panic!()
        };
        assert_eq!(a.outcome, Outcome::Fail { reason: "MARGIN" });
        let Message::Ack(a) = parse("ACK|USDJPY|LONG_STRONG|WAIT_SYNC|MISSED_ENTRY").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            a.outcome,
            Outcome::WaitSync {
                reason: "MISSED_ENTRY"
            }
        );
    }

    #[test]
    fn full_signal_round_trip() {
        let l =
            "SIGNAL|EURUSD|SHORT_STRONG|1|25.40|TF:M15|BT:2021-03-01T00:15:00Z|SEQ:7|DIR:-1|INT:3";
        let m = parse(l).unwrap();
        assert_eq!(m.to_line().unwrap(), l);
        // Tag order is free on input.
        let l2 =
            "SIGNAL|EURUSD|SHORT_STRONG|1|25.40|INT:3|SEQ:7|DIR:-1|BT:2021-03-01T00:15:00Z|TF:M15";
        assert_eq!(parse(l2).unwrap(), m);
    }

    #[test]
    fn a_signal_int_is_an_intensity_0_to_3_that_must_match_its_action() {
        for (a, int) in [
            (Action::Wait, "0"),
            (Action::ShortWeak, "1"),
            (Action::LongModerate, "2"),
            (Action::LongStrong, "3"),
        ] {
            let line = format!("SIGNAL|EURUSD|{a}|0|0.00|DIR:{}|INT:{int}", a.direction());
            let Ok(Message::Signal(m)) = parse(&line) else {
                panic!("{line}");
            };
            assert_eq!(
                m.action.intensity(),
                Intensity::new(int.parse().unwrap()).unwrap()
            );
        }
        for bad in ["4", "255", "256", "18446744073709551615"] {
            let line = format!("SIGNAL|EURUSD|LONG_STRONG|0|0.00|INT:{bad}");
            let e = parse(&line).unwrap_err();
            assert_eq!((e.field, e.reason), ("INT", Reason::OutOfRange), "{bad}");
        }
        let e = parse("SIGNAL|EURUSD|LONG_STRONG|0|0.00|INT:2").unwrap_err();
        assert_eq!((e.field, e.reason), ("INT", Reason::Inconsistent));
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse("SIGNAL|EURUSD|LONG_WEAK|x|0.00").unwrap_err();
        assert_eq!((e.field, e.reason), ("regime", Reason::NotAnInteger));
        let e = parse("SIGNAL|EURUSD|LONG_WEAK|3|0.001").unwrap_err();
        assert_eq!(
            (e.field, e.reason),
            ("virtual_pnl", Reason::TooManyDecimals)
        );
        let e = parse("SIGNAL|EURUSD|LONG_WEAK|3|0.00|DIR:-1").unwrap_err();
        assert_eq!((e.field, e.reason), ("DIR", Reason::Inconsistent));
        let e = parse("SIGNAL|EURUSD|LONG_WEAK|3|0.00|SEQ:1|SEQ:2").unwrap_err();
        assert_eq!((e.field, e.reason), ("SEQ", Reason::DuplicateTag));
        let e = parse("SIGNAL|EURUSD|LONG_WEAK|3|0.00|junk").unwrap_err();
        assert_eq!(e.reason, Reason::UnexpectedField);
        let e = parse("SIGNAL|EURUSD|LONG_WEAK|3").unwrap_err();
        assert_eq!((e.field, e.reason), ("virtual_pnl", Reason::Missing));
        let e = parse("BAR|EURUSD|M15|2021-03-01T00:15:00Z|1|1|1|1|5").unwrap_err();
        assert_eq!((e.field, e.reason), ("SEQ", Reason::Missing));
        let e = parse("BAR|EURUSD|M15|2021-03-01T00:15:00Z|1|1|0|1|5|SEQ:1").unwrap_err();
        assert_eq!((e.field, e.reason), ("low", Reason::NotPositive));
        let e = parse("ACK|EURUSD|WAIT|OK|T:5").unwrap_err();
        assert_eq!((e.field, e.reason), ("P", Reason::Missing));
        let e = parse("FOO|x").unwrap_err();
        assert_eq!(e.reason, Reason::UnknownKind);
        let long = "x".repeat(MAX_LINE + 1);
        assert_eq!(parse(&long).unwrap_err().err_code(), ErrCode::TooLong);
        assert_eq!(
            format!("{}", parse("SIGNAL|EUR|USD|LONG_WEAK|3|0.00").unwrap_err()),
            "SIGNAL action: unknown action"
        );
    }

    #[test]
    fn err_detail_keeps_pipes_and_hides_controls() {
        let m = parse("ERR|MALFORMED|SIGNAL|EURUSD|x").unwrap();
        assert_eq!(
            m,
            Message::Err(ErrLine {
                code: ErrCode::Malformed,
                detail: "SIGNAL|EURUSD|x"
            })
        );
        let e = ErrLine {
            code: ErrCode::Malformed,
            detail: "a\nb",
        };
        assert_eq!(e.to_string(), "ERR|MALFORMED|a?b");
        assert_eq!(parse("ERR|AUTH").unwrap().to_line().unwrap(), "ERR|AUTH");
    }

    #[test]
    fn hello_debug_hides_token() {
        let Message::Hello(h) = parse("HELLO|s3cr3t-token").unwrap() else {
            panic!()
        };
        assert_eq!(h.token, "s3cr3t-token");
        assert!(!format!("{h:?}").contains("s3cr3t"));
    }

    #[test]
    fn encode_refuses_bad_fields() {
        let m = Message::HistoryEnd(HistoryEnd {
            symbol: "EUR|USD",
            tf: Timeframe::M15,
            count: 1,
        });
        assert!(matches!(m.to_line(), Err(EncodeError::Invalid(_))));
        let mut small = [0u8; 8];
        assert_eq!(m.encode(&mut small), Err(EncodeError::TooLong));
    }

    #[test]
    fn cents() {
        assert_eq!(Cents::from_f64(-15.304).to_string(), "-15.30");
        assert_eq!(Cents::from_f64(0.005).to_string(), "0.01");
        assert_eq!(Cents(-5).to_string(), "-0.05");
        assert_eq!(parse_cents("-0.05"), Ok(Cents(-5)));
        assert_eq!(parse_cents("3.5"), Ok(Cents(350)));
        assert_eq!(Cents::from_f64(f64::NAN), Cents(0));
    }
}
