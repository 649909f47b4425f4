//! The tearsheet of a real backtest (EURUSD_H1 over the last 1,500 bars of its file): every
//! figure of `oracle backtest`'s summary on the page with its unit, the months adding up to the
//! run, the costs as the training environment charges them, the trade list, and one
//! self-contained file.

use std::path::{Path, PathBuf};

use oracle_model::{Backtest, DEFAULT_CAPITAL, load_model, months};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The backtest of EURUSD_H1 over the last `n` bars; `None` when the models are not built.
/// On a thread with the main thread's 8 MiB of stack: the loaded model's fixed-size arrays are
/// moved by value in a debug build, past a test thread's 2 MiB.
fn run(n: usize) -> Option<Backtest> {
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || run_here(n))
        .expect("thread")
        .join()
        .expect("backtest thread")
}

fn run_here(n: usize) -> Option<Backtest> {
    let zip = repo().join("models/EURUSD_H1.zip");
    if !zip.exists() {
        println!("no models/EURUSD_H1.zip: skipped");
        return None;
    }
    let text = std::fs::read_to_string(repo().join("data/EURUSD_H1.csv")).expect("bar file");
    let lines: Vec<&str> = text.lines().collect();
    let mut csv = format!("{}\n", lines[0]);
    for l in &lines[lines.len() - n..] {
        csv.push_str(l);
        csv.push('\n');
    }
    // One folder per call: the tests run in parallel in one process, and two backtests of the
    // same length shared a folder, one removing the other's bars before it read them.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!(
        "oracle-report-test-{}-{n}-{call}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let bars = dir.join("bars.csv");
    std::fs::write(&bars, csv).expect("bars");
    let b =
        oracle_model::backtest(&zip, &bars, DEFAULT_CAPITAL, &mut Vec::new()).expect("backtest");
    let _ = std::fs::remove_dir_all(&dir);
    Some(b)
}

#[test]
fn the_page_shows_every_figure_of_the_summary_with_its_unit_and_currency() {
    let Some(b) = run(1500) else { return };
    let html = oracle_report::page(&b, "models/EURUSD_H1.zip", "bars.csv", "USD");
    // Every value of the printed summary (the text after the 17-column label, up to its first
    // space or parenthesis) is on the page.
    for line in b.summary().lines().skip(3) {
        let (label, rest) = line.split_at(17.min(line.len()));
        let value = rest
            .split([' ', '('])
            .next()
            .unwrap_or("")
            .trim_end_matches('%');
        if label.trim() == "open at end" || value.is_empty() {
            continue;
        }
        assert!(
            html.contains(&format!("<td>{value}</td>"))
                || html.contains(&format!("\">{value}</td>")),
            "{}: {value} not on the page",
            label.trim()
        );
    }
    for unit in [
        "% of the initial capital",
        "annualised (6240 bars a year)",
        "% of the account at its peak",
        "% of decided bars in a position",
        "net profit</td><td>",
        "costs, USD",
        "P&amp;L, USD",
        "(USD)",
        "% below the running peak",
    ] {
        assert!(html.contains(unit), "{unit} missing");
    }
    assert!(b.stats.trades > 0, "the run trades");
    // The trade list: one row per closed trade.
    let rows = html
        .split("<table class=\"trades\">")
        .nth(1)
        .expect("trade list");
    let rows = rows.split("</table>").next().unwrap_or("");
    assert_eq!(rows.matches("<tr><td>").count(), b.stats.trades);
}

#[test]
fn the_page_is_one_self_contained_file_without_script_or_network() {
    let Some(b) = run(800) else { return };
    let html = oracle_report::page(&b, "m<x>.zip", "b&.csv", "USD");
    for banned in [
        "<script", "http:", "https:", "src=", "url(", "@import", "<link", "<iframe",
    ] {
        assert!(!html.contains(banned), "{banned} in the page");
    }
    assert!(html.starts_with("<!doctype html>") && html.ends_with("</html>\n"));
    assert!(html.contains("<svg") && html.contains("<style>"));
    // The inputs' names are escaped.
    assert!(html.contains("m&lt;x&gt;.zip") && html.contains("b&amp;.csv"));
}

#[test]
fn the_months_add_up_to_the_run_and_the_costs_are_those_the_fills_paid() {
    let Some(b) = run(1500) else { return };
    let m = months(&b.ledger, b.stats.capital);
    assert!(m.len() >= 2, "1,500 H1 bars span months: {}", m.len());
    let bars: usize = m.iter().map(|m| m.bars).sum();
    assert_eq!(bars, b.stats.decisions);
    let profit: f64 = m.iter().map(|m| m.net_profit).sum();
    assert!(
        (profit - b.stats.net_profit).abs() < 1e-6,
        "{profit} vs {}",
        b.stats.net_profit
    );
    let trades: usize = m.iter().map(|m| m.trades).sum();
    assert_eq!(trades, b.stats.trades);
    // Each closed trade: its P&L is the price move minus exactly its commission, and its spread
    // and slippage are a round turn's (spread + 2 × slippage points).
    let (c, mpp) = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(|| {
            let m = load_model(&repo().join("models/EURUSD_H1.zip")).expect("model");
            (*m.model.costs(), m.model.money_per_point())
        })
        .expect("thread")
        .join()
        .expect("load thread");
    for t in &b.ledger.trades {
        let gross =
            (t.exit_price - t.entry_price) * f64::from(t.direction) / c.point * mpp * t.lots;
        assert_eq!(gross - t.costs.commission, t.pnl, "{t:?}");
        let round_turn = (c.spread_points + 2.0 * c.slippage_points) * mpp * t.lots;
        assert!(
            (t.costs.spread + t.costs.slippage - round_turn).abs() < 1e-9,
            "{t:?}"
        );
    }
    let total = b.ledger.total_costs();
    let by_month: f64 = m.iter().map(|m| m.costs.total()).sum();
    assert!((total.total() - by_month).abs() < 1e-6);
    assert!(total.commission > 0.0 && total.spread > 0.0 && total.slippage > 0.0);
}
