//! What a long-running shell process (executor, predictor) needs from its host:
//!
//! - [`shutdown_signal`]: the stop request, SIGTERM (what systemd sends) or SIGINT (Ctrl-C);
//!
//! and its resident memory, kept to what it uses (Linux with glibc; a no-op elsewhere):
//!
//! - [`limit_arenas`]: one malloc arena for all threads (glibc gives each thread that allocates
//!   an arena of its own, whose pages stay resident);
//! - [`trim`]: returns the free heap pages to the kernel (`malloc_trim`) and unmaps the clean
//!   file-backed mappings (the binary's code and read-only data, the shared libraries:
//!   `MADV_DONTNEED`), so that what start-up alone ran (argument parsing, loading, reading
//!   files) does not stay resident: the pages that come back are those the process runs from
//!   then on (with the kernel's fault-around, in blocks of up to 64 KiB). Only mappings that
//!   are read-only, private, file-backed and hold no private (copied-on-write) page are
//!   unmapped: their pages are the file's own and fault back unchanged, so nothing but page
//!   faults can differ;
//! - [`keep_warm`]: a thread that reads one byte of each resident page every 200 ms (the shells'
//!   `--keep-warm-ms`), so that a bar after minutes of idle finds the process's memory warm
//!   ([`warm`]).

pub mod warm;
pub use warm::{KeepWarm, keep_warm};

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use libc::{M_ARENA_MAX, MADV_DONTNEED, c_void, madvise, malloc_trim, mallopt};

    pub fn limit_arenas() {
        // SAFETY: mallopt only changes the allocator's tuning; it is called before the
        // process starts its threads.
        unsafe {
            mallopt(M_ARENA_MAX, 1);
        }
    }

    /// A read-only, private, file-backed mapping of /proc/self/smaps; `clean` when it holds
    /// no private (copied-on-write) page.
    struct Mapping {
        start: usize,
        len: usize,
        clean: bool,
    }

    fn mappings(smaps: &str) -> Vec<Mapping> {
        let mut out: Vec<Mapping> = Vec::new();
        let mut current: Option<Mapping> = None;
        for line in smaps.lines() {
            let mut f = line.split_ascii_whitespace();
            let Some(first) = f.next() else { continue };
            if let Some((a, b)) = first.split_once('-')
                && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                // A new mapping: "start-end perms offset dev inode [path]".
                out.extend(current.take());
                let perms = f.next().unwrap_or("");
                let inode = f.nth(2).unwrap_or("0");
                let p = perms.as_bytes();
                let eligible =
                    p.len() == 4 && p[0] == b'r' && p[1] == b'-' && p[3] == b'p' && inode != "0";
                current = eligible.then_some(Mapping {
                    start: a,
                    len: b.saturating_sub(a),
                    clean: false,
                });
            } else if first == "Anonymous:"
                && let Some(m) = current.as_mut()
            {
                m.clean = f.next() == Some("0");
            }
        }
        out.extend(current);
        out
    }

    pub fn trim() {
        // SAFETY: malloc_trim only returns free memory of the allocator to the kernel.
        unsafe {
            malloc_trim(0);
        }
        let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
            return;
        };
        for m in mappings(&smaps).into_iter().filter(|m| m.clean) {
            // SAFETY: the range is one whole mapping of this process, read-only, private and
            // file-backed, with no private (copied-on-write) page in it: MADV_DONTNEED only
            // unmaps pages that are the file's own, and they are mapped back unchanged on the
            // next access; being read-only, nothing can write a private page into it meanwhile.
            unsafe {
                madvise(m.start as *mut c_void, m.len, MADV_DONTNEED);
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        #[test]
        fn only_clean_read_only_private_file_mappings_are_unmapped() {
            let smaps = "\
        5600-5700 r--p 00000000 fe:00 42 /bin/x
        Rss:                  12 kB
        Anonymous:             0 kB
        5700-5800 r-xp 00001000 fe:00 42 /bin/x
        Anonymous:             0 kB
        5800-5900 r--p 00002000 fe:00 42 /bin/x
        Anonymous:             8 kB
        5900-5a00 rw-p 00003000 fe:00 42 /bin/x
        Anonymous:             0 kB
        5a00-5b00 rw-p 00000000 00:00 0 [heap]
        Anonymous:            40 kB
        7f00-7f10 r--s 00000000 fe:00 43 /dev/shm/y
        Anonymous:             0 kB
        7f10-7f20 r--p 00000000 00:00 0 [vvar]
        Anonymous:             0 kB
        ";
            let m: Vec<(usize, usize, bool)> = mappings(smaps)
                .into_iter()
                .map(|m| (m.start, m.len, m.clean))
                .collect();
            assert_eq!(
                m,
                vec![
                    (0x5600, 0x100, true),
                    (0x5700, 0x100, true),
                    (0x5800, 0x100, false)
                ]
            );
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    pub fn limit_arenas() {}
    pub fn trim() {}
}

/// One malloc arena for the whole process. Call before any thread is started.
pub fn limit_arenas() {
    imp::limit_arenas();
}

/// Trims the resident set to what the process uses from now on (see the module).
pub fn trim() {
    // Under the keep-warm thread's lock: its next pass lists the pages again first.
    let mut g = warm::trims();
    imp::trim();
    *g += 1;
}

/// Resolves when the process is asked to stop: SIGTERM (`systemctl stop`, `kill`) or SIGINT
/// (Ctrl-C). A shell that awaits only Ctrl-C dies on SIGTERM without its stop path (journal
/// flush, stop alert, socket removal).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
