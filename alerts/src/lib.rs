//! Operator alerts: Telegram and a generic JSON webhook, sent off the order path.
//!
//! - **What**: an [`Event`] per thing an operator must hear about (halt and its reason, a limit's
//!   used share crossing 50%/80%, an authentication failure, the broker down for more than 60 s,
//!   an order refused, a model refused at load, process start and stop, the daily summary at
//!   midnight Europe/Prague). [`Event::text`] is its one line (pure). [`watch`] decides *when*
//!   (thresholds, the disconnect timer, the summary's instant), time as a parameter.
//! - **How it leaves**: [`Alerts::push`] only moves the value into a bounded queue (a mutex held
//!   for a push, never during I/O) and returns; a worker thread formats, redacts and POSTs it to
//!   each channel. A full queue drops its **oldest** alert and the worker then sends an
//!   "N alerts dropped" line. A failed try is retried with a doubling backoff; Telegram's 429
//!   `parameters.retry_after` (or a `Retry-After` header) is waited out exactly.
//! - **Secrets**: the bot token travels in Telegram's URL path (`/bot<TOKEN>/sendMessage`), so
//!   it is in no message, log line or error: every text goes through [`Redactor`] (the bot
//!   token, the webhook URL, what the process adds, and token-shaped words), logs name a channel
//!   by its host only, and `log` is capped at DEBUG at compile time (`Cargo.toml`) because `ureq`
//!   writes request paths at TRACE.
//!
//! Without the default feature `send` the crate is its pure part only (the events, their texts,
//! the watches, the settings, the redactor): no HTTP client, no thread (`oracle-executor-core`
//! decides what to tell with it).
//!
//! `docs/alerts.md` is the operator's page: the settings, the secrets, each message, and where
//! the executor pushes each event.

#[cfg(feature = "send")]
pub mod channel;
pub mod config;
pub mod event;
pub mod redact;
#[cfg(feature = "test-support")]
pub mod test_support;
pub mod watch;

use std::collections::VecDeque;
#[cfg(feature = "send")]
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(feature = "send")]
use std::thread::JoinHandle;
#[cfg(feature = "send")]
use std::time::Duration;

#[cfg(feature = "send")]
use channel::{Client, Outcome, Target};
pub use config::{AlertsConfig, TelegramSecrets};
pub use event::{DailySummary, Event, EventKind};
pub use redact::Redactor;

/// A queue of at most `capacity` items that drops its oldest to take a new one.
#[derive(Clone, Debug)]
pub struct BoundedQueue<T> {
    items: VecDeque<T>,
    capacity: usize,
}

impl<T> BoundedQueue<T> {
    /// An empty queue of `capacity` (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        BoundedQueue {
            items: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Appends `item`; the oldest item when the queue was full.
    pub fn push(&mut self, item: T) -> Option<T> {
        let dropped = if self.items.len() == self.capacity {
            self.items.pop_front()
        } else {
            None
        };
        self.items.push_back(item);
        dropped
    }

    /// The oldest item.
    pub fn pop(&mut self) -> Option<T> {
        self.items.pop_front()
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(feature = "send")]
/// The counters of an [`Alerts`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events taken into the queue.
    pub pushed: u64,
    /// Events of a kind the settings turn off.
    pub filtered: u64,
    /// Events dropped (the queue full, or pushed after [`Alerts::close`]).
    pub dropped: u64,
    /// Messages a channel took (one per channel).
    pub sent: u64,
    /// Messages a channel never took (given up).
    pub failed: u64,
    /// Events waiting now.
    pub pending: usize,
}

#[cfg(feature = "send")]
struct State {
    queue: BoundedQueue<Event>,
    unreported_drops: u64,
    closed: bool,
    done: bool,
    stats: Stats,
    failures: VecDeque<String>,
}

#[cfg(feature = "send")]
/// How many failure lines [`Alerts::recent_failures`] keeps.
pub const FAILURES_KEPT: usize = 16;

#[cfg(feature = "send")]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    finished: Condvar,
}

#[cfg(feature = "send")]
impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held leaves counters only: go on with them.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(feature = "send")]
/// The handle a process keeps and clones: [`Alerts::push`] from anywhere, [`Alerts::close`] at
/// the end.
#[derive(Clone)]
pub struct Alerts {
    shared: Arc<Shared>,
    events: Vec<EventKind>,
    on: bool,
    worker: Arc<Mutex<Option<JoinHandle<()>>>>,
}

#[cfg(feature = "send")]
impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts")
            .field("on", &self.on)
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(feature = "send")]
type PauseFn = Box<dyn FnMut(Duration) + Send>;

#[cfg(feature = "send")]
/// Builds an [`Alerts`] from the settings and the secrets.
pub struct AlertsBuilder {
    config: AlertsConfig,
    telegram: Option<TelegramSecrets>,
    ca_pem: Option<Vec<u8>>,
    redact: Vec<String>,
    pause: Option<PauseFn>,
}

#[cfg(feature = "send")]
impl std::fmt::Debug for AlertsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertsBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "send")]
impl AlertsBuilder {
    /// From the `alerts` section.
    pub fn new(config: AlertsConfig) -> Self {
        AlertsBuilder {
            config,
            telegram: None,
            ca_pem: None,
            redact: Vec::new(),
            pause: None,
        }
    }

    /// The bot token and chat id (needed when `alerts.telegram` is on).
    pub fn telegram(mut self, secrets: TelegramSecrets) -> Self {
        self.telegram = Some(secrets);
        self
    }

    /// Trust exactly the certificates of `pem` instead of the public roots (a test server, a
    /// corporate relay).
    pub fn ca_pem(mut self, pem: &[u8]) -> Self {
        self.ca_pem = Some(pem.to_vec());
        self
    }

    /// Another value no alert may show (the broker's client secret and tokens).
    pub fn redact(mut self, secret: &str) -> Self {
        self.redact.push(secret.to_string());
        self
    }

    /// Waits between tries through `pause` instead of sleeping (tests record the waits).
    pub fn pause_with(mut self, pause: impl FnMut(Duration) + Send + 'static) -> Self {
        self.pause = Some(Box::new(pause));
        self
    }

    /// Checks the settings and starts the worker thread (none when no channel is on: pushes are
    /// then counted as filtered). The error names the setting or the secret at fault.
    pub fn start(self) -> Result<Alerts, String> {
        let c = self.config;
        c.validate()?;
        let mut redactor = Redactor::new(&self.redact);
        let mut targets = Vec::new();
        if c.telegram {
            let s = self.telegram.ok_or_else(|| {
                format!(
                    "alerts.telegram is on but no bot token and chat id were given ({} and {} in the secrets file)",
                    config::TELEGRAM_BOT_TOKEN_KEY,
                    config::TELEGRAM_CHAT_ID_KEY
                )
            })?;
            redactor.add(&s.bot_token);
            if let Some((_, key)) = s.bot_token.split_once(':') {
                redactor.add(key);
            }
            targets.push(Target::Telegram {
                url: format!(
                    "{}/bot{}/sendMessage",
                    c.telegram_api.trim_end_matches('/'),
                    s.bot_token
                ),
                chat_id: s.chat_id,
            });
        }
        if let Some(url) = &c.webhook_url {
            redactor.add(url);
            if let Some((_, rest)) = url.split_once("://")
                && let Some(i) = rest.find('/')
            {
                redactor.add(&rest[i..]);
            }
            targets.push(Target::Webhook { url: url.clone() });
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: BoundedQueue::new(c.queue_capacity),
                unreported_drops: 0,
                closed: false,
                done: targets.is_empty(),
                stats: Stats::default(),
                failures: VecDeque::new(),
            }),
            wake: Condvar::new(),
            finished: Condvar::new(),
        });
        if targets.is_empty() {
            return Ok(Alerts {
                shared,
                events: Vec::new(),
                on: false,
                worker: Arc::new(Mutex::new(None)),
            });
        }
        let client = channel::client(self.ca_pem.as_deref(), Duration::from_secs(c.timeout_s))?;
        let worker = Worker {
            shared: shared.clone(),
            client,
            targets,
            redactor,
            label: c.label.clone(),
            max_attempts: c.max_attempts,
            backoff: Duration::from_secs(c.backoff_s),
            max_backoff: Duration::from_secs(c.max_backoff_s),
            pause: self.pause,
        };
        let handle = std::thread::Builder::new()
            .name("oracle-alerts".into())
            .spawn(move || worker.run())
            .map_err(|e| format!("alerts: starting the sender thread: {e}"))?;
        Ok(Alerts {
            shared,
            events: c.events.clone(),
            on: true,
            worker: Arc::new(Mutex::new(Some(handle))),
        })
    }
}

#[cfg(feature = "send")]
impl Alerts {
    /// A handle that sends nothing (no `alerts` section).
    pub fn off() -> Alerts {
        AlertsBuilder::new(AlertsConfig::default())
            .start()
            .unwrap_or_else(|_| unreachable!("the default settings turn every channel off"))
    }

    /// Whether a channel is on.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Queues `event` and returns at once: it never waits for the network. A full queue drops
    /// its oldest event; a kind the settings turn off is counted and dropped here.
    pub fn push(&self, event: Event) {
        let kind = event.kind();
        let mut st = self.shared.lock();
        if !self.on || !(kind == EventKind::Test || self.events.contains(&kind)) {
            st.stats.filtered += 1;
            return;
        }
        if st.closed {
            st.stats.dropped += 1;
            return;
        }
        st.stats.pushed += 1;
        if st.queue.push(event).is_some() {
            st.stats.dropped += 1;
            st.unreported_drops += 1;
        }
        drop(st);
        self.shared.wake.notify_one();
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        let st = self.shared.lock();
        Stats {
            pending: st.queue.len(),
            ..st.stats
        }
    }

    /// The last [`FAILURES_KEPT`] alerts a channel never took, oldest first: `channel: why`
    /// (redacted; the channel named by its host).
    pub fn recent_failures(&self) -> Vec<String> {
        self.shared.lock().failures.iter().cloned().collect()
    }

    /// Stops taking events and lets the worker send what is queued (with its retries), waiting
    /// for it at most `grace` (a process then exits; the worker goes with it). Returns the
    /// counters then.
    pub fn close(&self, grace: Duration) -> Stats {
        let mut st = self.shared.lock();
        st.closed = true;
        self.shared.wake.notify_all();
        let (st, _) = self
            .shared
            .finished
            .wait_timeout_while(st, grace, |s| !s.done)
            .unwrap_or_else(|p| p.into_inner());
        let done = st.done;
        drop(st);
        if done && let Some(h) = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
        self.stats()
    }
}

#[cfg(feature = "send")]
struct Worker {
    shared: Arc<Shared>,
    client: Client,
    targets: Vec<Target>,
    redactor: Redactor,
    label: Option<String>,
    max_attempts: u32,
    backoff: Duration,
    max_backoff: Duration,
    pause: Option<PauseFn>,
}

#[cfg(feature = "send")]
impl Worker {
    fn run(mut self) {
        loop {
            let (event, drops) = {
                let mut st = self.shared.lock();
                while st.queue.is_empty() && !st.closed {
                    st = self.shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                let Some(event) = st.queue.pop() else {
                    break;
                };
                (event, std::mem::take(&mut st.unreported_drops))
            };
            if drops > 0 {
                let text = event::dropped_text(drops);
                tracing::warn!(target: "oracle_alerts", dropped = drops, "{text}");
                let json = serde_json::json!({"event": "dropped", "count": drops});
                self.deliver(&text, json);
            }
            let json = serde_json::to_value(&event).unwrap_or_default();
            self.deliver(&event.text(), json);
        }
        let mut st = self.shared.lock();
        st.done = true;
        drop(st);
        self.shared.finished.notify_all();
    }

    fn wait(&mut self, d: Duration) {
        match &mut self.pause {
            Some(p) => p(d),
            None => std::thread::sleep(d),
        }
    }

    fn deliver(&mut self, text: &str, json: serde_json::Value) {
        let text = match &self.label {
            Some(l) => format!("[{l}] {text}"),
            None => text.to_string(),
        };
        let text = self.redactor.redact(&text);
        let mut json = json;
        if let Some(o) = json.as_object_mut() {
            o.insert("source".into(), "oracle-trader".into());
            o.insert("text".into(), text.clone().into());
            if let Some(l) = &self.label {
                o.insert("label".into(), l.clone().into());
            }
        }
        let json = self.redactor.redact_json(json);
        for i in 0..self.targets.len() {
            let target = self.targets[i].clone();
            let result = self.try_target(&target, &text, &json);
            let mut st = self.shared.lock();
            match result {
                Ok(()) => st.stats.sent += 1,
                Err(why) => {
                    st.stats.failed += 1;
                    if st.failures.len() == FAILURES_KEPT {
                        st.failures.pop_front();
                    }
                    st.failures.push_back(format!("{}: {why}", target.name()));
                }
            }
        }
    }

    fn try_target(
        &mut self,
        target: &Target,
        text: &str,
        json: &serde_json::Value,
    ) -> Result<(), String> {
        let name = target.name();
        let mut attempt = 1;
        loop {
            match self.client.send(target, text, json, &self.redactor) {
                Outcome::Sent => return Ok(()),
                Outcome::GiveUp { why } => {
                    let why = format!("not sent: {why}");
                    tracing::warn!(target: "oracle_alerts", channel = %name, "alert {why}");
                    return Err(why);
                }
                Outcome::Retry { after, why } => {
                    if attempt >= self.max_attempts {
                        let why = format!("given up after {attempt} tries: {why}");
                        tracing::warn!(target: "oracle_alerts", channel = %name, "alert {why}");
                        return Err(why);
                    }
                    let wait = after.unwrap_or_else(|| {
                        self.backoff
                            .saturating_mul(1 << (attempt - 1).min(16))
                            .min(self.max_backoff)
                    });
                    if wait > self.max_backoff {
                        let why = format!(
                            "given up: the server asks to wait {} s, above alerts.max_backoff_s ({why})",
                            wait.as_secs()
                        );
                        tracing::warn!(target: "oracle_alerts", channel = %name, "alert {why}");
                        return Err(why);
                    }
                    tracing::debug!(target: "oracle_alerts", channel = %name, attempt, "alert retried in {} s: {why}", wait.as_secs());
                    self.wait(wait);
                    attempt += 1;
                }
            }
        }
    }
}

#[cfg(all(test, feature = "send"))]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_its_oldest_and_keeps_the_newest() {
        let mut q = BoundedQueue::new(3);
        let dropped: Vec<_> = (1..=5).filter_map(|i| q.push(i)).collect();
        assert_eq!(dropped, vec![1, 2]);
        assert_eq!(q.len(), 3);
        assert_eq!(
            std::iter::from_fn(|| q.pop()).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
    }

    #[test]
    fn without_a_channel_a_push_is_counted_and_nothing_runs() {
        let a = Alerts::off();
        a.push(Event::Disconnected { for_s: 61 });
        assert!(!a.is_on());
        assert_eq!(a.stats().filtered, 1);
        assert_eq!(a.stats().pushed, 0);
        assert_eq!(a.close(Duration::ZERO).pending, 0);
    }

    #[test]
    fn telegram_on_without_its_secrets_is_refused_naming_the_keys() {
        let c = AlertsConfig {
            telegram: true,
            ..AlertsConfig::default()
        };
        let e = AlertsBuilder::new(c).start().unwrap_err();
        assert!(
            e.contains("ORACLE_TELEGRAM_BOT_TOKEN") && e.contains("ORACLE_TELEGRAM_CHAT_ID"),
            "{e}"
        );
    }
}
