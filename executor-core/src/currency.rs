//! The account's deposit currency and the conversion of a position's P&L into it (sans-IO).
//!
//! A position's floating P&L at a quote is in the symbol's **quote** currency (EURJPY: yen); the
//! account's balance and equity are in its **deposit** currency (the broker's `TraderRes`
//! `depositAssetId`, named by `AssetListRes`). The prop-firm guard moves the last account read's
//! equity by each open position's P&L between two reads: exact only when the quote currency is
//! the deposit currency, or when the P&L is converted at a quote the executor holds of a
//! **conversion symbol** — one of the traded symbols whose two assets are the quote currency and
//! the deposit currency, in either order (`USDJPY` for yen on a USD account: divide by its
//! price; `GBPUSD` for pounds: multiply). With neither, the P&L stays in the quote currency (the
//! next account read corrects the equity) and `oracle status` says which symbols are
//! approximate between reads.

use std::collections::HashMap;

/// How a quote currency becomes the deposit currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conversion {
    /// The quote currency is the deposit currency.
    Same,
    /// Multiply by the price of this symbol (its base is the quote currency, its quote the
    /// deposit currency: GBPUSD for GBP on a USD account).
    Times(String),
    /// Divide by the price of this symbol (its base is the deposit currency, its quote the
    /// quote currency: USDJPY for JPY on a USD account).
    Over(String),
}

/// The deposit currency and each traded symbol's (base, quote) assets, as the broker names them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Currencies {
    /// The account's deposit currency (`USD`).
    pub deposit: String,
    /// Symbol (the model's name) → (base asset, quote asset).
    pub assets: HashMap<String, (String, String)>,
}

/// The middle of a quote.
fn mid((bid, ask): (f64, f64)) -> f64 {
    (bid + ask) / 2.0
}

impl Currencies {
    /// How `symbol`'s quote currency becomes the deposit currency: `None` when its assets are
    /// not known or no traded symbol converts it.
    pub fn conversion(&self, symbol: &str) -> Option<Conversion> {
        let (_, quote) = self.assets.get(symbol)?;
        if quote.eq_ignore_ascii_case(&self.deposit) {
            return Some(Conversion::Same);
        }
        let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        // Sorted for a choice that does not depend on the map's order.
        let mut names: Vec<&String> = self.assets.keys().collect();
        names.sort();
        for n in &names {
            let (b, q) = &self.assets[*n];
            if same(b, quote) && same(q, &self.deposit) {
                return Some(Conversion::Times((*n).clone()));
            }
        }
        for n in &names {
            let (b, q) = &self.assets[*n];
            if same(b, &self.deposit) && same(q, quote) {
                return Some(Conversion::Over((*n).clone()));
            }
        }
        None
    }

    /// `amount` in `symbol`'s quote currency, in the deposit currency at the conversion
    /// symbol's latest quote (`quotes`: symbol → (bid, ask)); `None` when it cannot be converted
    /// (no conversion symbol, or no quote of it yet).
    pub fn to_deposit(
        &self,
        symbol: &str,
        amount: f64,
        quotes: &HashMap<String, (f64, f64)>,
    ) -> Option<f64> {
        let rate = |s: &String| {
            quotes
                .get(s)
                .map(|q| mid(*q))
                .filter(|p| p.is_finite() && *p > 0.0)
        };
        match self.conversion(symbol)? {
            Conversion::Same => Some(amount),
            Conversion::Times(s) => Some(amount * rate(&s)?),
            Conversion::Over(s) => Some(amount / rate(&s)?),
        }
    }

    /// The traded symbols (sorted) whose P&L between two account reads is in their quote
    /// currency, not the deposit currency: known assets, another quote currency, and no
    /// conversion symbol quoted in `quotes`.
    pub fn approximate(&self, quotes: &HashMap<String, (f64, f64)>) -> Vec<String> {
        let mut out: Vec<String> = self
            .assets
            .keys()
            .filter(|s| self.to_deposit(s, 1.0, quotes).is_none())
            .cloned()
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd_account(symbols: &[(&str, &str, &str)]) -> Currencies {
        Currencies {
            deposit: "USD".into(),
            assets: symbols
                .iter()
                .map(|(s, b, q)| (s.to_string(), (b.to_string(), q.to_string())))
                .collect(),
        }
    }

    fn quotes(q: &[(&str, f64, f64)]) -> HashMap<String, (f64, f64)> {
        q.iter()
            .map(|(s, b, a)| (s.to_string(), (*b, *a)))
            .collect()
    }

    #[test]
    fn a_pnl_in_the_deposit_currency_is_kept_as_it_is() {
        let c = usd_account(&[("EURUSD", "EUR", "USD")]);
        assert_eq!(c.conversion("EURUSD"), Some(Conversion::Same));
        assert_eq!(
            c.to_deposit("EURUSD", -123.45, &HashMap::new()),
            Some(-123.45)
        );
        assert!(c.approximate(&HashMap::new()).is_empty());
    }

    #[test]
    fn a_yen_pnl_is_divided_by_the_usdjpy_quote_the_executor_holds() {
        let c = usd_account(&[("EURJPY", "EUR", "JPY"), ("USDJPY", "USD", "JPY")]);
        assert_eq!(
            c.conversion("EURJPY"),
            Some(Conversion::Over("USDJPY".into()))
        );
        // −15 000 yen at USDJPY 149.99/150.01 (mid 150): −100 dollars.
        let q = quotes(&[("USDJPY", 149.99, 150.01)]);
        let usd = c.to_deposit("EURJPY", -15_000.0, &q).expect("converted");
        assert!((usd - -100.0).abs() < 1e-9, "{usd}");
        // USDJPY's own P&L is in yen too.
        let usd = c.to_deposit("USDJPY", 300.0, &q).expect("converted");
        assert!((usd - 2.0).abs() < 1e-9, "{usd}");
        assert!(c.approximate(&q).is_empty());
    }

    #[test]
    fn a_pound_pnl_is_multiplied_by_the_gbpusd_quote() {
        let c = usd_account(&[("EURGBP", "EUR", "GBP"), ("GBPUSD", "GBP", "USD")]);
        assert_eq!(
            c.conversion("EURGBP"),
            Some(Conversion::Times("GBPUSD".into()))
        );
        let q = quotes(&[("GBPUSD", 1.2499, 1.2501)]);
        let usd = c.to_deposit("EURGBP", 200.0, &q).expect("converted");
        assert!((usd - 250.0).abs() < 1e-9, "{usd}");
    }

    #[test]
    fn without_a_conversion_symbol_or_its_quote_the_pnl_is_not_converted_and_named_approximate() {
        // No symbol between yen and dollars.
        let c = usd_account(&[("EURUSD", "EUR", "USD"), ("EURJPY", "EUR", "JPY")]);
        assert_eq!(c.conversion("EURJPY"), None);
        let q = quotes(&[("EURUSD", 1.1, 1.1), ("EURJPY", 160.0, 160.02)]);
        assert_eq!(c.to_deposit("EURJPY", -15_000.0, &q), None);
        assert_eq!(c.approximate(&q), vec!["EURJPY".to_string()]);
        // A conversion symbol not quoted yet: approximate until its first quote.
        let c = usd_account(&[("EURJPY", "EUR", "JPY"), ("USDJPY", "USD", "JPY")]);
        assert_eq!(c.to_deposit("EURJPY", -15_000.0, &HashMap::new()), None);
        assert_eq!(
            c.approximate(&HashMap::new()),
            vec!["EURJPY".to_string(), "USDJPY".to_string()]
        );
        // A symbol whose assets are not known is not converted (and not named).
        assert_eq!(c.to_deposit("US500", 5.0, &HashMap::new()), None);
    }

    #[test]
    fn the_deposit_currency_matches_whatever_its_case() {
        let c = Currencies {
            deposit: "usd".into(),
            ..usd_account(&[("EURUSD", "EUR", "USD")])
        };
        assert_eq!(c.conversion("EURUSD"), Some(Conversion::Same));
    }
}
