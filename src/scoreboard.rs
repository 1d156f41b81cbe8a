//! The scoreboard: memory shared by the master and its workers (mapped before the first fork),
//! where each worker publishes what it is doing. Each worker writes only its own [`Slot`]; the
//! master reads all of them to spot stuck requests (harakiri), recycle workers and serve stats.
//!
//! Everything in it is an atomic, so any process may read while another writes; a zeroed page
//! is a valid, empty scoreboard. Besides the slots it holds the server's [`Phase`] (what the
//! health check answers), which only the master writes, and each slot holds the worker's
//! [`Traffic`] (what the metrics show), which only the worker's event-loop thread writes.

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

/// Kinds of route a request can take, in [`Traffic`]: the application, static files, the
/// health check, and answers dragoman makes itself (a refused request, a redirect to HTTPS).
pub(crate) const KINDS: usize = 4;
/// Request methods counted apart: GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, and the rest.
pub(crate) const METHODS: usize = 8;
/// Status classes: 1xx to 5xx, and requests that ended with no response (cut).
pub(crate) const CLASSES: usize = 6;
/// Latency histogram buckets: one per upper bound of `metrics`' table, and one for the rest.
pub(crate) const BUCKETS: usize = 15;

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
    /// What the metrics count; written only while `metrics` is set.
    pub(crate) traffic: Traffic,
    pub(crate) cores: [Core; MAX_CORES],
}

/// A counter with one writer (a worker's event-loop thread), read by the master at any time.
/// Adding is a load and a store, not a locked read-modify-write: with one writer no add can be
/// lost, and an aligned 8-byte store is never torn for a reader. A `lock xadd` costs about 20
/// cycles on x86; this costs about 2.
#[repr(transparent)]
pub(crate) struct Tally(AtomicU64);

impl Tally {
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// For gauges (in flight, open connections): the same writer adds and takes away.
    #[inline]
    pub(crate) fn sub(&self, n: u64) {
        self.0
            .store(self.0.load(Relaxed).saturating_sub(n), Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }

    fn clear(&self) {
        self.0.store(0, Relaxed);
    }
}

/// A worker's traffic, as the metrics show it (`src/metrics`): requests by route kind, method
/// and status class, their latency, bytes, connections, static-file outcomes. Counters only
/// grow while the worker lives; the master folds them into its totals when the worker exits.
#[repr(C)]
pub(crate) struct Traffic {
    /// Finished requests, by kind, method and status class.
    pub(crate) requests: [[[Tally; CLASSES]; METHODS]; KINDS],
    /// Finished requests by kind and latency bucket (not cumulative), and their total time.
    pub(crate) latency: [[Tally; BUCKETS]; KINDS],
    pub(crate) latency_us: [Tally; KINDS],
    /// Gauges: requests between their head and the end of their response; open connections.
    pub(crate) in_flight: Tally,
    pub(crate) connections: Tally,
    /// Bytes read from and written to clients, above TLS (file bodies sent with sendfile
    /// included).
    pub(crate) bytes_in: Tally,
    pub(crate) bytes_out: Tally,
    /// Static files: served (2xx), not modified (304), and requests under a static mount that
    /// named no file (they go to the application).
    pub(crate) static_hits: Tally,
    pub(crate) static_not_modified: Tally,
    pub(crate) static_misses: Tally,
}

impl Traffic {
    /// Every counter and gauge back to zero: the master does it once it has folded a dead
    /// worker's counters into its totals, before the slot is used again.
    pub(crate) fn clear(&self) {
        let all = self
            .requests
            .iter()
            .flatten()
            .flatten()
            .chain(self.latency.iter().flatten())
            .chain(&self.latency_us);
        for tally in all {
            tally.clear();
        }
        for tally in [
            &self.in_flight,
            &self.connections,
            &self.bytes_in,
            &self.bytes_out,
            &self.static_hits,
            &self.static_not_modified,
            &self.static_misses,
        ] {
            tally.clear();
        }
    }
}

/// What the health check answers, as the master sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Not every worker accepts yet (503).
    Starting,
    /// Serving (200).
    Ready,
    /// Stopping: the load balancer should send no more (503).
    Draining,
}

/// The server as a whole, shared like the slots: only the master writes it.
#[repr(C)]
pub(crate) struct ServerState {
    phase: AtomicU32,
}

impl ServerState {
    pub(crate) fn phase(&self) -> Phase {
        match self.phase.load(Acquire) {
            0 => Phase::Starting,
            1 => Phase::Ready,
            _ => Phase::Draining,
        }
    }

    /// Sets the phase; a draining server never becomes ready again.
    pub(crate) fn set(&self, phase: Phase) {
        let code = match phase {
            Phase::Starting => 0,
            Phase::Ready => 1,
            Phase::Draining => 2,
        };
        self.phase.fetch_max(code, Release);
    }
}

/// The whole shared region.
#[repr(C)]
struct Board {
    server: ServerState,
    slots: [Slot; MAX_SLOTS],
}

/// The shared mapping.
pub(crate) struct Scoreboard {
    board: &'static Board,
}

impl Scoreboard {
    /// Maps a zeroed, shared, anonymous region for [`MAX_SLOTS`] slots. Call in the master
    /// before forking; children inherit the same pages. The mapping lives as long as the
    /// process (pages are only backed by memory once touched).
    pub(crate) fn map() -> io::Result<Scoreboard> {
        let size = std::mem::size_of::<Board>();
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
        // SAFETY: the mapping is `size` bytes, page-aligned (so aligned for Board), zero-filled
        // (a valid value for every atomic in Board), and never unmapped, hence 'static.
        let board = unsafe { &*(ptr as *const Board) };
        Ok(Scoreboard { board })
    }

    pub(crate) fn slot(&self, index: usize) -> &'static Slot {
        &self.board.slots[index]
    }

    /// The server's phase, which the health check answers.
    pub(crate) fn server(&self) -> &'static ServerState {
        &self.board.server
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
        self.traffic.clear();
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
