//! `oracle backtest --html` in a real headless browser (Debian's `chromium`): the tearsheet is
//! rendered to a screenshot that must exist and not be blank, with no console message (an
//! uncaught error, a resource that failed to load). The check itself is proven to catch a script
//! error injected into the page and a blank page. `oracle report --state`'s page (a state folder
//! written by hand, `common/state_fixture.rs`) passes the same check.
//!
//! Without chromium the tests say so and pass, unless `ORACLE_REQUIRE_BROWSER` is set (non-empty,
//! not `0`): `scripts/test`, which CI runs after `scripts/setup` has installed chromium, sets it.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[path = "common/state_fixture.rs"]
mod state_fixture;

const BIN: &str = env!("CARGO_BIN_EXE_oracle");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oracle-tearsheet-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

/// The browser: `ORACLE_CHROMIUM`, else the first of Debian's and Google's names on `PATH`.
fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ORACLE_CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for name in [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn required() -> bool {
    std::env::var("ORACLE_REQUIRE_BROWSER").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The browser, or `None` after saying why the test is skipped; a panic when it is required.
fn chromium_or_skip(test: &str) -> Option<PathBuf> {
    let found = find_chromium();
    if found.is_none() {
        assert!(
            !required(),
            "{test}: no chromium on PATH (nor ORACLE_CHROMIUM) and ORACLE_REQUIRE_BROWSER is set: \
             install it (scripts/setup: apt-get install chromium)"
        );
        println!(
            "{test}: SKIPPED: no chromium on PATH (install Debian's chromium, or set \
             ORACLE_CHROMIUM); scripts/test requires it"
        );
    }
    found
}

/// What the browser made of a page: the screenshot's bytes and its log.
struct Shot {
    png: Vec<u8>,
    log: String,
}

/// Renders `page` in headless chromium to `dir/shot.png`, logging to stderr (console messages
/// included). Off libfaketime (the suite's faked-clock pass): the browser runs on the real clock.
fn render(chromium: &Path, page: &Path, dir: &Path) -> Shot {
    let png = dir.join("shot.png");
    let log = dir.join("chromium.log");
    let _ = std::fs::remove_file(&png);
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,2400",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!(
            "file://{}",
            page.canonicalize().expect("page path").display()
        ))
        .env_remove("LD_PRELOAD")
        .env_remove("FAKETIME")
        .env_remove("FAKETIME_DONT_FAKE_MONOTONIC")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .unwrap_or_else(|e| panic!("{}: cannot start: {e}", chromium.display()));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for chromium") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish the screenshot in 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "chromium failed: {status}\n{log}");
    Shot {
        png: std::fs::read(&png).unwrap_or_default(),
        log,
    }
}

/// The check a rendered page must pass: no console message, a screenshot, not blank.
fn check(shot: &Shot) -> Result<(), String> {
    let console: Vec<&str> = shot
        .log
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .collect();
    if !console.is_empty() {
        return Err(format!("console messages:\n{}", console.join("\n")));
    }
    if shot.png.is_empty() {
        return Err(format!("no screenshot written\n{}", shot.log));
    }
    let (w, h, pixels) = decode_png(&shot.png)?;
    let background = pixels[0];
    let inked = pixels.iter().filter(|&&p| p != background).count();
    // A rendered tearsheet inks several percent of a 1200 × 2400 screenshot (text, charts,
    // tables); a blank page none.
    if inked * 200 < pixels.len() {
        return Err(format!(
            "the screenshot ({w}×{h}) is blank: {inked} of {} pixels differ from the background",
            pixels.len()
        ));
    }
    Ok(())
}

/// Decodes an 8-bit, non-interlaced RGB or RGBA PNG (what chromium writes) to its pixels.
fn decode_png(bytes: &[u8]) -> Result<(u32, u32, Vec<[u8; 4]>), String> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    let body = bytes
        .strip_prefix(SIGNATURE)
        .ok_or("the screenshot is not a PNG")?;
    let (mut at, mut header, mut data) = (0, None, Vec::new());
    while at + 8 <= body.len() {
        let len = u32::from_be_bytes(body[at..at + 4].try_into().expect("4 bytes")) as usize;
        let kind = &body[at + 4..at + 8];
        let chunk = body
            .get(at + 8..at + 8 + len)
            .ok_or("the PNG is cut short")?;
        match kind {
            b"IHDR" => header = Some(chunk.to_vec()),
            b"IDAT" => data.extend_from_slice(chunk),
            b"IEND" => break,
            _ => {}
        }
        at += 12 + len;
    }
    let header = header.ok_or("the PNG has no IHDR")?;
    let w = u32::from_be_bytes(header[0..4].try_into().expect("4 bytes"));
    let h = u32::from_be_bytes(header[4..8].try_into().expect("4 bytes"));
    let (depth, colour, interlace) = (header[8], header[9], header[12]);
    let channels = match (depth, colour, interlace) {
        (8, 2, 0) => 3,
        (8, 6, 0) => 4,
        _ => {
            return Err(format!(
                "PNG depth {depth} colour {colour} interlace {interlace}: not read here"
            ));
        }
    };
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&data[..])
        .read_to_end(&mut raw)
        .map_err(|e| format!("the PNG's data does not inflate: {e}"))?;
    let stride = w as usize * channels;
    if raw.len() != (stride + 1) * h as usize {
        return Err(format!(
            "the PNG's data is {} bytes, not {}",
            raw.len(),
            (stride + 1) * h as usize
        ));
    }
    let mut prev = vec![0u8; stride];
    let mut pixels = Vec::with_capacity(w as usize * h as usize);
    for row in raw.chunks_exact(stride + 1) {
        let (filter, line) = (row[0], &row[1..]);
        let mut cur = vec![0u8; stride];
        for i in 0..stride {
            let a = if i >= channels { cur[i - channels] } else { 0 };
            let b = prev[i];
            let c = if i >= channels { prev[i - channels] } else { 0 };
            let predicted = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => {
                    let p = i16::from(a) + i16::from(b) - i16::from(c);
                    let (pa, pb, pc) = (
                        (p - i16::from(a)).abs(),
                        (p - i16::from(b)).abs(),
                        (p - i16::from(c)).abs(),
                    );
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => return Err(format!("PNG row filter {f}")),
            };
            cur[i] = line[i].wrapping_add(predicted);
        }
        for p in cur.chunks_exact(channels) {
            pixels.push([p[0], p[1], p[2], if channels == 4 { p[3] } else { 255 }]);
        }
        prev = cur;
    }
    Ok((w, h, pixels))
}

/// The tearsheet of EURUSD_H1 over the last 1,500 bars of its file, written once by
/// `oracle backtest --html`; `None` when the models are not built.
fn tearsheet() -> Option<&'static Path> {
    static PAGE: OnceLock<Option<PathBuf>> = OnceLock::new();
    PAGE.get_or_init(|| {
        let zip = repo().join("models/EURUSD_H1.zip");
        if !zip.exists() {
            println!("no models/EURUSD_H1.zip: skipped");
            return None;
        }
        let dir = tmpdir("page");
        let text = std::fs::read_to_string(repo().join("data/EURUSD_H1.csv")).expect("bar file");
        let lines: Vec<&str> = text.lines().collect();
        let mut csv = format!("{}\n", lines[0]);
        for l in &lines[lines.len() - 1500..] {
            csv.push_str(l);
            csv.push('\n');
        }
        std::fs::write(dir.join("bars.csv"), csv).expect("bars");
        let page = dir.join("report/EURUSD_H1.html");
        let out = Command::new(BIN)
            .args(["backtest", "--model"])
            .arg(&zip)
            .args(["--bars", "bars.csv", "--currency", "USD", "--html"])
            .arg(&page)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .expect("run oracle backtest");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(
            stderr.contains(&format!("tearsheet: {}", page.display())),
            "{stderr}"
        );
        Some(page)
    })
    .as_deref()
}

#[test]
fn the_backtest_tearsheet_renders_in_a_headless_browser_without_console_errors() {
    let Some(chromium) = chromium_or_skip("tearsheet in chromium") else {
        return;
    };
    let Some(page) = tearsheet() else { return };
    let html = std::fs::read_to_string(page).expect("page");
    assert!(html.contains("Backtest tearsheet: EURUSD_H1") && html.contains("<svg"));
    let dir = tmpdir("render");
    let shot = render(&chromium, page, &dir);
    if let Err(e) = check(&shot) {
        panic!("the tearsheet fails the browser check: {e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_browser_check_catches_a_script_error_injected_into_the_tearsheet() {
    let Some(chromium) = chromium_or_skip("injected script error") else {
        return;
    };
    let Some(page) = tearsheet() else { return };
    let dir = tmpdir("inject");
    let html = std::fs::read_to_string(page).expect("page").replace(
        "</body>",
        "<script>throw new Error(\"injected\")</script></body>",
    );
    let bad = dir.join("bad.html");
    std::fs::write(&bad, html).expect("bad page");
    let shot = render(&chromium, &bad, &dir);
    let err = check(&shot).expect_err("a script error must fail the check");
    assert!(
        err.contains("Uncaught") && err.contains("injected"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_browser_check_catches_a_blank_page() {
    let Some(chromium) = chromium_or_skip("blank page") else {
        return;
    };
    let dir = tmpdir("blank");
    let blank = dir.join("blank.html");
    std::fs::write(&blank, "<!doctype html><html><body></body></html>\n").expect("page");
    let shot = render(&chromium, &blank, &dir);
    let err = check(&shot).expect_err("a blank page must fail the check");
    assert!(err.contains("blank"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_state_folder_report_renders_in_a_headless_browser_without_console_errors() {
    let Some(chromium) = chromium_or_skip("state report in chromium") else {
        return;
    };
    let dir = tmpdir("state");
    let state = dir.join("state");
    state_fixture::write(&state);
    let page = dir.join("state-report.html");
    let out = Command::new(BIN)
        .args(["report", "--currency", "USD", "--state"])
        .arg(&state)
        .arg("--out")
        .arg(&page)
        .stdin(Stdio::null())
        .output()
        .expect("run oracle report");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&page).expect("page");
    assert!(html.contains("<table class=\"guard\">") && html.contains("<svg"));
    let shot = render(&chromium, &page, &dir);
    if let Err(e) = check(&shot) {
        panic!("the state report fails the browser check: {e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
