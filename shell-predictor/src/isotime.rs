//! ISO-8601 UTC times (`2021-03-01T00:15:00Z`) <-> Unix seconds, the only time format on the
//! wire, in the bar CSVs and in the traces. Proleptic Gregorian calendar, no leap seconds.

// One implementation of the format for the whole workspace: the loader's (bar CSVs, replay).
pub use oracle_model::{format_time as format, parse_time as parse};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for t in [0, 1_614_557_700, 951_782_400, -86_400, 4_102_444_799] {
            assert_eq!(parse(&format(t)), Some(t), "{}", format(t));
        }
        assert_eq!(format(1_614_557_700), "2021-03-01T00:15:00Z");
        assert_eq!(parse("2021-03-01T00:15:00Z"), Some(1_614_557_700));
    }

    #[test]
    fn rejects_bad_shapes() {
        for s in [
            "2021-02-29T00:00:00Z",
            "2021-03-01 00:15:00Z",
            "2021-03-01T24:00:00Z",
            "x",
        ] {
            assert_eq!(parse(s), None, "{s}");
        }
    }
}
