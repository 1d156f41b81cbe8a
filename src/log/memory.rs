//! The worker's memory as request lines show it (`memory-report`, `%(rss)`, `%(vsz)`, ...).
//!
//! uWSGI reads /proc after every request; that is three system calls (open, read, close) a
//! request, more than a hello-world request costs. dragoman samples when the access log
//! writes its batch out (at most every [`crate::access::FLUSH_EVERY`]), so the figures on a
//! line are at most that old.

use std::io::Read;

/// One sample of the process's memory, in bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    pub(crate) vsz: u64,
    pub(crate) rss: u64,
    /// Pages only this process maps (Private_Clean + Private_Dirty), with `memory-report = 2`.
    pub(crate) uss: u64,
    /// The process's proportional share of the pages it maps, with `memory-report = 2`.
    pub(crate) pss: u64,
}

impl Sample {
    /// Reads the process's memory now: /proc/self/statm, and /proc/self/smaps_rollup when
    /// `private` (USS and PSS). A figure that cannot be read stays as it was.
    pub(crate) fn refresh(&mut self, private: bool) {
        // SAFETY: sysconf has no preconditions.
        let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            n if n > 0 => n as u64,
            _ => 4096,
        };
        if let Some(statm) = read_small("/proc/self/statm") {
            let mut fields = statm.split_whitespace().map(|f| f.parse::<u64>().ok());
            if let (Some(Some(size)), Some(Some(resident))) = (fields.next(), fields.next()) {
                self.vsz = size.saturating_mul(page);
                self.rss = resident.saturating_mul(page);
            }
        }
        if private {
            if let Some(rollup) = read_small("/proc/self/smaps_rollup") {
                let (mut uss, mut pss) = (0u64, 0u64);
                for line in rollup.lines() {
                    let Some((key, rest)) = line.split_once(':') else {
                        continue;
                    };
                    let kib = rest
                        .split_whitespace()
                        .next()
                        .and_then(|n| n.parse::<u64>().ok())
                        .unwrap_or(0);
                    match key {
                        "Private_Clean" | "Private_Dirty" => uss += kib * 1024,
                        "Pss" => pss += kib * 1024,
                        _ => {}
                    }
                }
                self.uss = uss;
                self.pss = pss;
            }
        }
    }

    /// uWSGI's `memory-report` figures, as its request line starts with them.
    pub(crate) fn report(&self, out: &mut Vec<u8>, level: u8) {
        use std::io::Write as _;
        let mib = |b: u64| b / 1024 / 1024;
        let _ = write!(
            out,
            "{{address space usage: {} bytes/{}MB}} {{rss usage: {} bytes/{}MB}} ",
            self.vsz,
            mib(self.vsz),
            self.rss,
            mib(self.rss)
        );
        if level >= 2 {
            let _ = write!(
                out,
                "{{uss usage: {} bytes/{}MB}} {{pss usage: {} bytes/{}MB}} ",
                self.uss,
                mib(self.uss),
                self.pss,
                mib(self.pss)
            );
        }
    }
}

fn read_small(path: &str) -> Option<String> {
    let mut text = String::with_capacity(1024);
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .ok()?;
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_has_memory_and_the_report_reads_as_uwsgis() {
        let mut s = Sample::default();
        s.refresh(true);
        assert!(s.rss > 0 && s.vsz >= s.rss, "{s:?}");
        assert!(s.pss > 0 && s.uss > 0, "{s:?}");
        let mut out = Vec::new();
        Sample {
            vsz: 3 * 1024 * 1024,
            rss: 2 * 1024 * 1024,
            uss: 1024 * 1024,
            pss: 0,
        }
        .report(&mut out, 2);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{address space usage: 3145728 bytes/3MB} {rss usage: 2097152 bytes/2MB} \
             {uss usage: 1048576 bytes/1MB} {pss usage: 0 bytes/0MB} "
        );
    }
}
