//! The per-worker cache of resolved static files, keyed by mount and the normal spelling of
//! the path below it (see [`super::path::normalise`]): however a client spells a path, a file
//! has one entry. Bounded in entries and in bytes, and the bytes count what an entry holds
//! beyond a file's contents (its key, its paths, its structures), so no stream of requests,
//! however spelt, grows a worker past `static-cache`.

use std::collections::HashMap;
use std::rc::Rc;

use super::entry::Entry;

/// The entries of every mount, and what they cost.
pub(super) struct Cache {
    /// One map per mount: a normal path is unique only within its mount (`/static//admin/x`
    /// falls under a `/static` mount even when `/static/admin` is another).
    maps: Vec<HashMap<Box<[u8]>, Slot>>,
    entries: usize,
    bytes: u64,
    max_entries: usize,
    max_bytes: u64,
}

/// An entry and the bytes it was counted at (so removing it gives back exactly that).
struct Slot {
    entry: Rc<Entry>,
    cost: u64,
}

impl Cache {
    pub(super) fn new(mounts: usize, max_entries: usize, max_bytes: u64) -> Cache {
        Cache {
            maps: (0..mounts).map(|_| HashMap::new()).collect(),
            entries: 0,
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    pub(super) fn get(&self, mount: usize, key: &[u8]) -> Option<Rc<Entry>> {
        self.maps.get(mount)?.get(key).map(|s| s.entry.clone())
    }

    /// Drops an entry (and with it, once responses in flight are done, what it keeps open).
    pub(super) fn forget(&mut self, mount: usize, key: &[u8]) {
        if let Some(slot) = self.maps.get_mut(mount).and_then(|m| m.remove(key)) {
            self.entries -= 1;
            self.bytes -= slot.cost;
        }
    }

    /// Keeps an entry within the bounds, the least recently checked entries going first; an
    /// entry that alone exceeds the byte budget is not kept at all.
    pub(super) fn remember(&mut self, mount: usize, key: &[u8], entry: Rc<Entry>) {
        self.forget(mount, key);
        if mount >= self.maps.len() {
            return;
        }
        let cost = entry.memory().saturating_add(key.len() as u64);
        if cost > self.max_bytes || self.max_entries == 0 {
            return;
        }
        while self.entries >= self.max_entries || self.bytes + cost > self.max_bytes {
            let oldest = self
                .maps
                .iter()
                .enumerate()
                .flat_map(|(m, map)| map.iter().map(move |(k, s)| (m, k, s.entry.checked())))
                .min_by_key(|(_, _, checked)| *checked)
                .map(|(m, k, _)| (m, k.clone()));
            let Some((m, k)) = oldest else {
                break;
            };
            self.forget(m, &k);
        }
        self.entries += 1;
        self.bytes += cost;
        self.maps[mount].insert(key.into(), Slot { entry, cost });
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries
    }

    #[cfg(test)]
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }
}
