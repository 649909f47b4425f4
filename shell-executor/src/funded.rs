//! A funded account's optional rules, the shell's part (`docs/propfirm.md`, "Funded-account
//! restrictions"): the news calendar file read at start (`risk.news.file`, relative to the
//! config file's folder; a bad line stops the start naming `file:line`), each symbol's weekend
//! asked of the live broker's trading calendars (`Broker::week_end`; the paper book alone, in a
//! dry run, asks the session it follows) and handed to the core,
//! and `Timer::Weekend`'s closes driven. The decisions are the core's
//! (`oracle_executor_core::restrictions`, `SideCore::handle_weekend`).
//!
//! A change of the news file takes effect at the next start. The weekends are recomputed from
//! the broker's schedule at each start and once each weekend has passed (nothing journaled).

use std::path::Path;

use anyhow::{Context, bail};
use tracing::info;

use oracle_executor_core::restrictions::{Restrictions, parse_news};

use crate::broker::Broker;
use crate::config::ExecutorConfig;
use crate::engine::Engine;

/// The optional rules of `cfg` with the news file's events (`risk.news.file`, relative to
/// `config_path`'s folder). Errors name the key, the file and each bad line (`file:line`).
pub fn restrictions(cfg: &ExecutorConfig, config_path: &Path) -> anyhow::Result<Restrictions> {
    let events = match &cfg.risk.news {
        None => Vec::new(),
        Some(n) => {
            let path = config_path
                .parent()
                .unwrap_or_else(|| Path::new("."))
                .join(&n.file);
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "risk.news.file: cannot read the news calendar {}",
                    path.display()
                )
            })?;
            let shown = path.display().to_string();
            match parse_news(&shown, &text) {
                Ok(ev) => {
                    info!(file = %shown, events = ev.len(), minutes = n.minutes,
                        "news calendar loaded: no order within ±{} minutes of its events on the instruments they target", n.minutes);
                    ev
                }
                Err(errs) => bail!(
                    "risk.news.file: the news calendar has {} bad line(s):\n{}",
                    errs.len(),
                    errs.join("\n")
                ),
            }
        }
    };
    if let Some(m) = cfg.risk.flat_before_weekend_minutes {
        info!(
            minutes = m,
            "flat before the weekend: every position closed {m} minutes before its market's last close of the week"
        );
    }
    Ok(Restrictions::new(&cfg.risk, events))
}

impl<B: Broker> Engine<B> {
    /// Asks the broker's calendars the weekend of each configured symbol that needs it (never
    /// asked, past, or none known a minute ago) at `now` (Unix s) and hands them to the core:
    /// the live broker's, else (the paper book alone, `--dry-run`) the market the paper book
    /// follows. Nothing to do with the weekend rule off.
    pub fn refresh_week_ends(&mut self, now: i64) {
        let now_ms = now.saturating_mul(1000);
        for symbol in self.core.week_ends_due(now_ms) {
            let we = match (&self.core.live, &self.core.paper) {
                (Some(l), _) => l.broker.week_end(&symbol, now_ms),
                (None, Some(p)) => p.broker.week_end(&symbol, now_ms),
                (None, None) => None,
            };
            if let Some(w) = we {
                info!(symbol = %symbol, close = %oracle_ipc::Iso(w.close_ms.div_euclid(1000)),
                    open = %oracle_ipc::Iso(w.open_ms.div_euclid(1000)),
                    "flat before the weekend: the week's last close from the broker's schedule");
            }
            self.core.set_week_end(&symbol, now_ms, we);
        }
    }

    /// The weekends refreshed ([`Engine::refresh_week_ends`]), then `Timer::Weekend` armed
    /// (`now` the executor's clock, Unix s; `now_ms` the timers').
    pub fn arm_weekend(&mut self, now: i64, now_ms: i64) {
        self.refresh_week_ends(now);
        self.core.arm_weekend(now.saturating_mul(1000), now_ms);
    }

    /// `Timer::Weekend` fired: each side closes its positions on the symbols in their flat
    /// window; the closes go out now.
    pub async fn on_weekend(&mut self, now: i64, now_ms: i64) {
        if !self
            .core
            .handle_weekend(now.saturating_mul(1000), now_ms)
            .is_empty()
        {
            self.drive_sides(now).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("oracle-funded-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    fn cfg(news: serde_json::Value) -> ExecutorConfig {
        crate::config::from_value(&serde_json::json!({"risk": {"news": news}})).expect("config")
    }

    #[test]
    fn the_news_file_is_read_beside_the_config_and_its_events_reach_the_rules() {
        let d = dir("ok");
        std::fs::write(
            d.join("news.csv"),
            "time,targets,title\n2026-12-11T13:30:00Z,USD,US Non-Farm Payrolls\n",
        )
        .expect("write");
        let r = restrictions(
            &cfg(serde_json::json!({"file": "news.csv", "minutes": 2})),
            &d.join("executor_config.json"),
        )
        .expect("valid");
        assert_eq!((r.news_minutes, r.news.len()), (Some(2), 1));
        assert!(r.entry_refusal("EURUSD", 1_796_995_800).is_some(), "{r:?}");
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_bad_news_line_or_a_missing_file_stops_the_start_naming_the_file_and_line() {
        let d = dir("bad");
        std::fs::write(
            d.join("news.csv"),
            "# calendar\n2026-12-11T13:30:00Z,USD,NFP\n2026-12-11 13:30,USD,NFP\n",
        )
        .expect("write");
        let err = restrictions(
            &cfg(serde_json::json!({"file": "news.csv"})),
            &d.join("executor_config.json"),
        )
        .expect_err("a bad line");
        let text = format!("{err:#}");
        let at = format!(
            "{}:3: time `2026-12-11 13:30`",
            d.join("news.csv").display()
        );
        assert!(
            text.contains("risk.news.file") && text.contains(&at),
            "{text}"
        );

        let err = restrictions(
            &cfg(serde_json::json!({"file": "absent.csv"})),
            &d.join("executor_config.json"),
        )
        .expect_err("no file");
        let text = format!("{err:#}");
        assert!(
            text.contains("risk.news.file") && text.contains("absent.csv"),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(d);
    }
}
