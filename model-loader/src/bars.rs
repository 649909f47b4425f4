//! The bar CSV (DESIGN.md "Bar files"; the grammar is `docs/contract.md` §1 "Bar files", shared
//! with the Python reader `oracle_training.bars`): header `time,open,high,low,close,volume`, one
//! bar per line, `time` as ISO-8601 UTC `YYYY-MM-DDTHH:MM:SSZ`, numbers in ASCII decimal
//! (`-?[0-9]+(\.[0-9]+)?`), no whitespace, no byte-order mark; `\n` or `\r\n` ends a line and an
//! empty line is skipped. A line that breaks the grammar or the contract's bar rules (§1) is
//! reported by line number with the same message the Python reader gives, and skipped.

use std::fmt::Write as _;
use std::io::BufRead;

use oracle_core::Bar;

/// The required header line.
pub const BAR_HEADER: &str = "time,open,high,low,close,volume";

/// The data columns after `time`, in order.
const COLUMNS: [&str; 5] = ["open", "high", "low", "close", "volume"];

/// A line of a bar CSV that could not be read as a bar. The `Display` text is the reason alone
/// (the contract's wording); [`CsvError::line`] gives the line.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// Reading failed (the reader stops after this).
    #[error("read error: {source}")]
    Io {
        /// Line being read (1 = header).
        line: usize,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The first line is not [`BAR_HEADER`].
    #[error(
        "header must be \"{BAR_HEADER}\", found {}{}",
        quote(found),
        bom_hint(found)
    )]
    BadHeader {
        /// What the first line holds.
        found: String,
    },
    /// A data line does not have 6 comma-separated fields.
    #[error("expected 6 comma-separated fields, found {found}")]
    FieldCount {
        /// Line number (1-based, header = 1).
        line: usize,
        /// Fields found.
        found: usize,
    },
    /// The time is not `YYYY-MM-DDTHH:MM:SSZ`.
    #[error("time {} is not ISO-8601 UTC YYYY-MM-DDTHH:MM:SSZ", quote(value))]
    BadTime {
        /// Line number.
        line: usize,
        /// The text found.
        value: String,
    },
    /// A price or the volume is not an ASCII decimal number.
    #[error("{field} {} is not a decimal number", quote(value))]
    BadNumber {
        /// Line number.
        line: usize,
        /// The column.
        field: &'static str,
        /// The text found.
        value: String,
    },
    /// A price or the volume is too large for an f64.
    #[error("{field} {} is not a finite number", quote(value))]
    NotFinite {
        /// Line number.
        line: usize,
        /// The column.
        field: &'static str,
        /// The text found.
        value: String,
    },
    /// A price is zero or negative.
    #[error("{field} {} is not positive", quote(value))]
    NotPositive {
        /// Line number.
        line: usize,
        /// The column.
        field: &'static str,
        /// The text found.
        value: String,
    },
    /// `high < low`.
    #[error("high {} is below low {}", quote(high), quote(low))]
    HighBelowLow {
        /// Line number.
        line: usize,
        /// The high as written.
        high: String,
        /// The low as written.
        low: String,
    },
    /// The volume is negative.
    #[error("volume {} is negative", quote(value))]
    NegativeVolume {
        /// Line number.
        line: usize,
        /// The text found.
        value: String,
    },
    /// The time is not after the previous accepted bar's (a duplicate or out of order).
    #[error(
        "time {} is not after the previous bar's time {}",
        format_time(*time),
        format_time(*previous)
    )]
    NotAfter {
        /// Line number.
        line: usize,
        /// The bar's time.
        time: i64,
        /// The previous accepted bar's time.
        previous: i64,
    },
}

impl CsvError {
    /// The line the error is about.
    pub fn line(&self) -> usize {
        match self {
            CsvError::BadHeader { .. } => 1,
            CsvError::Io { line, .. }
            | CsvError::FieldCount { line, .. }
            | CsvError::BadTime { line, .. }
            | CsvError::BadNumber { line, .. }
            | CsvError::NotFinite { line, .. }
            | CsvError::NotPositive { line, .. }
            | CsvError::HighBelowLow { line, .. }
            | CsvError::NegativeVolume { line, .. }
            | CsvError::NotAfter { line, .. } => *line,
        }
    }
}

/// `s` in double quotes, as the bar-file messages print a field (contract §1): printable ASCII
/// as is, `"` and `\` escaped with `\`, any other character as `\u{HEX}` (lower-case hex).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            _ => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

fn bom_hint(found: &str) -> &'static str {
    if found.starts_with('\u{feff}') {
        " (the file starts with a UTF-8 byte-order mark; save it without one)"
    } else {
        ""
    }
}

/// A bar with the line it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BarLine {
    /// 1-based line number (the header is line 1).
    pub line: usize,
    /// The parsed bar, checked against the contract's bar rules (§1).
    pub bar: Bar,
}

/// Streams the bars of a CSV: each line that breaks the grammar or the bar rules (including a
/// time not after the previous accepted bar's) is an error naming its line; empty lines are
/// skipped.
#[derive(Debug)]
pub struct BarReader<R> {
    input: R,
    line: usize,
    buf: Vec<u8>,
    last: Option<i64>,
    done: bool,
}

/// Reads one line into `buf` without its `\n` or `\r\n`; `Ok(false)` at the end of the input.
fn read_line<R: BufRead>(input: &mut R, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    buf.clear();
    if input.read_until(b'\n', buf)? == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    Ok(true)
}

impl<R: BufRead> BarReader<R> {
    /// Reads and checks the header.
    pub fn new(mut input: R) -> Result<Self, CsvError> {
        let mut buf = Vec::new();
        read_line(&mut input, &mut buf).map_err(|source| CsvError::Io { line: 1, source })?;
        let header = String::from_utf8_lossy(&buf);
        if header != BAR_HEADER {
            return Err(CsvError::BadHeader {
                found: header.into_owned(),
            });
        }
        Ok(BarReader {
            input,
            line: 1,
            buf,
            last: None,
            done: false,
        })
    }
}

impl<R: BufRead> Iterator for BarReader<R> {
    type Item = Result<BarLine, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.line += 1;
            match read_line(&mut self.input, &mut self.buf) {
                Ok(false) => self.done = true,
                Ok(true) => {
                    if self.buf.is_empty() {
                        continue;
                    }
                    let text = String::from_utf8_lossy(&self.buf);
                    let item = parse_line(self.line, &text).and_then(|b| match self.last {
                        Some(previous) if b.bar.time <= previous => Err(CsvError::NotAfter {
                            line: b.line,
                            time: b.bar.time,
                            previous,
                        }),
                        _ => Ok(b),
                    });
                    if let Ok(b) = &item {
                        self.last = Some(b.bar.time);
                    }
                    return Some(item);
                }
                Err(source) => {
                    self.done = true;
                    return Some(Err(CsvError::Io {
                        line: self.line,
                        source,
                    }));
                }
            }
        }
        None
    }
}

/// Parses an ASCII decimal `-?[0-9]+(\.[0-9]+)?` (contract §1); `None` for anything else.
pub fn parse_decimal(s: &str) -> Option<f64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || !frac.is_none_or(all_digits) {
        return None;
    }
    s.parse().ok()
}

/// Parses one data line (without its line end) and checks the bar on its own (prices, volume;
/// not its time against the previous bar, which [`BarReader`] does).
pub fn parse_line(line: usize, text: &str) -> Result<BarLine, CsvError> {
    let fields: Vec<&str> = text.split(',').collect();
    let [time, open, high, low, close, volume] = fields[..] else {
        return Err(CsvError::FieldCount {
            line,
            found: fields.len(),
        });
    };
    let time = parse_time(time).ok_or_else(|| CsvError::BadTime {
        line,
        value: time.to_owned(),
    })?;
    let texts = [open, high, low, close, volume];
    let mut v = [0.0; 5];
    for ((slot, field), text) in v.iter_mut().zip(COLUMNS).zip(texts) {
        *slot = parse_decimal(text).ok_or_else(|| CsvError::BadNumber {
            line,
            field,
            value: text.to_owned(),
        })?;
    }
    for ((x, field), text) in v.iter().zip(COLUMNS).zip(texts) {
        if !x.is_finite() {
            return Err(CsvError::NotFinite {
                line,
                field,
                value: text.to_owned(),
            });
        }
    }
    for ((x, field), text) in v.iter().zip(COLUMNS).zip(texts).take(4) {
        if *x <= 0.0 {
            return Err(CsvError::NotPositive {
                line,
                field,
                value: text.to_owned(),
            });
        }
    }
    if v[1] < v[2] {
        return Err(CsvError::HighBelowLow {
            line,
            high: high.to_owned(),
            low: low.to_owned(),
        });
    }
    if v[4] < 0.0 {
        return Err(CsvError::NegativeVolume {
            line,
            value: volume.to_owned(),
        });
    }
    let [open, high, low, close, volume] = v;
    Ok(BarLine {
        line,
        bar: Bar {
            time,
            open,
            high,
            low,
            close,
            volume,
        },
    })
}

/// Parses exactly `YYYY-MM-DDTHH:MM:SSZ` (ASCII digits, any four-digit year) into seconds since the
/// epoch; `None` if malformed or an impossible date/time. The workspace's one implementation
/// ([`oracle_ipc::time`]).
pub use oracle_ipc::time::parse_iso as parse_time;

/// Formats seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_time(t: i64) -> String {
    let mut s = String::with_capacity(20);
    write_time(&mut s, t);
    s
}

/// Appends `YYYY-MM-DDTHH:MM:SSZ` to `out`.
pub fn write_time(out: &mut String, t: i64) {
    // Writing to a String cannot fail.
    let _ = write!(out, "{}", oracle_ipc::IsoUtc(t));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_round_trip() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("2017-11-29T15:00:00Z"), Some(1_511_967_600));
        assert_eq!(format_time(1_511_967_600), "2017-11-29T15:00:00Z");
        assert_eq!(parse_time("2024-02-29T23:59:59Z"), Some(1_709_251_199));
        for t in [
            0,
            86_399,
            951_782_400,
            1_709_251_199,
            4_102_444_800,
            -86_400,
        ] {
            assert_eq!(parse_time(&format_time(t)), Some(t), "{t}");
        }
        for bad in [
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-01-01 00:00:00Z",
            "2023-01-01T24:00:00Z",
            "2023-01-01T00:00:00",
            "2023-1-01T00:00:00Z",
            "+023-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn reader_reports_bad_lines_by_number() {
        let csv = "time,open,high,low,close,volume\n\
                   2021-03-01T00:15:00Z,1.1,1.2,1.0,1.15,10\n\
                   \n\
                   2021-03-01T00:30:00Z,1.1,1.2,1.0\n\
                   2021-03-01T00:45:00Z,1.1,abc,1.0,1.15,10\n\
                   yesterday,1.1,1.2,1.0,1.15,10\n\
                   2021-03-01T01:00:00Z,1.1,1.2,1.0,nan,10\n\
                   2021-03-01T00:15:00Z,1.1,1.2,1.0,1.15,10\n";
        let items: Vec<_> = BarReader::new(csv.as_bytes()).unwrap().collect();
        assert_eq!(items.len(), 6);
        assert_eq!(items[0].as_ref().unwrap().line, 2);
        assert!(matches!(
            items[1],
            Err(CsvError::FieldCount { line: 4, found: 4 })
        ));
        assert!(matches!(
            items[2],
            Err(CsvError::BadNumber {
                line: 5,
                field: "high",
                ..
            })
        ));
        assert!(matches!(items[3], Err(CsvError::BadTime { line: 6, .. })));
        // `nan` is not an ASCII decimal.
        assert!(matches!(
            items[4],
            Err(CsvError::BadNumber {
                line: 7,
                field: "close",
                ..
            })
        ));
        let e = items[5].as_ref().unwrap_err();
        assert_eq!(e.line(), 8);
        assert_eq!(
            e.to_string(),
            "time 2021-03-01T00:15:00Z is not after the previous bar's time 2021-03-01T00:15:00Z"
        );
    }

    #[test]
    fn reader_refuses_a_wrong_header() {
        let err = BarReader::new("time,o,h,l,c,v\n".as_bytes()).unwrap_err();
        assert!(matches!(err, CsvError::BadHeader { .. }));
    }

    #[test]
    fn a_byte_order_mark_is_refused_and_named() {
        let err =
            BarReader::new("\u{feff}time,open,high,low,close,volume\n".as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "header must be \"time,open,high,low,close,volume\", found \
             \"\\u{feff}time,open,high,low,close,volume\" (the file starts with a UTF-8 \
             byte-order mark; save it without one)"
        );
    }

    #[test]
    fn decimals_are_ascii_digits_only() {
        for ok in ["0", "1", "1.5", "-1.25", "007", "1.000"] {
            assert!(parse_decimal(ok).is_some(), "{ok}");
        }
        for bad in [
            "", "1_1", "1_000", "\u{ff11}", "+1.0", "1e3", ".5", "1.", "nan", "inf", " 1", "1 ",
            "-", "--1", "1.2.3", "0x10",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn quote_escapes_everything_but_printable_ascii() {
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote("\t\"\\\u{ff11}"), "\"\\u{9}\\\"\\\\\\u{ff11}\"");
    }
}
