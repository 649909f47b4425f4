//! The vocabulary every part of the system shares about *which* bars: the [`Timeframe`] (the
//! cTrader trendbar periods), the [`Symbol`] name and the [`StreamKey`] (symbol + timeframe) that
//! keys a stream of bars. Text exists only at the edges (IPC lines, files, protobuf): it is parsed
//! once there into these types ([`Timeframe::from_name`], [`Symbol::new`], [`StreamKey::parse`]),
//! and every error names the text at fault.
//!
//! Everything here is `Copy` and allocation-free (a [`Symbol`] holds its bytes inline), so keys
//! cost no heap and compare without touching strings on the heap.

use core::fmt;

/// Maximum length of a symbol name, in bytes.
pub const MAX_SYMBOL: usize = 32;

/// Bar timeframes: the cTrader trendbar periods, shortest first (the derived order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum Timeframe {
    M1,
    M2,
    M3,
    M4,
    M5,
    M10,
    M15,
    M30,
    H1,
    H4,
    H12,
    D1,
    W1,
    MN1,
}

impl Timeframe {
    /// Every timeframe, shortest first.
    pub const ALL: [Timeframe; 14] = [
        Timeframe::M1,
        Timeframe::M2,
        Timeframe::M3,
        Timeframe::M4,
        Timeframe::M5,
        Timeframe::M10,
        Timeframe::M15,
        Timeframe::M30,
        Timeframe::H1,
        Timeframe::H4,
        Timeframe::H12,
        Timeframe::D1,
        Timeframe::W1,
        Timeframe::MN1,
    ];

    /// The timeframes a model may trade and the executor streams: every one with a fixed
    /// length (all but `MN1`, which the cTrader session refuses for bar streams).
    pub const STREAMED: [Timeframe; 13] = [
        Timeframe::M1,
        Timeframe::M2,
        Timeframe::M3,
        Timeframe::M4,
        Timeframe::M5,
        Timeframe::M10,
        Timeframe::M15,
        Timeframe::M30,
        Timeframe::H1,
        Timeframe::H4,
        Timeframe::H12,
        Timeframe::D1,
        Timeframe::W1,
    ];

    /// The name on the wire and in files (`M15`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Timeframe::M1 => "M1",
            Timeframe::M2 => "M2",
            Timeframe::M3 => "M3",
            Timeframe::M4 => "M4",
            Timeframe::M5 => "M5",
            Timeframe::M10 => "M10",
            Timeframe::M15 => "M15",
            Timeframe::M30 => "M30",
            Timeframe::H1 => "H1",
            Timeframe::H4 => "H4",
            Timeframe::H12 => "H12",
            Timeframe::D1 => "D1",
            Timeframe::W1 => "W1",
            Timeframe::MN1 => "MN1",
        }
    }

    /// The same name as [`Timeframe::as_str`], under the name the simulator's periods had.
    pub const fn name(self) -> &'static str {
        self.as_str()
    }

    /// Parses the exact name (`M15`; case matters, as on the wire).
    pub fn from_name(s: &str) -> Option<Timeframe> {
        Timeframe::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Nominal length in seconds (MN1 counted as 31 days: an upper bound, used for staleness).
    pub const fn seconds(self) -> i64 {
        match self {
            Timeframe::M1 => 60,
            Timeframe::M2 => 120,
            Timeframe::M3 => 180,
            Timeframe::M4 => 240,
            Timeframe::M5 => 300,
            Timeframe::M10 => 600,
            Timeframe::M15 => 900,
            Timeframe::M30 => 1800,
            Timeframe::H1 => 3600,
            Timeframe::H4 => 14_400,
            Timeframe::H12 => 43_200,
            Timeframe::D1 => 86_400,
            Timeframe::W1 => 604_800,
            Timeframe::MN1 => 2_678_400,
        }
    }

    /// Fixed length in seconds; `None` for `MN1` (calendar months differ).
    pub const fn fixed_seconds(self) -> Option<i64> {
        match self {
            Timeframe::MN1 => None,
            t => Some(t.seconds()),
        }
    }

    /// Fixed length in milliseconds (the Open API's time unit); `None` for `MN1`.
    pub const fn fixed_ms(self) -> Option<i64> {
        match self.fixed_seconds() {
            Some(s) => Some(s * 1000),
            None => None,
        }
    }

    /// True for a timeframe a model may trade ([`Timeframe::STREAMED`]).
    pub const fn is_streamed(self) -> bool {
        self.fixed_seconds().is_some()
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::str::FromStr for Timeframe {
    type Err = StreamKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timeframe::from_name(s).ok_or(StreamKeyError::Timeframe)
    }
}

/// True for 1–[`MAX_SYMBOL`] bytes of `A-Z a-z 0-9 . _ - #`: the symbol names IPC lines, files
/// and the broker carry.
pub fn valid_symbol(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SYMBOL
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'#'))
}

/// A symbol name (`EURUSD`), checked by [`valid_symbol`] and held inline: `Copy`, no heap.
/// Ordered as its text.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Symbol {
    len: u8,
    bytes: [u8; MAX_SYMBOL],
}

impl Symbol {
    /// The symbol named `s`, or [`StreamKeyError::Symbol`] when `s` is not a valid name.
    pub fn new(s: &str) -> Result<Symbol, StreamKeyError> {
        if !valid_symbol(s) {
            return Err(StreamKeyError::Symbol);
        }
        let mut bytes = [0u8; MAX_SYMBOL];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Ok(Symbol {
            // At most MAX_SYMBOL (32) bytes: fits.
            len: s.len() as u8,
            bytes,
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored (`valid_symbol`), so this cannot fail.
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl PartialOrd for Symbol {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Symbol {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Symbol {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Symbol {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl core::str::FromStr for Symbol {
    type Err = StreamKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Symbol::new(s)
    }
}

/// Which bars: one symbol on one timeframe (`EURUSD M15`). Ordered by symbol text, then by
/// timeframe length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    /// The symbol.
    pub symbol: Symbol,
    /// The timeframe.
    pub timeframe: Timeframe,
}

impl StreamKey {
    /// The key of `symbol` on `timeframe`.
    pub const fn new(symbol: Symbol, timeframe: Timeframe) -> StreamKey {
        StreamKey { symbol, timeframe }
    }

    /// Parses the two names as an edge gives them (`"EURUSD"`, `"M15"`); the error says which
    /// of the two is at fault.
    pub fn parse(symbol: &str, timeframe: &str) -> Result<StreamKey, StreamKeyError> {
        Ok(StreamKey {
            symbol: Symbol::new(symbol)?,
            timeframe: Timeframe::from_name(timeframe).ok_or(StreamKeyError::Timeframe)?,
        })
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.symbol, self.timeframe)
    }
}

/// Which part of a stream's text was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKeyError {
    /// The symbol is empty, longer than [`MAX_SYMBOL`] bytes, or has a byte outside
    /// `A-Z a-z 0-9 . _ - #`.
    Symbol,
    /// The timeframe is not one of [`Timeframe::ALL`] (exact case).
    Timeframe,
}

impl fmt::Display for StreamKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StreamKeyError::Symbol => "symbol is not 1-32 bytes of A-Z a-z 0-9 . _ - #",
            StreamKeyError::Timeframe => {
                "timeframe is not one of M1 M2 M3 M4 M5 M10 M15 M30 H1 H4 H12 D1 W1 MN1"
            }
        })
    }
}

impl core::error::Error for StreamKeyError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_timeframe_parses_back_from_its_name_and_nothing_else_does() {
        for t in Timeframe::ALL {
            assert_eq!(Timeframe::from_name(t.as_str()), Some(t));
            assert_eq!(t.as_str().parse::<Timeframe>(), Ok(t));
        }
        for bad in ["", "m15", "H2", "M15 ", "MN", "D"] {
            assert_eq!(Timeframe::from_name(bad), None, "{bad:?}");
        }
        let mut sorted = Timeframe::ALL;
        sorted.sort_by_key(|t| t.seconds());
        assert_eq!(sorted, Timeframe::ALL, "ALL is shortest first");
    }

    #[test]
    fn the_streamed_timeframes_are_the_fixed_length_ones() {
        let fixed: usize = Timeframe::ALL.iter().filter(|t| t.is_streamed()).count();
        assert_eq!(fixed, Timeframe::STREAMED.len());
        for t in Timeframe::STREAMED {
            assert_eq!(t.fixed_seconds(), Some(t.seconds()));
            assert_eq!(t.fixed_ms(), Some(t.seconds() * 1000));
            assert_eq!(t.name(), t.as_str());
        }
        assert_eq!(Timeframe::MN1.fixed_seconds(), None);
        assert_eq!(Timeframe::MN1.fixed_ms(), None);
        assert!(!Timeframe::STREAMED.contains(&Timeframe::MN1));
    }

    #[test]
    fn a_symbol_holds_its_name_inline_and_refuses_a_bad_one() {
        let s = Symbol::new("EURUSD").unwrap();
        assert_eq!(s.as_str(), "EURUSD");
        assert_eq!(s, "EURUSD");
        let long = "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX";
        assert_eq!(long.len(), MAX_SYMBOL);
        assert_eq!(Symbol::new(long).unwrap().as_str(), long);
        let too_long = "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX";
        for bad in ["", "EUR USD", "EURUSD|M15", "ÉURUSD", too_long] {
            assert_eq!(Symbol::new(bad), Err(StreamKeyError::Symbol), "{bad:?}");
        }
        assert_eq!(
            Symbol::new("US500.cash#-_").unwrap().as_str(),
            "US500.cash#-_"
        );
    }

    #[test]
    fn symbols_order_as_their_text() {
        let names = ["AUDUSD", "EURUSD", "EURUSD.x", "EURUSDm", "GBP", "US500"];
        for a in names {
            for b in names {
                let (sa, sb) = (Symbol::new(a).unwrap(), Symbol::new(b).unwrap());
                assert_eq!(sa.cmp(&sb), a.cmp(b), "{a} vs {b}");
                assert_eq!(sa == sb, a == b);
            }
        }
    }

    #[test]
    fn a_stream_key_is_parsed_once_and_names_the_part_at_fault() {
        let k = StreamKey::parse("EURUSD", "M15").unwrap();
        assert_eq!(k.symbol, "EURUSD");
        assert_eq!(k.timeframe, Timeframe::M15);
        assert_eq!(
            StreamKey::parse("EURUSD", "m15"),
            Err(StreamKeyError::Timeframe)
        );
        assert_eq!(
            StreamKey::parse("EUR/USD", "M15"),
            Err(StreamKeyError::Symbol)
        );
        let mut text = heapless_text::<64>();
        fmt::write(&mut text, format_args!("{k}")).unwrap();
        assert_eq!(text.as_str(), "EURUSD M15");
        let mut err = heapless_text::<128>();
        fmt::write(&mut err, format_args!("{}", StreamKeyError::Timeframe)).unwrap();
        assert!(err.as_str().contains("timeframe"), "{}", err.as_str());
    }

    #[test]
    fn stream_keys_order_by_symbol_then_timeframe_length() {
        let k = |s, t| StreamKey::parse(s, t).unwrap();
        let mut keys = [k("GBPUSD", "M15"), k("EURUSD", "H1"), k("EURUSD", "M15")];
        keys.sort();
        assert_eq!(
            keys,
            [k("EURUSD", "M15"), k("EURUSD", "H1"), k("GBPUSD", "M15")]
        );
    }

    /// A fixed-capacity text buffer (the core is `no_std` without `alloc`).
    struct Text<const N: usize> {
        buf: [u8; N],
        len: usize,
    }

    impl<const N: usize> Text<N> {
        fn as_str(&self) -> &str {
            core::str::from_utf8(&self.buf[..self.len]).unwrap()
        }
    }

    impl<const N: usize> fmt::Write for Text<N> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.len + s.len();
            if end > N {
                return Err(fmt::Error);
            }
            self.buf[self.len..end].copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }

    fn heapless_text<const N: usize>() -> Text<N> {
        Text {
            buf: [0; N],
            len: 0,
        }
    }
}
