//! The files of a whole-system run: a growing log followed line by line, a log's tail, the
//! simulator's env file, traces as they finally stand, fresh folders.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Reads the complete new lines of a growing file (a child's log, the drift ledger).
pub struct Follow {
    path: PathBuf,
    pos: u64,
    /// Bytes after the last newline read so far: the start of a line still being written (it
    /// may end inside a UTF-8 character).
    partial: Vec<u8>,
}

impl Follow {
    /// Follows `path` from its start (a file that does not exist yet has no lines).
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            pos: 0,
            partial: Vec::new(),
        }
    }

    /// The lines completed since the last call (without their newline).
    pub fn lines(&mut self) -> Vec<String> {
        let Ok(mut f) = File::open(&self.path) else {
            return Vec::new();
        };
        if f.seek(SeekFrom::Start(self.pos)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        let Ok(n) = f.read_to_end(&mut buf) else {
            return Vec::new();
        };
        self.pos += n as u64;
        self.partial.extend_from_slice(&buf);
        let Some(last) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Vec::new();
        };
        let rest = self.partial.split_off(last + 1);
        let done = std::mem::replace(&mut self.partial, rest);
        String::from_utf8_lossy(&done[..last])
            .split('\n')
            .map(str::to_string)
            .collect()
    }
}

/// The last `n` lines of a file ("" when it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Removes and re-creates a folder.
pub fn fresh_dir(p: &Path) -> anyhow::Result<()> {
    if p.exists() {
        std::fs::remove_dir_all(p)?;
    }
    std::fs::create_dir_all(p)?;
    Ok(())
}

/// Writes `text` to `path`, creating its folder.
pub fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut f = File::create(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// `KEY=VALUE` lines of an env file (the simulator's `--credentials-out`); `#` lines skipped.
pub fn read_env_file(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The rows of a trace or bar file (header excluded) as they finally stand: a later row for a
/// time replaces an earlier one (a revised bar and the bars stepped again after it are appended,
/// docs/ipc.md "Revisions"), in time order (ISO-8601 times order as strings).
pub fn final_rows(text: &str) -> Vec<&str> {
    let mut by_time = BTreeMap::new();
    for row in text.lines().skip(1) {
        by_time.insert(row.split(',').next().unwrap_or_default(), row);
    }
    by_time.into_values().collect()
}

/// `text` (a trace or bar file) with its header and its [`final_rows`], one per line.
pub fn final_csv(text: &str) -> String {
    let mut out = format!("{}\n", text.lines().next().unwrap_or_default());
    for row in final_rows(text) {
        out.push_str(row);
        out.push('\n');
    }
    out
}
