//! Session ticket keys shared by every worker, so a client resumes its session whichever
//! worker accepts its next connection (rustls's own ticketer makes random keys per process,
//! which another worker cannot read).
//!
//! The master makes a random 32-byte secret before the first fork; nothing is written to
//! disk, and no worker talks to another: each derives the same keys from what it inherited.
//! The secret is a ratchet: the key of period `n + 1` is derived from that of period `n`
//! (HKDF-SHA256), and a process moves forward as time passes (the monotonic clock, which all
//! processes of the machine share, from an epoch the master set) and forgets the keys behind
//! it but the one before the current one. So tickets are sealed with the current period's key,
//! open with the current or the previous one, and a key once forgotten everywhere cannot be
//! derived again from what any process holds: a later compromise does not open older tickets.
//!
//! A ticket is `name (8) | nonce (12) | AES-256-GCM(plaintext) | tag (16)`; the name says
//! which period's key sealed it.

use std::sync::Mutex;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hkdf;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// How long one key seals tickets; tickets live as long (the previous key still opens them).
pub(crate) const PERIOD_SECS: u64 = 3600;

const NAME_LEN: usize = 8;

/// The ratchet's state at one period.
#[derive(Clone)]
pub(crate) struct Ratchet {
    /// When period 0 began (monotonic milliseconds), set by the master.
    epoch_ms: u64,
    period: u64,
    secret: [u8; 32],
    previous: Option<[u8; 32]>,
}

impl Ratchet {
    /// A fresh random secret, period 0 starting now.
    pub(crate) fn new(now_ms: u64) -> Result<Ratchet, String> {
        let mut secret = [0u8; 32];
        SystemRandom::new()
            .fill(&mut secret)
            .map_err(|_| "the system's random source failed".to_string())?;
        Ok(Ratchet {
            epoch_ms: now_ms,
            period: 0,
            secret,
            previous: None,
        })
    }

    /// Moves to the period of `now_ms`, forgetting what lies more than one period behind.
    /// Never moves back.
    pub(crate) fn advance(&mut self, now_ms: u64) {
        let target = now_ms.saturating_sub(self.epoch_ms) / (PERIOD_SECS * 1000);
        while self.period < target {
            let next = derive(&self.secret, b"dragoman ticket ratchet");
            // One period behind is kept; further back is overwritten.
            self.previous = if self.period + 1 == target {
                Some(self.secret)
            } else {
                None
            };
            self.secret = next;
            self.period += 1;
        }
    }

    fn keys(&self) -> (Key, Option<Key>) {
        (Key::new(&self.secret), self.previous.as_ref().map(Key::new))
    }
}

/// `HKDF-SHA256(secret)` expanded with `label`, 32 bytes.
fn derive(secret: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"dragoman").extract(secret);
    let mut out = [0u8; 32];
    prk.expand(&[label], hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut out))
        .expect("32 bytes is a valid HKDF-SHA256 length");
    out
}

/// One period's sealing key and name.
struct Key {
    name: [u8; NAME_LEN],
    aead: LessSafeKey,
}

impl Key {
    fn new(secret: &[u8; 32]) -> Key {
        let mut name = [0u8; NAME_LEN];
        name.copy_from_slice(&derive(secret, b"dragoman ticket name")[..NAME_LEN]);
        let bytes = derive(secret, b"dragoman ticket key");
        let aead = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &bytes).expect("32 bytes is an AES-256 key"),
        );
        Key { name, aead }
    }
}

/// The keys in use in one process, and the ratchet that moves them.
struct State {
    ratchet: Ratchet,
    current: Key,
    previous: Option<Key>,
}

/// rustls's ticket producer over the shared ratchet.
pub(crate) struct Ticketer {
    state: Mutex<State>,
    random: SystemRandom,
    clock: fn() -> u64,
}

impl std::fmt::Debug for Ticketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ticketer")
    }
}

impl Ticketer {
    /// A ticketer from a ratchet inherited from the master; `clock` gives monotonic
    /// milliseconds.
    pub(crate) fn new(mut ratchet: Ratchet, clock: fn() -> u64) -> Ticketer {
        ratchet.advance(clock());
        let (current, previous) = ratchet.keys();
        Ticketer {
            state: Mutex::new(State {
                ratchet,
                current,
                previous,
            }),
            random: SystemRandom::new(),
            clock,
        }
    }

    /// The state, moved to the current period.
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let before = state.ratchet.period;
        state.ratchet.advance((self.clock)());
        if state.ratchet.period != before {
            let (current, previous) = state.ratchet.keys();
            state.current = current;
            state.previous = previous;
        }
        state
    }
}

impl rustls::server::ProducesTickets for Ticketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        PERIOD_SECS as u32
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).ok()?;
        let state = self.state();
        let key = &state.current;
        let mut out = Vec::with_capacity(NAME_LEN + NONCE_LEN + plain.len() + 16);
        out.extend_from_slice(&key.name);
        out.extend_from_slice(&nonce);
        let mut sealed = plain.to_vec();
        key.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&key.name),
                &mut sealed,
            )
            .ok()?;
        out.extend_from_slice(&sealed);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let name = cipher.get(..NAME_LEN)?;
        let nonce = cipher.get(NAME_LEN..NAME_LEN + NONCE_LEN)?;
        let sealed = cipher.get(NAME_LEN + NONCE_LEN..)?;
        let state = self.state();
        let key = [Some(&state.current), state.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.name == name)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let plain = key
            .aead
            .open_in_place(nonce, Aad::from(&key.name), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use rustls::server::ProducesTickets;

    use super::*;

    static NOW: AtomicU64 = AtomicU64::new(0);
    fn now() -> u64 {
        NOW.load(Ordering::Relaxed)
    }
    const HOUR: u64 = PERIOD_SECS * 1000;

    #[test]
    fn workers_from_one_ratchet_open_each_others_tickets_for_two_periods() {
        NOW.store(10 * HOUR, Ordering::Relaxed);
        let master = Ratchet::new(now()).unwrap();
        let a = Ticketer::new(master.clone(), now);
        let b = Ticketer::new(master.clone(), now);
        let ticket = a.encrypt(b"session state").unwrap();
        assert_eq!(b.decrypt(&ticket).unwrap(), b"session state");
        // Tampered, truncated, or from another secret: refused.
        let mut bad = ticket.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(b.decrypt(&bad).is_none());
        assert!(b.decrypt(&ticket[..10]).is_none());
        let other = Ticketer::new(Ratchet::new(now()).unwrap(), now);
        assert!(other.decrypt(&ticket).is_none());
        // The next period: sealed with a new key, the old tickets still open.
        NOW.store(11 * HOUR + 5, Ordering::Relaxed);
        let newer = b.encrypt(b"later").unwrap();
        assert_ne!(newer[..NAME_LEN], ticket[..NAME_LEN]);
        assert_eq!(a.decrypt(&ticket).unwrap(), b"session state");
        // A worker forked now from the master's (older) state agrees with them.
        let c = Ticketer::new(master.clone(), now);
        assert_eq!(c.decrypt(&newer).unwrap(), b"later");
        assert_eq!(c.decrypt(&ticket).unwrap(), b"session state");
        // Two periods on, the first key is gone everywhere.
        NOW.store(12 * HOUR + 5, Ordering::Relaxed);
        assert!(a.decrypt(&ticket).is_none());
        assert!(c.decrypt(&ticket).is_none());
        assert_eq!(a.decrypt(&newer).unwrap(), b"later");
    }

    #[test]
    fn the_ratchet_forgets_and_never_moves_back() {
        let mut r = Ratchet::new(0).unwrap();
        let first = r.secret;
        r.advance(3 * HOUR);
        assert_eq!(r.period, 3);
        assert!(r.previous.is_some_and(|p| p != first));
        let at3 = r.secret;
        r.advance(HOUR);
        assert_eq!((r.period, r.secret), (3, at3));
        // Derived again from the start, the same keys: the workers agree.
        let mut again = Ratchet {
            epoch_ms: 0,
            period: 0,
            secret: first,
            previous: None,
        };
        again.advance(3 * HOUR);
        assert_eq!(again.secret, at3);
    }
}
