//! The operator channel's engine side (docs/operator.md): [`handle`] answers a request that
//! came over `operator.sock` on the engine's task ([`status`], enable/disable rewriting the
//! configuration file, halt/flatten/resume through the core) and journals it with its origin
//! (`operator uid=1000 pid=4242 via socket`) in `operator-journal.jsonl` beside the order
//! journal, fsynced, before it is answered. The socket itself (bind, peer check, the JSON lines,
//! the `oracle status` client) is `oracle-executor-server`'s `operator`, re-exported here.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde_json::{Value, json};
use tracing::{info, warn};

use crate::broker::Broker;
use crate::config::{ExecutorConfig, write_atomic};
use crate::engine::{DECISION, Engine};
use crate::policy::{KeyText, StreamKey};
// The requests and the status view are the core's; re-exported: the socket serves them.
pub use oracle_executor_core::operator::{
    ModelRow, Request, SideStatus, Status, SymbolRow, TokenStatus, answer_err, check_peer, command,
    enable_check, enabled_file, enabled_message, model_state, parse_request,
};
// The socket (transport): re-exported under the old paths.
pub use oracle_executor_server::operator::{
    MAX_LINE, Operator, OperatorCall, SOCKET_NAME, open, request, socket_path,
};

/// The operator journal's file name in the state folder.
pub const JOURNAL_NAME: &str = "operator-journal.jsonl";

// ---------------------------------------------------------------------------------------------
// The engine's side.

fn side_status<B: Broker>(name: &str, side: &crate::engine::Side<B>, now: i64) -> SideStatus {
    // The last account read when the broker did not answer now.
    let acc = side
        .core
        .cached_account(now)
        .or_else(|| side.core.last_account());
    SideStatus {
        side: name.to_string(),
        balance: acc.map(|a| a.balance),
        equity: acc.map(|a| a.equity),
        free_margin: acc.map(|a| a.free_margin),
        margin_used: acc.map(|a| a.equity - a.free_margin),
        connected: side.broker.connected(),
    }
}

/// The status snapshot of `engine` at `now` (Unix seconds). The account is the one last read
/// (refreshed first by [`handle`]).
pub fn status<B: Broker>(engine: &Engine<B>, op: &Operator, now: i64) -> Status {
    let mut keys: Vec<StreamKey> = op.models.clone();
    for side in [
        engine.core.live.as_ref().map(|s| &s.core.policy),
        engine.core.paper.as_ref().map(|s| &s.core.policy),
    ]
    .into_iter()
    .flatten()
    {
        keys.extend(side.models.keys().cloned());
    }
    // Rows by symbol, then timeframe name (`EURUSD H1` before `EURUSD M15`), as always.
    keys.sort_by(oracle_executor_core::key::by_name);
    keys.dedup();
    // The answering side: live when there is one.
    let answering = engine.core.live.as_ref().map(|s| &s.core.policy).or(engine
        .core
        .paper
        .as_ref()
        .map(|s| &s.core.policy));
    let models = keys
        .iter()
        .map(|k| {
            let m = answering.and_then(|p| p.models.get(k));
            let live = engine.core.live.as_ref().map(|s| s.position_view(k));
            let paper = engine.core.paper.as_ref().map(|s| s.position_view(k));
            ModelRow {
                model: k.model_name().to_string(),
                virtual_position: m.and_then(|m| m.target).map(|t| t.0.as_str().to_string()),
                virtual_pnl: engine.virtual_pnl(k),
                real_position: live.as_ref().map(|(p, _)| p.clone()),
                real_pnl: live.as_ref().map(|(_, v)| *v),
                paper_position: paper.as_ref().map(|(p, _)| p.clone()),
                paper_pnl: paper.as_ref().map(|(_, v)| *v),
                last_bar: m
                    .and_then(|m| m.last_bt)
                    .map(|t| oracle_ipc::Iso(t).to_string()),
                state: model_state(&engine.core.cfg, k, m, answering),
            }
        })
        .collect();
    let mut sides = Vec::new();
    if let Some(l) = &engine.core.live {
        sides.push(side_status("live", l, now));
    }
    if let Some(p) = &engine.core.paper {
        sides.push(side_status("paper", p, now));
    }
    let symbols = engine
        .core
        .cfg
        .symbols
        .iter()
        .map(|(n, s)| SymbolRow {
            name: n.clone(),
            enabled: s.enabled,
        })
        .collect();
    Status {
        at: oracle_ipc::Iso(now).to_string(),
        models,
        sides,
        guard: engine.core.guard_status(),
        symbols,
        token: engine
            .core
            .live
            .as_ref()
            .and_then(|l| l.broker.token_expires_at_ms())
            .map(|e| TokenStatus::at(e, now, "session"))
            .or_else(|| token_status(&op.state_dir, now)),
        restrictions: engine.core.restrictions_status(now.saturating_mul(1000)),
    }
}

#[cfg(feature = "live")]
fn token_status(state: &Path, now: i64) -> Option<TokenStatus> {
    let path = oracle_ctrader::tokenfile::path_in(state);
    let pair = oracle_ctrader::tokenfile::load(&path).ok()??;
    Some(TokenStatus::at(pair.expires_at_ms, now, "token file"))
}

#[cfg(not(feature = "live"))]
fn token_status(_state: &Path, _now: i64) -> Option<TokenStatus> {
    None
}

/// Sets `symbol`'s `enabled` in the running configuration and in the file: the file first
/// (atomically, its mode kept, every other key as it was), then the running value, so the two
/// never disagree. An unknown symbol is an error naming it and the configured ones.
pub fn set_enabled(
    cfg: &mut ExecutorConfig,
    path: &Path,
    symbol: &str,
    enabled: bool,
) -> Result<String, String> {
    let shown = path.display().to_string();
    if let Some(unchanged) = enable_check(cfg, &shown, symbol, enabled)? {
        return Ok(unchanged);
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{shown}: {e}"))?;
    let text = enabled_file(&bytes, &shown, symbol, enabled)?;
    write_atomic(path, &text).map_err(|e| format!("{shown}: cannot rewrite: {e}"))?;
    if let Some(sc) = cfg.symbols.get_mut(symbol) {
        sc.enabled = enabled;
    }
    Ok(enabled_message(symbol, enabled, &shown))
}

/// Appends one record to the operator journal (fsynced).
pub fn journal(state: &Path, record: &Value) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(state.join(JOURNAL_NAME))?;
    let mut line = record.to_string();
    line.push('\n');
    f.write_all(line.as_bytes())?;
    f.sync_data()
}

/// Answers one request on the engine's task: refreshes the accounts for a status, applies
/// enable/disable, journals the request and its outcome with its origin.
pub async fn handle<B: Broker>(
    engine: &mut Engine<B>,
    op: &Operator,
    now: i64,
    req: &Request,
    origin: &str,
) -> Value {
    let result: Result<Value, String> = match req {
        Request::Status => {
            if let Some(l) = &mut engine.core.live {
                let _ = l.refresh_risk(now).await;
            }
            if let Some(p) = &mut engine.core.paper {
                let _ = p.refresh_risk(now).await;
            }
            let s = status(engine, op, now);
            Ok(json!({"ok": true, "status": s}))
        }
        Request::Enable { symbol } | Request::Disable { symbol } => {
            let on = matches!(req, Request::Enable { .. });
            set_enabled(&mut engine.core.cfg, &op.config_path, symbol, on)
                .map(|m| json!({"ok": true, "message": m}))
        }
        Request::Halt { .. } | Request::Flatten { .. } | Request::Resume => {
            let cmd = command(req);
            let r = engine
                .core
                .handle_operator(now.saturating_mul(1000), &cmd, origin);
            // The closes it asked for and its journal records (the core's actions).
            engine.drive_sides(now).await;
            r.map(|m| json!({"ok": true, "message": m}))
        }
    };
    let (answer, ok, text) = match result {
        Ok(v) => {
            let text = v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("status")
                .to_string();
            (v, true, text)
        }
        Err(e) => (answer_err(&e), false, e),
    };
    let record = json!({
        "ts": now,
        "origin": origin,
        "request": req,
        "ok": ok,
        "result": text,
    });
    if let Err(e) = journal(&op.state_dir, &record) {
        warn!(target: DECISION, error = %e, "operator journal write failed");
    }
    if ok {
        info!(target: DECISION, event = "operator", origin, request = %req.to_line(), "{text}");
    } else {
        warn!(target: DECISION, event = "operator", origin, request = %req.to_line(), "refused: {text}");
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    fn config_file(tag: &str, text: &str) -> (PathBuf, ExecutorConfig) {
        let dir = std::env::temp_dir().join(format!("oracle-op-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("executor_config.json");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let (cfg, _) = crate::config::load(&p, &[]).unwrap();
        (p, cfg)
    }

    const TWO: &str = r#"{"risk": {"daily_loss_pct": 4}, "US500": {"enabled": true, "lot_weak": 0.1, "lot_moderate": 0.3, "lot_strong": 0.5, "max_spread_points": 80}, "EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}}"#;

    #[test]
    fn disable_applies_to_the_running_config_and_rewrites_the_file_keeping_the_rest() {
        let (p, mut cfg) = config_file("disable", TWO);
        let m = set_enabled(&mut cfg, &p, "EURUSD", false).expect("disable");
        assert!(m.contains("EURUSD disabled"), "{m}");
        assert!(!cfg.symbols["EURUSD"].enabled, "running value changed");
        assert!(cfg.symbols["US500"].enabled);
        // The file says the same, every other key as it was, in its order, and its mode kept.
        let (again, _) = crate::config::load(&p, &[]).unwrap();
        assert!(!again.symbols["EURUSD"].enabled);
        assert_eq!(again.symbols["US500"].max_spread_points, Some(80.0));
        assert_eq!(again.risk.daily_loss_pct, 4.0);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.find("risk").unwrap() < text.find("US500").unwrap());
        assert!(text.find("US500").unwrap() < text.find("EURUSD").unwrap());
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        // And back.
        set_enabled(&mut cfg, &p, "EURUSD", true).expect("enable");
        assert!(cfg.symbols["EURUSD"].enabled);
        assert!(crate::config::load(&p, &[]).unwrap().0.symbols["EURUSD"].enabled);
    }

    #[test]
    fn an_unknown_symbol_is_named_with_the_configured_ones_and_nothing_changes() {
        let (p, mut cfg) = config_file("unknown", TWO);
        let before = std::fs::read(&p).unwrap();
        let e = set_enabled(&mut cfg, &p, "GBPUSD", false).expect_err("unknown");
        assert!(e.contains("\"GBPUSD\""), "{e}");
        assert!(
            e.contains("EURUSD, US500"),
            "lists the configured ones: {e}"
        );
        assert_eq!(std::fs::read(&p).unwrap(), before);
    }

    #[cfg(feature = "live")]
    #[test]
    fn the_token_expiry_is_read_from_the_state_folders_token_file() {
        let dir = std::env::temp_dir().join(format!("oracle-op-token-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let now = 1_736_899_200;
        assert_eq!(token_status(&dir, now), None, "no token file: none");
        let path = oracle_ctrader::tokenfile::path_in(&dir);
        oracle_ctrader::tokenfile::prepare_folder(&path).unwrap();
        let pair = oracle_ctrader::tokenfile::TokenPair {
            access_token: oracle_ctrader::Secret::new("access-secret"),
            refresh_token: oracle_ctrader::Secret::new("refresh-secret"),
            obtained_at_ms: now * 1000,
            expires_at_ms: (now + 3600) * 1000,
        };
        oracle_ctrader::tokenfile::store(&path, &pair).unwrap();
        let t = token_status(&dir, now + 600).expect("a token");
        assert_eq!(t.seconds_left, 3000);
        assert_eq!(t.expires_at, oracle_ipc::Iso(now + 3600).to_string());
        let shown = serde_json::to_string(&t).unwrap();
        assert!(
            !shown.contains("secret"),
            "no token value in the status: {shown}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
