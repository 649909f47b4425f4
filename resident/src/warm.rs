//! Keeping the resident set warm between bars (Linux; a no-op elsewhere).
//!
//! A process that waits minutes for its next bar finds its memory cold when the bar comes: its
//! pages evicted from the caches and, on a virtual machine whose host reclaims or ages idle
//! guest memory, from the host's own mappings too. On the development VM (Firecracker) one
//! 4 KiB page read after 7.5 s of idle costs ~40 µs (1 MiB: 5-10 ms, 0.06 ms warm), so a bar's
//! path through three processes paid more in page touches than in work.
//!
//! [`keep_warm`] reads one byte of each page the process has resident, every `every`, from a
//! thread of its own. Only pages already present are read (`/proc/self/pagemap`), so nothing
//! is faulted in and the resident set does not grow. The pages of the executable's own file
//! (most of a process's pages: its code) are read directly: nothing unmaps them while the
//! process runs. Every other page (heap, stacks, anonymous mappings, libraries) is read through
//! `process_vm_readv` on the process itself: the kernel copies the byte, and a page unmapped
//! since the list was taken (a freed allocation, a trimmed heap) fails that one read with
//! `EFAULT` instead of faulting the process. The list of pages is taken again every
//! [`REFRESH`] passes, and before the first pass after a [`crate::trim`]; between two readings a
//! page freed and mapped again by a new mapping at the same address is read there, and so
//! faulted in: one page, until the next reading.

use std::time::Duration;

/// Passes between two readings of the page list.
pub const REFRESH: u64 = 16;

/// At most this many pages are kept warm (64 MiB): a process far larger than ours pays a
/// bounded pass.
pub const MAX_PAGES: usize = 16_384;

/// What one pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pass {
    /// Pages in the list.
    pub pages: usize,
    /// Pages read (the others were unmapped since the list was taken).
    pub read: usize,
}

/// The pages a pass reads: those of the executable's own file, read directly (the cheap way:
/// about a quarter of a read through the kernel, and most of a process's pages are its code),
/// and the others (heap, stacks, anonymous mappings, libraries), read through the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pages {
    /// Pages of the executable's file mappings.
    pub direct: Vec<usize>,
    /// Every other page.
    pub kernel: Vec<usize>,
}

impl Pages {
    /// All pages.
    pub fn len(&self) -> usize {
        self.direct.len() + self.kernel.len()
    }

    /// No page.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use super::{MAX_PAGES, Pages, Pass};
    use std::io::{self, Read, Seek, SeekFrom};

    const PAGE: usize = 4096;
    /// `IOV_MAX`: iovecs per `process_vm_readv` call.
    const BATCH: usize = 1024;

    /// The start of every page this process has present (its page table maps it), over its
    /// readable mappings but the kernel's own (`[vvar]`, `[vsyscall]`, `[vdso]`): those of the
    /// executable's own file apart (read directly: see [`Pages`]).
    pub fn present_pages() -> io::Result<Pages> {
        let maps = std::fs::read_to_string("/proc/self/maps")?;
        let exe = std::env::current_exe()?;
        let exe = exe.to_string_lossy();
        let mut pagemap = std::fs::File::open("/proc/self/pagemap")?;
        let mut out = Pages::default();
        // The pagemap is read in blocks of 512 entries (one page of them): a large mapping
        // costs more reads, not more memory.
        let mut entries = [0u8; 4096];
        for line in maps.lines() {
            let Some((start, end, path)) = readable_range(line) else {
                continue;
            };
            let direct = path == exe;
            let mut page = start;
            while page < end {
                let count = ((end - page) / PAGE).min(entries.len() / 8);
                let block = &mut entries[..count * 8];
                pagemap.seek(SeekFrom::Start((page / PAGE * 8) as u64))?;
                if pagemap.read_exact(block).is_err() {
                    // Unmapped while being read: the next refresh sees the new layout.
                    break;
                }
                for (i, e) in block.chunks_exact(8).enumerate() {
                    let e = u64::from_le_bytes(e.try_into().expect("8 bytes"));
                    // Bit 63: present in RAM.
                    if e >> 63 == 1 {
                        let list = if direct {
                            &mut out.direct
                        } else {
                            &mut out.kernel
                        };
                        list.push(page + i * PAGE);
                        if out.len() == MAX_PAGES {
                            return Ok(out);
                        }
                    }
                }
                page += count * PAGE;
            }
        }
        Ok(out)
    }

    /// `start-end perms offset dev inode [path]` of a readable mapping that is not the
    /// kernel's: its start, end and path.
    pub(super) fn readable_range(line: &str) -> Option<(usize, usize, &str)> {
        let mut f = line.splitn(6, ' ');
        let range = f.next()?;
        let perms = f.next()?;
        let path = f.nth(3).unwrap_or("").trim_start();
        if !perms.starts_with('r') || path.starts_with("[v") {
            return None;
        }
        let (a, b) = range.split_once('-')?;
        let a = usize::from_str_radix(a, 16).ok()?;
        let b = usize::from_str_radix(b, 16).ok()?;
        (b > a).then_some((a, b, path))
    }

    /// Reads one byte of each page: the executable's directly, the others through the kernel
    /// (`process_vm_readv` on this process), where a page unmapped meanwhile is skipped, never
    /// faulted on.
    pub fn pass(pages: &Pages) -> io::Result<Pass> {
        let mut sum = 0u8;
        for &p in &pages.direct {
            // SAFETY: `p` is a page of a mapping of this process's own executable file, which
            // nothing unmaps while the process runs (the loader mapped it at exec) and which
            // cannot shrink under it (the kernel refuses to write or truncate a running
            // executable: ETXTBSY). A page dropped meanwhile (`trim`) is read back from the
            // file.
            sum = sum.wrapping_add(unsafe { std::ptr::read_volatile(p as *const u8) });
        }
        std::hint::black_box(sum);
        let mut sink = [0u8; BATCH];
        let mut remote: Vec<libc::iovec> = Vec::with_capacity(BATCH);
        let list = &pages.kernel;
        let mut read = pages.direct.len();
        let mut i = 0;
        while i < list.len() {
            let n = (list.len() - i).min(BATCH);
            remote.clear();
            remote.extend(list[i..i + n].iter().map(|&p| libc::iovec {
                iov_base: p as *mut libc::c_void,
                iov_len: 1,
            }));
            let local = libc::iovec {
                iov_base: sink.as_mut_ptr().cast(),
                iov_len: n,
            };
            // SAFETY: `local` is this function's buffer of `n` bytes; the remote iovecs are
            // addresses the kernel reads from this process's address space on our behalf (an
            // unmapped one fails the call there with EFAULT, it is never dereferenced here).
            let got = unsafe {
                libc::process_vm_readv(libc::getpid(), &local, 1, remote.as_ptr(), n as _, 0)
            };
            if got < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EFAULT) {
                    return Err(e);
                }
                // The first page is gone: skip it.
                i += 1;
                continue;
            }
            // One byte per page: the pages read, in order; the one after them (if any) is
            // gone.
            let got = got as usize;
            read += got;
            i += if got < n { got + 1 } else { n };
        }
        Ok(Pass {
            pages: pages.len(),
            read,
        })
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::{Pages, Pass};
    use std::io;

    pub fn present_pages() -> io::Result<Pages> {
        Ok(Pages::default())
    }

    pub fn pass(pages: &Pages) -> io::Result<Pass> {
        Ok(Pass {
            pages: pages.len(),
            read: 0,
        })
    }
}

pub use imp::{pass, present_pages};

/// The keep-warm thread's settings and its first pass.
#[derive(Debug)]
pub struct KeepWarm {
    /// Time between two passes.
    pub every: Duration,
    /// The first pass, run before the thread started (its pages, all of them read).
    pub first: Pass,
}

/// Starts the keep-warm thread: one pass now (an error here, such as `process_vm_readv` not
/// permitted by a seccomp filter, is returned and no thread starts), then one pass every
/// `every`, the page list read again every [`REFRESH`] passes, for the life of the process. A
/// later error ends the thread (the process runs on, only colder).
///
/// Call it after [`crate::limit_arenas`]: the thread allocates its page list.
pub fn keep_warm(every: Duration) -> std::io::Result<KeepWarm> {
    let (mut pages, first, mut seen) = {
        let g = trims();
        let pages = present_pages()?;
        let first = pass(&pages)?;
        (pages, first, *g)
    };
    std::thread::Builder::new()
        .name("keep-warm".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut n = 0u64;
            loop {
                std::thread::sleep(every);
                n += 1;
                // A trim since the last pass dropped pages of the list: they are not read
                // (faulted back) but listed again, as every REFRESH passes.
                let g = trims();
                if n % REFRESH == 0 || *g != seen {
                    seen = *g;
                    match present_pages() {
                        Ok(p) => pages = p,
                        Err(_) => return,
                    }
                }
                if pass(&pages).is_err() {
                    return;
                }
            }
        })?;
    Ok(KeepWarm { every, first })
}

/// Trims so far ([`crate::trim`] counts them while holding this lock, and a pass holds it, so a
/// pass never reads from a list a trim has made stale: it would fault back the pages the trim
/// dropped).
static TRIMS: std::sync::Mutex<u64> = std::sync::Mutex::new(0);

/// The trim lock (poisoning ignored: it guards a counter).
pub(crate) fn trims() -> std::sync::MutexGuard<'static, u64> {
    TRIMS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// [`keep_warm`] every `every_ms` milliseconds (0: off), its start or its refusal logged: a
/// process that cannot keep warm runs on, only colder.
pub fn start_logged(every_ms: u64) {
    if every_ms == 0 {
        tracing::info!(
            event = "keep_warm",
            on = false,
            "keep-warm off (--keep-warm-ms 0)"
        );
        return;
    }
    match keep_warm(Duration::from_millis(every_ms)) {
        Ok(w) => tracing::info!(
            event = "keep_warm",
            on = true,
            every_ms,
            pages = w.first.pages,
            "keep-warm on: {} resident pages read every {every_ms} ms",
            w.first.pages
        ),
        Err(e) => tracing::warn!(
            event = "keep_warm",
            on = false,
            error = %e,
            "keep-warm unavailable ({e}): the process runs without it"
        ),
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    fn map(pages: usize) -> *mut u8 {
        // SAFETY: a fresh private anonymous mapping, unmapped by the test.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                pages * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        p.cast()
    }

    fn in_range(list: &[usize], base: *mut u8, pages: usize) -> Vec<usize> {
        let b = base as usize;
        list.iter()
            .filter(|&&p| p >= b && p < b + pages * PAGE)
            .map(|&p| (p - b) / PAGE)
            .collect()
    }

    #[test]
    fn only_the_pages_present_are_listed_and_a_pass_faults_none_in() {
        let base = map(8);
        // SAFETY: pages 1 and 5 of the mapping above.
        unsafe {
            base.add(PAGE).write(7);
            base.add(5 * PAGE).write(9);
        }
        let list = present_pages().unwrap();
        assert_eq!(in_range(&list.kernel, base, 8), vec![1, 5]);
        assert_eq!(in_range(&list.direct, base, 8), Vec::<usize>::new());
        // The whole list (other tests map and unmap pages meanwhile: some may be gone), then
        // this mapping's two pages alone, both read.
        pass(&list).unwrap();
        let own = Pages {
            direct: Vec::new(),
            kernel: vec![base as usize + PAGE, base as usize + 5 * PAGE],
        };
        assert_eq!(pass(&own).unwrap(), Pass { pages: 2, read: 2 });
        // The pass read pages 1 and 5 and no other page of the mapping became present.
        assert_eq!(
            in_range(&present_pages().unwrap().kernel, base, 8),
            vec![1, 5]
        );
        // SAFETY: the mapping made above.
        unsafe { libc::munmap(base.cast(), 8 * PAGE) };
    }

    #[test]
    fn a_mapping_longer_than_one_block_of_the_pagemap_is_read_whole() {
        // 1,100 pages: three blocks of 512 entries.
        let base = map(1100);
        for i in [0, 511, 512, 600, 1099] {
            // SAFETY: page i of the mapping above.
            unsafe { base.add(i * PAGE).write(3) };
        }
        let list = present_pages().unwrap();
        assert_eq!(
            in_range(&list.kernel, base, 1100),
            vec![0, 511, 512, 600, 1099]
        );
        // SAFETY: the mapping made above.
        unsafe { libc::munmap(base.cast(), 1100 * PAGE) };
    }

    #[test]
    fn a_page_freed_after_the_list_was_taken_is_skipped_not_faulted_on() {
        let base = map(4);
        for i in 0..4 {
            // SAFETY: page i of the mapping above.
            unsafe { base.add(i * PAGE).write(1) };
        }
        let list = Pages {
            direct: Vec::new(),
            kernel: (0..4).map(|i| base as usize + i * PAGE).collect(),
        };
        // Pages 0 and 2 go away (a freed allocation): the pass reads 1 and 3 and survives. Each
        // is replaced in one call by an inaccessible reservation (its memory freed, its address
        // unreadable): a plain munmap would let another test's mmap, running in parallel, take
        // the address back before the pass (a run under the faked clock saw it read 3 pages).
        for i in [0, 2] {
            let at = base.wrapping_add(i * PAGE);
            // SAFETY: page i of the mapping above, replaced in place (MAP_FIXED).
            let p = unsafe {
                libc::mmap(
                    at.cast(),
                    PAGE,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            assert_eq!(p, at.cast());
        }
        assert_eq!(pass(&list).unwrap(), Pass { pages: 4, read: 2 });
        // SAFETY: the mapping made above (its pages and the two reservations).
        unsafe { libc::munmap(base.cast(), 4 * PAGE) };
    }

    #[test]
    fn the_kernels_mappings_and_unreadable_ones_are_left_out() {
        use imp::readable_range;
        assert_eq!(
            readable_range("5600-5700 r-xp 00001000 fe:00 42                         /bin/x y"),
            Some((0x5600, 0x5700, "/bin/x y"))
        );
        assert_eq!(
            readable_range("5a00-5b00 rw-p 00000000 00:00 0                          [heap]"),
            Some((0x5a00, 0x5b00, "[heap]"))
        );
        assert_eq!(
            readable_range("7f00-7f10 rw-p 00000000 00:00 0 "),
            Some((0x7f00, 0x7f10, ""))
        );
        assert_eq!(
            readable_range("7f10-7f20 r--p 00000000 00:00 0 [vvar]"),
            None
        );
        assert_eq!(
            readable_range("7f20-7f30 r-xp 00000000 00:00 0 [vdso]"),
            None
        );
        assert_eq!(readable_range("7f30-7f40 ---p 00000000 00:00 0"), None);
    }

    #[test]
    fn the_executables_pages_are_read_directly_the_others_through_the_kernel() {
        let list = present_pages().unwrap();
        // This function's own code is a page of the test binary.
        let here = the_executables_pages_are_read_directly_the_others_through_the_kernel as fn()
            as usize
            & !(PAGE - 1);
        assert!(list.direct.contains(&here));
        assert!(!list.kernel.contains(&here));
        // A heap page is read through the kernel.
        let b = Box::new([1u8; 64]);
        let heap = (&*b as *const [u8; 64] as usize) & !(PAGE - 1);
        let list = present_pages().unwrap();
        assert!(list.kernel.contains(&heap) && !list.direct.contains(&heap));
    }

    #[test]
    fn the_thread_starts_after_a_first_pass_over_what_is_present() {
        // An hour between passes: the thread never reads while the other tests of this process
        // map and unmap their pages (a stale list could read a page of a new mapping at a
        // freed one's address, and fault it in under their assertions).
        let w = keep_warm(Duration::from_secs(3600)).unwrap();
        assert!(w.first.pages > 0 && w.first.read > 0, "{w:?}");
    }
}
