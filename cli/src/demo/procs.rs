//! Child processes of the demo: the current binary re-executed with a subcommand, stdout and
//! stderr captured line by line (to a log file and to the view), stopped on every exit path.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

/// Set by SIGINT/SIGTERM.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Routes SIGINT and SIGTERM to [`INTERRUPTED`] so the demo can stop its children and report.
pub fn trap_signals() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    // SAFETY: the handler only stores to an atomic (async-signal-safe); `signal` is called with
    // valid signal numbers and a valid function pointer.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

/// A line a child wrote: (child index, from stderr, text).
pub type Line = (usize, bool, String);

/// One running child.
pub struct Proc {
    /// `sim`, `executor` or `predictor`.
    pub name: String,
    child: Child,
    /// Exit status once reaped.
    pub status: Option<ExitStatus>,
    /// Whether we asked it to stop (SIGTERM).
    pub stopped_by_us: bool,
}

impl Proc {
    /// Starts `exe args…` with `envs`, capturing its output into `logs/NAME.log` and `tx`.
    pub fn spawn(
        idx: usize,
        name: &str,
        exe: &Path,
        args: &[String],
        envs: &[(String, String)],
        logs: &Path,
        tx: &Sender<Line>,
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec only async-signal-safe calls are made (prctl); the
            // closure touches no memory of the parent. The child dies with the demo even if the
            // demo is killed with SIGKILL.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {name}: {e}"))?;
        let log = File::create(logs.join(format!("{name}.log")))?;
        let log = std::sync::Arc::new(std::sync::Mutex::new(log));
        if let Some(out) = child.stdout.take() {
            pump(idx, false, out, log.clone(), tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            pump(idx, true, err, log, tx.clone());
        }
        Ok(Self {
            name: name.to_string(),
            child,
            status: None,
            stopped_by_us: false,
        })
    }

    /// Reaps the child if it has exited.
    pub fn poll(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.status = Some(s);
            }
        }
        self.status
    }

    /// SIGTERM, then SIGKILL after `grace`; waits for it.
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
        let _ = self.child.kill();
        if let Ok(s) = self.child.wait() {
            self.status = Some(s);
        }
    }

    /// Whether it ended well: exit 0, or ended by the SIGTERM we sent.
    pub fn ended_well(&self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        match self.status {
            Some(s) => s.success() || (self.stopped_by_us && s.signal() == Some(libc::SIGTERM)),
            None => false,
        }
    }

    /// A word for the view and the summary.
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

fn pump(
    idx: usize,
    is_err: bool,
    r: impl std::io::Read + Send + 'static,
    log: std::sync::Arc<std::sync::Mutex<File>>,
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

/// Every child, stopped when dropped (normal end, error, panic unwinding).
#[derive(Default)]
pub struct Group {
    /// The children in start order.
    pub procs: Vec<Proc>,
}

impl Group {
    /// Stops them in reverse start order (predictor, executor, sim).
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

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A random hex token from the OS.
pub fn random_token() -> anyhow::Result<String> {
    let mut b = [0u8; 16];
    std::io::Read::read_exact(&mut File::open("/dev/urandom")?, &mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Whether 127.0.0.1:port accepts a TCP connection.
pub fn port_open(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
}
