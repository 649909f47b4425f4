//! The bar CSV (DESIGN.md "Bar files"): header `time,open,high,low,close,volume`, one bar per
//! line, `time` as ISO-8601 UTC `YYYY-MM-DDTHH:MM:SSZ`. Bad lines are reported by line number.

use std::fmt::Write as _;
use std::io::BufRead;

use oracle_core::Bar;

/// The required header line.
pub const BAR_HEADER: &str = "time,open,high,low,close,volume";

/// A line of a bar CSV that could not be read as a bar.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// Reading failed (the reader stops after this).
    #[error("line {line}: read error: {source}")]
    Io {
        /// Line being read (1 = header).
        line: usize,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The first line is not [`BAR_HEADER`].
    #[error("line 1: header must be {BAR_HEADER:?}, found {found:?}")]
    BadHeader {
        /// What the first line holds.
        found: String,
    },
    /// A data line does not have 6 comma-separated fields.
    #[error("line {line}: expected 6 comma-separated fields, found {found}")]
    FieldCount {
        /// Line number (1-based, header = 1).
        line: usize,
        /// Fields found.
        found: usize,
    },
    /// The time is not `YYYY-MM-DDTHH:MM:SSZ`.
    #[error("line {line}: time {value:?} is not ISO-8601 UTC YYYY-MM-DDTHH:MM:SSZ")]
    BadTime {
        /// Line number.
        line: usize,
        /// The text found.
        value: String,
    },
    /// A price or the volume is not a number.
    #[error("line {line}: {field} {value:?} is not a number")]
    BadNumber {
        /// Line number.
        line: usize,
        /// The column.
        field: &'static str,
        /// The text found.
        value: String,
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
            | CsvError::BadNumber { line, .. } => *line,
        }
    }
}

/// A bar with the line it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BarLine {
    /// 1-based line number (the header is line 1).
    pub line: usize,
    /// The parsed bar (not yet validated: the twin does that).
    pub bar: Bar,
}

/// Streams the bars of a CSV; blank lines are skipped.
#[derive(Debug)]
pub struct BarReader<R> {
    input: R,
    line: usize,
    buf: String,
    done: bool,
}

impl<R: BufRead> BarReader<R> {
    /// Reads and checks the header.
    pub fn new(mut input: R) -> Result<Self, CsvError> {
        let mut header = String::new();
        input
            .read_line(&mut header)
            .map_err(|source| CsvError::Io { line: 1, source })?;
        let header = header.trim();
        let header = header.strip_prefix('\u{feff}').unwrap_or(header);
        if header != BAR_HEADER {
            return Err(CsvError::BadHeader {
                found: header.to_owned(),
            });
        }
        Ok(BarReader {
            input,
            line: 1,
            buf: String::new(),
            done: false,
        })
    }
}

impl<R: BufRead> Iterator for BarReader<R> {
    type Item = Result<BarLine, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.buf.clear();
            self.line += 1;
            match self.input.read_line(&mut self.buf) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    let text = self.buf.trim();
                    if text.is_empty() {
                        continue;
                    }
                    return Some(parse_line(self.line, text));
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

/// Parses one data line (already trimmed).
pub fn parse_line(line: usize, text: &str) -> Result<BarLine, CsvError> {
    let fields: Vec<&str> = text.split(',').collect();
    let [time, open, high, low, close, volume] = fields[..] else {
        return Err(CsvError::FieldCount {
            line,
            found: fields.len(),
        });
    };
    let time = parse_time(time.trim()).ok_or_else(|| CsvError::BadTime {
        line,
        value: time.to_owned(),
    })?;
    let num = |field: &'static str, s: &str| -> Result<f64, CsvError> {
        s.trim().parse::<f64>().map_err(|_| CsvError::BadNumber {
            line,
            field,
            value: s.to_owned(),
        })
    };
    Ok(BarLine {
        line,
        bar: Bar {
            time,
            open: num("open", open)?,
            high: num("high", high)?,
            low: num("low", low)?,
            close: num("close", close)?,
            volume: num("volume", volume)?,
        },
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month, day)` of a day count since 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` into seconds since the epoch; `None` if malformed.
pub fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || b[19] != b'Z' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = &b[from..to];
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            part.iter()
                .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')),
        )
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, se) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 59
    {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se)
}

/// Formats seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_time(t: i64) -> String {
    let mut s = String::with_capacity(20);
    write_time(&mut s, t);
    s
}

/// Appends `YYYY-MM-DDTHH:MM:SSZ` to `out`.
pub fn write_time(out: &mut String, t: i64) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    );
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
                   2021-03-01T01:00:00Z,1.1,1.2,1.0,nan,10\n";
        let items: Vec<_> = BarReader::new(csv.as_bytes()).unwrap().collect();
        assert_eq!(items.len(), 5);
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
        // NaN parses; the twin rejects it.
        assert!(items[4].as_ref().unwrap().bar.close.is_nan());
    }

    #[test]
    fn reader_refuses_a_wrong_header() {
        let err = BarReader::new("time,o,h,l,c,v\n".as_bytes()).unwrap_err();
        assert!(matches!(err, CsvError::BadHeader { .. }));
    }
}
