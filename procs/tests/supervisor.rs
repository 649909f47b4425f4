//! The one process supervisor (`oracle demo`, the bench and the chaos proof start their children
//! through it): no child outlives its `Proc` or `Group`, output reaches the log (and the channel
//! of a live view), a stop is SIGTERM then SIGKILL, a child that dies early is named with its log.

use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use oracle_procs::files::Follow;
use oracle_procs::supervisor::{Group, Output, Proc, all_alive, free_port, wait_port};

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oracle-procs-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", script]);
    c
}

/// Whether a process with this pid exists (not yet reaped, or reused: pids are not reused this
/// quickly on Linux, which hands them out in increasing order).
fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn wait_exit(p: &mut Proc) -> std::process::ExitStatus {
    for _ in 0..1000 {
        if let Some(s) = p.poll() {
            return s;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{} did not exit", p.name);
}

#[test]
fn a_dropped_proc_is_killed_and_reaped() {
    let d = tmpdir("drop");
    let p = Proc::spawn(
        "sleeper",
        sh("exec sleep 30"),
        &d.join("s.log"),
        Output::Log,
    )
    .expect("spawn");
    let pid = p.pid().expect("running");
    assert!(exists(pid));
    drop(p);
    assert!(
        !exists(pid),
        "pid {pid} is gone (killed and reaped) once dropped"
    );
}

#[test]
fn a_dropped_group_stops_every_child() {
    let d = tmpdir("group");
    let mut g = Group::default();
    for name in ["a", "b", "c"] {
        g.procs.push(
            Proc::spawn(
                name,
                sh("exec sleep 30"),
                &d.join(format!("{name}.log")),
                Output::Log,
            )
            .expect("spawn"),
        );
    }
    let pids: Vec<u32> = g.procs.iter().map(|p| p.pid().expect("running")).collect();
    drop(g);
    for pid in pids {
        assert!(!exists(pid), "pid {pid} is gone once its group is dropped");
    }
}

#[test]
fn stop_ends_a_child_with_sigterm_and_calls_it_stopped() {
    let d = tmpdir("stop");
    let mut p = Proc::spawn(
        "sleeper",
        sh("exec sleep 30"),
        &d.join("s.log"),
        Output::Log,
    )
    .expect("spawn");
    assert_eq!(p.status_word(), "running");
    p.stop(Duration::from_secs(20));
    assert!(p.pid().is_none(), "reaped");
    assert_eq!(p.status_word(), "stopped");
    assert!(p.ended_well(), "a child we stopped with SIGTERM ended well");
}

#[test]
fn a_child_that_ignores_sigterm_is_killed_after_the_grace_and_did_not_end_well() {
    let d = tmpdir("stubborn");
    // `exec` keeps the ignored SIGTERM for sleep itself.
    let mut p = Proc::spawn(
        "stubborn",
        sh("trap '' TERM; echo ready; exec sleep 30"),
        &d.join("s.log"),
        Output::Log,
    )
    .expect("spawn");
    // SIGTERM only once the trap is set.
    let mut log = Follow::new(&d.join("s.log"));
    while !log.lines().iter().any(|l| l == "ready") {
        assert!(p.poll().is_none(), "the stubborn child runs");
        std::thread::sleep(Duration::from_millis(10));
    }
    p.stop(Duration::from_millis(200));
    assert_eq!(p.status_word(), "signal 9");
    assert!(!p.ended_well());
}

#[test]
fn a_child_that_fails_on_its_own_did_not_end_well() {
    let d = tmpdir("fail");
    let mut p = Proc::spawn("failing", sh("exit 3"), &d.join("f.log"), Output::Log).expect("spawn");
    wait_exit(&mut p);
    assert_eq!(p.status_word(), "exit 3");
    assert!(!p.ended_well());
}

#[test]
fn a_restarted_child_continues_its_log() {
    let d = tmpdir("log");
    let log = d.join("x.log");
    for word in ["first", "second"] {
        let mut p = Proc::spawn(
            "x",
            sh(&format!("echo {word}; echo {word}-err >&2")),
            &log,
            Output::Log,
        )
        .expect("spawn");
        wait_exit(&mut p);
    }
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, ["first", "first-err", "second", "second-err"]);
}

#[test]
fn lines_reach_the_channel_with_their_index_and_stream_and_the_log() {
    let d = tmpdir("lines");
    let log = d.join("v.log");
    std::fs::write(&log, "an older run\n").expect("old log");
    let (tx, rx) = mpsc::channel();
    let mut p = Proc::spawn(
        "viewed",
        sh("echo to-out; echo to-err >&2"),
        &log,
        Output::Lines { idx: 7, tx: &tx },
    )
    .expect("spawn");
    wait_exit(&mut p);
    drop(tx);
    let mut got: Vec<(usize, bool, String)> = rx.iter().collect();
    got.sort();
    assert_eq!(
        got,
        [
            (7, false, "to-out".to_string()),
            (7, true, "to-err".to_string())
        ]
    );
    let mut logged: Vec<String> = std::fs::read_to_string(&log)
        .expect("log")
        .lines()
        .map(str::to_string)
        .collect();
    logged.sort();
    assert_eq!(logged, ["to-err", "to-out"], "the log starts afresh");
}

#[test]
fn wait_port_names_a_child_that_exits_before_opening_its_port_with_its_log() {
    let d = tmpdir("port");
    let port = free_port().expect("port");
    let mut p = Proc::spawn(
        "broken-sim",
        sh("echo cannot read the bar files; exit 2"),
        &d.join("b.log"),
        Output::Log,
    )
    .expect("spawn");
    let e = wait_port(&mut p, port, Duration::from_secs(60)).expect_err("it never listens");
    let msg = format!("{e:#}");
    assert!(msg.contains("broken-sim"), "{msg}");
    assert!(msg.contains(&port.to_string()), "{msg}");
    assert!(msg.contains("cannot read the bar files"), "{msg}");
}

#[test]
fn all_alive_names_the_child_that_exited_with_its_log() {
    let d = tmpdir("alive");
    let mut ok =
        Proc::spawn("steady", sh("exec sleep 30"), &d.join("s.log"), Output::Log).expect("spawn");
    let mut gone = Proc::spawn(
        "quitter",
        sh("echo out of memory; exit 1"),
        &d.join("q.log"),
        Output::Log,
    )
    .expect("spawn");
    wait_exit(&mut gone);
    let e = all_alive(&mut [&mut ok, &mut gone]).expect_err("one exited");
    let msg = format!("{e:#}");
    assert!(
        msg.contains("quitter") && msg.contains("out of memory"),
        "{msg}"
    );
    assert!(!msg.contains("steady"), "{msg}");
    assert!(all_alive(&mut [&mut ok]).is_ok());
}

#[test]
fn a_program_that_cannot_start_is_named() {
    let d = tmpdir("missing");
    let e = match Proc::spawn(
        "executor",
        Command::new(d.join("no-such-binary")),
        &d.join("e.log"),
        Output::Log,
    ) {
        Ok(_) => panic!("a missing binary cannot start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.contains("cannot start executor") && e.contains("no-such-binary"),
        "{e}"
    );
}
