//! The executor's core ("the hands" without hands): every decision the executor makes, sans-IO.
//!
//! - [`alerting`]: what the executor tells its operator (limits crossed, a halt, the broker
//!   down, the daily summary, refusals), decided from the core's state; the sending is the
//!   shell's;
//! - [`policy`]: virtual target vs real position, transitions, no chasing;
//! - [`risk`]: the risk guard (daily loss / drawdown, broker day);
//! - [`propfirm`]: a prop firm's limits computed exactly (FTMO presets, equity, Prague day);
//! - [`restrictions`]: a funded account's optional rules (flat before the weekend, news
//!   windows) as values;
//! - [`volume`]: lots → cTrader volume in cents;
//! - [`symbols`]: model ↔ broker symbol names (close matches for a missing one), `tradingMode`;
//! - [`config`]: `executor_config.json` as values (validation by key; the file is the shell's);
//! - [`drift`]: the drift ledger's rows, their lines and which are written when (the files are
//!   the shell's);
//! - [`journal`]: the journal's records, their line bytes and the replay a restart reads (the
//!   file and its fsyncs are the shell's);
//! - [`key`]: a model's [`key::StreamKey`] (symbol + timeframe) and its text: `EURUSD_M15`,
//!   the broker label `oracle:EURUSD_M15`, the journal's `{"symbol","tf"}`;
//! - [`broker`]: the values exchanged with a broker (orders, outcomes, positions, quotes);
//! - [`answers`]: what a SIGNAL is answered with before the broker (duplicates, bars not
//!   streamed, stale re-sends) and the ACKs remembered;
//! - [`exec`]: [`exec::ExecutorCore`], both sides' cores and the answers: the grouping of a
//!   batch's SIGNALs, which side answers (data: live, else paper), the ACK values;
//! - [`gather`]: a close instant's SIGNALs gathered into one batch, the timer table
//!   (`poll_timeout`/`handle_timeout`, milliseconds);
//! - [`operator`]: a person's commands (halt, flatten, resume), the guard's status, the
//!   operator channel's request lines, enable/disable's configuration edit and the
//!   `oracle status` view (its table);
//! - [`pace`]: the demo pacing (market held until the predictor is ready, one bar at a time);
//! - [`side`]: one book's decisions (live or paper: the same core), the batch of SIGNALs as a
//!   state machine (`handle_*` in, [`side::SideCore::poll_action`] out);
//! - [`streams`]: the bar streams (SEQ, the HISTORY rings, which SIGNALs are for a streamed bar)
//!   and the BAR/ERR/WELCOME lines the shell's WebSocket server sends;
//!
//! **Invariant:** this crate does no I/O: no sockets, no files, no clock reads, no runtime. Time
//! comes in as a parameter; the shell (`oracle-executor`) does the I/O and feeds the results back.

pub mod alerting;
pub mod answers;
pub mod broker;
pub mod config;
pub mod currency;
pub mod drift;
pub mod exec;
pub mod gather;
pub mod journal;
pub mod key;
pub mod operator;
pub mod pace;
pub mod policy;
pub mod propfirm;
pub mod restrictions;
pub mod risk;
pub mod side;
pub mod streams;
pub mod symbols;
pub mod volume;
