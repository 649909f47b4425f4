//! `oracle-dst`: deterministic simulation testing of the whole system on one virtual clock.
//!
//! One seed (`u64`) draws a [`Plan`]: which bundled models trade, how many bars, and a fault
//! schedule. [`run`] then drives, in one thread, with no sockets, no sleeps and no clock:
//!
//! - the simulator's sans-IO broker core (`oracle_sim::Broker`, time a parameter) behind its
//!   protobuf edge (`oracle_sim::wire`): every request and answer is a real encoded frame;
//! - `oracle_ctrader`'s sans-IO `Session` (auth, heartbeats, rate limits, reconnect, gap fill,
//!   closed-bar detection), connected to the broker core by an in-memory [`pipe::Pipe`] whose
//!   fault wrapper resets connections, kills them silently (lost answers) and delays frames;
//! - the executor ([`exec::Exec`]): the REAL `oracle_executor_core::exec::ExecutorCore` (its
//!   live `SideCore`) driven through the sans-IO Open API adapter (`oracle_executor_ctrader`'s
//!   `Link`) over the session, its journal an in-memory byte buffer; bars and HISTORY to the
//!   predictor; executor "kill -9" at seeded journal writes (`Plan::executor_kills`): the core,
//!   the adapter and the connection are lost, and with a power loss (half the kills,
//!   `Plan::executor_kills_keep_written`) the journal's unsynced tail too; it starts again from
//!   the bytes left and reconciles;
//! - the predictor's engine (`oracle_predictor::engine::Predictor`, lines in, lines out) with the
//!   bundled models, its state file and traces in a scratch folder. "kill -9" drops every
//!   in-memory object without flushing anything (`mem::forget`) and restarts from the bytes
//!   written so far.
//!
//! The executor core's timers run on the virtual clock as the shell runs them
//! (`ExecutorCore::poll_timeout` / `handle_timeout`): `Timer::Gather` (a batch waits 25 ms at
//! most for the SIGNALs of its close instant; one seed in six gets the predictor's answers in
//! two writes) and `Timer::HeldExit` (one seed in six has market hours: an exit the broker
//! refused `MARKET_CLOSED` is held and sent at the first open instant, an entry is missed).
//!
//! Faults also come from the broker core's own injectors (order rejections, lost execution
//! events), its token expiry (the session refreshes), and a history rate limit below the
//! session's (`REQUEST_FREQUENCY_EXCEEDED`: the session waits `retryAfter` and asks again).
//!
//! [`guard`] is the prop-firm guard's own simulation: the executor's side core with a preset,
//! quotes every minute and a crash between two bars (a seed must end flat and halted; one in
//! three crosses the Prague midnight, where `Timer::GuardDay` ends the daily halt).
//!
//! Invariants are checked after every step (see [`Failure`]); a failing seed prints the one
//! command that replays it ([`replay_command`]).

#![warn(missing_docs)]

pub mod exec;
pub mod fixtures;
pub mod guard;
pub mod pipe;
pub mod soak;
mod world;

pub use world::{
    Defect, Failure, HOURS_ONE_IN, KillPoint, Plan, Summary, replay_command, run, run_seed,
};
