//! The one process supervisor of whole-system runs (`oracle demo`, the bench, the chaos proof).
//!
//! A [`Proc`] is one child: it dies with this process (Linux `PR_SET_PDEATHSIG`, SIGKILL) even
//! if this process is itself killed with SIGKILL; its stdout and stderr go to a log file
//! ([`Output::Log`], appended to, so a restarted child continues its log) or, for a live view,
//! line by line to a truncated log file and a channel ([`Output::Lines`]); [`Proc::stop`] sends
//! SIGTERM, then SIGKILL after a grace period; [`Proc::kill9`] is `kill -9`; dropping a `Proc`
//! kills and reaps it. A [`Group`] stops its children in reverse start order when dropped
//! (normal end, error, panic unwinding).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Set by SIGINT/SIGTERM once [`trap_signals`] ran.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Routes SIGINT and SIGTERM to [`INTERRUPTED`], so a run can stop its children and report.
pub fn trap_signals() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    // SAFETY: the handler only stores to an atomic (async-signal-safe); `signal` is called with
    // valid signal numbers and a valid function pointer.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

/// A line a child wrote: (the index given in [`Output::Lines`], from stderr, text).
pub type Line = (usize, bool, String);

/// Where a child's stdout and stderr go.
pub enum Output<'a> {
    /// Appended to the log file (a restarted child continues the same log).
    Log,
    /// Line by line to the log file (truncated first) and to `tx` as `(idx, from stderr, text)`.
    Lines {
        /// Tells this child's lines apart on the shared channel.
        idx: usize,
        /// The channel the lines go to.
        tx: &'a Sender<Line>,
    },
}

/// One child process, killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    /// Name for messages (`sim`, `executor`, `predictor`).
    pub name: String,
    /// Its log file (stdout and stderr).
    pub log: PathBuf,
    /// When it was started.
    pub started: Instant,
    child: Child,
    status: Option<ExitStatus>,
    stopped_by_us: bool,
}

impl Proc {
    /// Starts `cmd` (stdin closed) with its output sent to `log` as `output` says.
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        log: &Path,
        output: Output<'_>,
    ) -> anyhow::Result<Self> {
        cmd.stdin(Stdio::null());
        match output {
            Output::Log => {
                let out = File::options()
                    .create(true)
                    .append(true)
                    .open(log)
                    .with_context(|| format!("{name}: cannot open its log {}", log.display()))?;
                let err = out.try_clone()?;
                cmd.stdout(Stdio::from(out)).stderr(Stdio::from(err));
            }
            Output::Lines { .. } => {
                cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec only prctl (async-signal-safe) runs; the closure
            // touches no memory of the parent. The child gets SIGKILL if this process dies, even
            // when this process is killed with SIGKILL.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
        if let Output::Lines { idx, tx } = output {
            let file = match File::create(log) {
                Ok(f) => f,
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("{name}: cannot create its log {}: {e}", log.display());
                }
            };
            let file = Arc::new(Mutex::new(file));
            if let Some(out) = child.stdout.take() {
                pump(idx, false, out, file.clone(), tx.clone());
            }
            if let Some(err) = child.stderr.take() {
                pump(idx, true, err, file, tx.clone());
            }
        }
        Ok(Self {
            name: name.into(),
            log: log.to_path_buf(),
            started: Instant::now(),
            child,
            status: None,
            stopped_by_us: false,
        })
    }

    /// The pid while it runs (None once reaped: the pid may belong to another process then).
    pub fn pid(&self) -> Option<u32> {
        self.status.is_none().then(|| self.child.id())
    }

    /// Its exit status, reaping it if it has exited.
    pub fn poll(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Ok(Some(s)) = self.child.try_wait()
        {
            self.status = Some(s);
        }
        self.status
    }

    /// The exit status seen by the last [`poll`](Self::poll), [`stop`](Self::stop) or
    /// [`kill9`](Self::kill9) (None while it runs).
    pub fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        if self.poll().is_some() {
            return;
        }
        let _ = self.child.kill();
        if let Ok(s) = self.child.wait() {
            self.status = Some(s);
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; reaps it.
    pub fn stop(&mut self, grace: Duration) {
        if self.poll().is_some() {
            return;
        }
        self.stopped_by_us = true;
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child's pid, which is not reaped yet (poll() above saw
            // it running), so the pid cannot have been reused.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if self.poll().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
    }

    /// Whether it ended well: exit 0, or ended by the SIGTERM [`stop`](Self::stop) sent.
    pub fn ended_well(&self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        match self.status {
            Some(s) => s.success() || (self.stopped_by_us && s.signal() == Some(libc::SIGTERM)),
            None => false,
        }
    }

    /// A word for a view or a summary: `running`, `exit N`, `stopped`, `signal N`.
    pub fn status_word(&self) -> String {
        use std::os::unix::process::ExitStatusExt;
        match self.status {
            None => "running".into(),
            Some(s) if s.success() => "exit 0".into(),
            Some(s) => match (s.code(), s.signal()) {
                (Some(c), _) => format!("exit {c}"),
                (None, Some(sig)) if sig == libc::SIGTERM && self.stopped_by_us => "stopped".into(),
                (None, Some(sig)) => format!("signal {sig}"),
                _ => "ended".into(),
            },
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn pump(
    idx: usize,
    is_err: bool,
    r: impl std::io::Read + Send + 'static,
    log: Arc<Mutex<File>>,
    tx: Sender<Line>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut f) = log.lock() {
                let _ = writeln!(f, "{line}");
            }
            if tx.send((idx, is_err, line)).is_err() {
                break;
            }
        }
    });
}

/// Children stopped together: in reverse start order on [`stop_all`](Self::stop_all) and when
/// dropped (normal end, error, panic unwinding).
#[derive(Default)]
pub struct Group {
    /// The children in start order.
    pub procs: Vec<Proc>,
}

impl Group {
    /// Stops them in reverse start order (SIGTERM, SIGKILL after 5 s each).
    pub fn stop_all(&mut self) {
        for p in self.procs.iter_mut().rev() {
            p.stop(Duration::from_secs(5));
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Fails, naming the process and showing its log's tail, when one of `procs` has exited.
pub fn all_alive(procs: &mut [&mut Proc]) -> anyhow::Result<()> {
    for p in procs.iter_mut() {
        if let Some(s) = p.poll() {
            bail!(
                "{} exited on its own ({s}); log {}:\n{}",
                p.name,
                p.log.display(),
                crate::files::tail(&p.log, 15)
            );
        }
    }
    Ok(())
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Whether 127.0.0.1:`port` accepts a TCP connection.
pub fn port_open(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
}

/// Waits until 127.0.0.1:`port` accepts, `p` exits (an error with its log's tail), or `timeout`.
pub fn wait_port(p: &mut Proc, port: u16, timeout: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + timeout;
    loop {
        if port_open(port) {
            return Ok(());
        }
        if let Some(s) = p.poll() {
            bail!(
                "{} exited ({s}) before opening port {port}; log {}:\n{}",
                p.name,
                p.log.display(),
                crate::files::tail(&p.log, 20)
            );
        }
        if Instant::now() > until {
            bail!("{} did not open port {port} within {timeout:?}", p.name);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A random hex token (16 bytes) from the OS.
pub fn random_token() -> anyhow::Result<String> {
    let mut b = [0u8; 16];
    std::io::Read::read_exact(&mut File::open("/dev/urandom")?, &mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}
