//! The scoreboard: memory shared by the master and its workers (mapped before the first fork),
//! where each worker publishes what it is doing. Each worker writes only its own [`Slot`]; the
//! master reads all of them to spot stuck requests (harakiri), recycle workers and serve stats.
//!
//! Everything in it is an atomic, so any process may read while another writes; a zeroed page
//! is a valid, empty scoreboard.

use std::io;
use std::sync::atomic::{fence, AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering::*};
use std::sync::Arc;

use crate::clock::monotonic_us;

/// Workers that can be alive at once, old and new generations together during a reload.
pub(crate) const MAX_SLOTS: usize = 256;
/// Application threads a worker can have (`threads`).
pub(crate) const MAX_CORES: usize = 256;
/// Bytes of the request line kept per core ("GET /path").
const LINE_WORDS: usize = 12;

/// What one application thread ("core", as uWSGI calls it) is doing.
#[repr(C)]
pub(crate) struct Core {
    /// CLOCK_MONOTONIC milliseconds when the current request started; 0 when idle.
    started_ms: AtomicU64,
    pub(crate) requests: AtomicU64,
    /// Seqlock over `line`: odd while the line is being written.
    seq: AtomicU32,
    line_len: AtomicU32,
    line: [AtomicU64; LINE_WORDS],
}

/// One worker's part of the scoreboard.
#[repr(C)]
pub(crate) struct Slot {
    pub(crate) pid: AtomicI32,
    pub(crate) requests: AtomicU64,
    pub(crate) exceptions: AtomicU64,
    /// Response bytes produced by the application.
    pub(crate) tx: AtomicU64,
    /// Total microseconds spent in requests, and a moving average per request.
    pub(crate) running_time_us: AtomicU64,
    pub(crate) avg_rt_us: AtomicU64,
    pub(crate) cores: [Core; MAX_CORES],
}

/// The shared mapping.
pub(crate) struct Scoreboard {
    slots: &'static [Slot],
}

impl Scoreboard {
    /// Maps a zeroed, shared, anonymous region for [`MAX_SLOTS`] slots. Call in the master
    /// before forking; children inherit the same pages. The mapping lives as long as the
    /// process (pages are only backed by memory once touched).
    pub(crate) fn map() -> io::Result<Scoreboard> {
        let size = std::mem::size_of::<Slot>() * MAX_SLOTS;
        // SAFETY: an anonymous shared mapping with no address hint; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the mapping is `size` bytes, page-aligned (so aligned for Slot), zero-filled
        // (a valid value for every atomic in Slot), and never unmapped, hence 'static.
        let slots = unsafe { std::slice::from_raw_parts(ptr as *const Slot, MAX_SLOTS) };
        Ok(Scoreboard { slots })
    }

    pub(crate) fn slot(&self, index: usize) -> &'static Slot {
        &self.slots[index]
    }

    /// A slot no live worker uses.
    pub(crate) fn free_slot(&self, in_use: impl Fn(usize) -> bool) -> Option<usize> {
        (0..MAX_SLOTS).find(|i| !in_use(*i))
    }
}

impl Slot {
    /// Clears the slot for a new worker.
    pub(crate) fn reset(&self, pid: i32) {
        self.requests.store(0, Relaxed);
        self.exceptions.store(0, Relaxed);
        self.tx.store(0, Relaxed);
        self.running_time_us.store(0, Relaxed);
        self.avg_rt_us.store(0, Relaxed);
        for core in &self.cores {
            core.started_ms.store(0, Relaxed);
            core.requests.store(0, Relaxed);
            core.line_len.store(0, Relaxed);
        }
        self.pid.store(pid, Release);
    }

    /// Counts a finished request that took `micros`.
    pub(crate) fn finish(&self, micros: u64) {
        self.requests.fetch_add(1, Relaxed);
        self.running_time_us.fetch_add(micros, Relaxed);
        // An exponential moving average over roughly the last 16 requests.
        let old = self.avg_rt_us.load(Relaxed);
        let new = if old == 0 {
            micros
        } else {
            old - old / 16 + micros / 16
        };
        self.avg_rt_us.store(new, Relaxed);
    }
}

impl Core {
    /// Marks a request as started at `now_ms`, with its request line given in pieces
    /// (joined, cut to the slot's length). Only the words the line covers are written
    /// (readers stop at its length).
    pub(crate) fn begin(&self, line: &[&str], now_ms: u64) {
        let mut buf = [0u8; LINE_WORDS * 8];
        let mut len = 0;
        for piece in line {
            let n = piece.len().min(buf.len() - len);
            buf[len..len + n].copy_from_slice(&piece.as_bytes()[..n]);
            len += n;
        }
        // The seqlock's write side (see `line` for the read side). Odd while writing.
        self.seq.fetch_add(1, Relaxed);
        // No store of the line below may become visible before the odd count: a reader whose
        // loads see any of them then also sees this count (or a later one) after its acquire
        // fence, and retries. On x86 both fences cost no instruction.
        fence(Release);
        let words = buf.chunks_exact(8).filter_map(|c| c.first_chunk::<8>());
        for (word, bytes) in self.line.iter().zip(words).take(len.div_ceil(8)) {
            word.store(u64::from_le_bytes(*bytes), Relaxed);
        }
        self.line_len.store(len as u32, Relaxed);
        // Even again: publishes the line to readers that acquire this count.
        self.seq.fetch_add(1, Release);
        self.started_ms.store(now_ms.max(1), Release);
    }

    /// Marks the request as finished.
    pub(crate) fn end(&self) {
        self.started_ms.store(0, Release);
        self.requests.fetch_add(1, Relaxed);
    }

    /// When the current request started (CLOCK_MONOTONIC ms), if one is running.
    pub(crate) fn started_ms(&self) -> Option<u64> {
        Some(self.started_ms.load(Acquire)).filter(|t| *t != 0)
    }

    /// The request line of the current (or last) request.
    ///
    /// The seqlock's read side: the count before (acquire: the line stores of the write that
    /// made it even are visible), the words (relaxed), then an acquire fence and the count
    /// again. The fence is what makes the second read meaningful: an acquire *load* would let
    /// the word loads move after it, and a torn line would pass. With the fence, a word load
    /// that read a store of a later write synchronizes with that write's release fence, so the
    /// second read sees the later write's odd count, differs from the first, and the line is
    /// read again (Boehm, "Can seqlocks get along with programming language memory models?").
    pub(crate) fn line(&self) -> String {
        for _ in 0..8 {
            let before = self.seq.load(Acquire);
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let len = (self.line_len.load(Relaxed) as usize).min(LINE_WORDS * 8);
            let mut bytes = Vec::with_capacity(LINE_WORDS * 8);
            for word in &self.line {
                bytes.extend_from_slice(&word.load(Relaxed).to_le_bytes());
            }
            fence(Acquire);
            if self.seq.load(Relaxed) == before {
                bytes.truncate(len);
                return String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        String::from("?")
    }
}

/// A worker's handle on its slot, used by the application bridge to account for requests.
pub(crate) struct RequestStats {
    slot: &'static Slot,
    /// After this many requests (0: never) the worker asks to be recycled, once.
    limit: u64,
    on_limit: Box<dyn Fn() + Send + Sync>,
    asked: AtomicBool,
}

impl RequestStats {
    pub(crate) fn new(
        slot: &'static Slot,
        limit: u64,
        on_limit: Box<dyn Fn() + Send + Sync>,
    ) -> Arc<Self> {
        Arc::new(RequestStats {
            slot,
            limit,
            on_limit,
            asked: AtomicBool::new(false),
        })
    }

    /// Marks a request as running on application thread `core` until the timer is dropped;
    /// `line` is its request line in pieces.
    pub(crate) fn begin(self: &Arc<Self>, core: usize, line: &[&str]) -> RequestTimer {
        let core = core.min(MAX_CORES - 1);
        let start_us = monotonic_us();
        self.slot.cores[core].begin(line, start_us / 1000);
        RequestTimer {
            stats: self.clone(),
            core,
            start_us,
        }
    }

    /// Counts an exception raised by the application.
    pub(crate) fn exception(&self) {
        self.slot.exceptions.fetch_add(1, Relaxed);
    }

    /// Counts response bytes produced by the application.
    pub(crate) fn sent(&self, bytes: usize) {
        self.slot.tx.fetch_add(bytes as u64, Relaxed);
    }
}

/// A running request; dropping it marks the request finished.
pub(crate) struct RequestTimer {
    stats: Arc<RequestStats>,
    core: usize,
    /// CLOCK_MONOTONIC microseconds.
    start_us: u64,
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        let slot = self.stats.slot;
        slot.cores[self.core].end();
        slot.finish(monotonic_us().saturating_sub(self.start_us));
        let limit = self.stats.limit;
        if limit > 0
            && slot.requests.load(Relaxed) >= limit
            && !self.stats.asked.swap(true, Relaxed)
        {
            (self.stats.on_limit)();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::monotonic_ms;

    #[test]
    fn shared_across_fork() {
        let board = Scoreboard::map().unwrap();
        let slot = board.slot(3);
        slot.reset(42);
        // SAFETY: fork in a test; the child only touches atomics and exits with _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            slot.cores[1].begin(&["GET", " /stuck/in/the/child"], monotonic_ms());
            slot.finish(1500);
            // SAFETY: leaving the child without running the test harness's destructors.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waiting for the child we just forked.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(slot.pid.load(Relaxed), 42);
        assert_eq!(slot.requests.load(Relaxed), 1);
        assert_eq!(slot.avg_rt_us.load(Relaxed), 1500);
        assert!(slot.cores[1].started_ms().is_some());
        assert_eq!(slot.cores[1].line(), "GET /stuck/in/the/child");
        slot.cores[1].end();
        assert!(slot.cores[1].started_ms().is_none());
    }

    #[test]
    fn long_lines_are_cut() {
        let board = Scoreboard::map().unwrap();
        let core = &board.slot(0).cores[0];
        let path = format!("/{}", "x".repeat(500));
        let long = format!("GET {path}");
        core.begin(&["GET", " ", &path], monotonic_ms());
        assert_eq!(core.line(), long[..LINE_WORDS * 8]);
        // A shorter line after it: nothing of the longer one shows.
        core.begin(&["GET /a"], monotonic_ms());
        assert_eq!(core.line(), "GET /a");
    }

    #[test]
    fn a_line_read_while_it_is_written_is_never_torn() {
        let board = Scoreboard::map().unwrap();
        let core: &'static Core = &board.slot(1).cores[0];
        let (a, b) = ("A".repeat(LINE_WORDS * 8), "B".repeat(LINE_WORDS * 8 - 3));
        core.begin(&[&a], 1);
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (a, b, stop) = (a.clone(), b.clone(), stop.clone());
            std::thread::spawn(move || {
                for i in 0..200_000 {
                    core.begin(&[if i % 2 == 0 { &b } else { &a }], 1);
                }
                stop.store(true, Relaxed);
            })
        };
        let mut reads = 0;
        while !stop.load(Relaxed) {
            let line = core.line();
            assert!(line == a || line == b || line == "?", "torn: {line}");
            reads += 1;
        }
        writer.join().unwrap();
        assert!(reads > 0);
    }
}
