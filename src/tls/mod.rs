//! TLS, terminated by dragoman itself (rustls): certificates and keys read and checked
//! ([`certs`], [`material`]), the cipher list ([`ciphers`]), one rustls configuration per
//! certificate chosen by SNI ([`sites`]), session tickets every worker can open
//! ([`tickets`]), and the kernel TLS check ([`ktls`]). The handshake itself is a transport of
//! the connection layer ([`crate::conn::tls`]).
//!
//! The master prepares what the workers inherit across fork, as it does the listening
//! sockets: the loaded certificates (read before privileges are dropped, so a key only root
//! may read works) and the ticket key ratchet. It keeps both current: [`tick`] moves the
//! ratchet and reloads certificates whose files changed, [`reload`] re-reads them on SIGHUP.
//! A worker builds its configurations from what it inherited ([`WorkerTls::new`]) and
//! watches the files itself ([`WorkerTls::watch`]), so a renewed certificate is served
//! without a restart and without dropping a connection; a file that fails to load keeps the
//! previous certificate, and the log says why.

pub(crate) mod acme;
pub(crate) mod acme_cache;
pub(crate) mod certs;
mod ciphers;
pub(crate) mod ktls;
mod material;
mod sites;
mod tickets;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::ProducesTickets;

use crate::config::{Config, TlsConfig};
use crate::{error, info, warn};
use material::{Material, Stamp};
pub(crate) use sites::Sites;

/// What the master prepared, inherited by every worker it forks.
struct Prepared {
    material: Arc<Material>,
    ratchet: tickets::Ratchet,
    watcher: Watcher,
    /// The monotonic time of the last look at the files.
    looked_ms: u64,
}

/// The master's preparation. A global, like the listeners a fork hands down: the master
/// writes it before forking, a worker reads its inherited copy once (see the module doc).
static PREPARED: Mutex<Option<Prepared>> = Mutex::new(None);

/// How often the files are looked at for a change.
const WATCH_EVERY: Duration = Duration::from_secs(2);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn prepared() -> std::sync::MutexGuard<'static, Option<Prepared>> {
    PREPARED.lock().unwrap_or_else(|e| e.into_inner())
}

/// In the master, at startup (before privileges are dropped): loads and checks every
/// certificate, makes the ticket secret. The error is the one line dragoman stops with.
pub(crate) fn prepare(config: &Config) -> Result<(), String> {
    if config.tls.listeners.is_empty() {
        return Ok(());
    }
    let material = Material::load(&config.tls, &provider())?;
    for line in material.describe() {
        info!("TLS: {line}");
    }
    match ktls::probe() {
        Ok(()) => info!(
            "TLS: the kernel offers TLS offload (kTLS), which dragoman does not use yet: static \
             files over HTTPS are read and encrypted in the worker"
        ),
        Err(why) => info!(
            "TLS: no kernel TLS offload (kTLS) here ({why}): static files over HTTPS are read \
             and encrypted in the worker, not sent with sendfile"
        ),
    }
    let now = crate::clock::monotonic_ms();
    let ratchet = tickets::Ratchet::new(now)?;
    *prepared() = Some(Prepared {
        material: Arc::new(material),
        ratchet,
        watcher: Watcher::default(),
        looked_ms: now,
    });
    Ok(())
}

/// In the master's loop: moves the ticket ratchet on (the master forgets old keys as the
/// workers do), and reloads certificates whose files changed, so workers forked later start
/// with them.
pub(crate) fn tick(config: &Config) {
    let mut guard = prepared();
    let Some(p) = guard.as_mut() else {
        return;
    };
    let now = crate::clock::monotonic_ms();
    p.ratchet.advance(now);
    if now.saturating_sub(p.looked_ms) < WATCH_EVERY.as_millis() as u64 {
        return;
    }
    p.looked_ms = now;
    if let Some(material) = p.watcher.look(&p.material, &config.tls, "master") {
        p.material = material;
    }
}

/// On SIGHUP, in the master, with the configuration just re-read: the certificates are read
/// again (as the service user); when they fail to load, the previous ones stay, and the log
/// says why.
pub(crate) fn reload(config: &Config) {
    let mut guard = prepared();
    let Some(p) = guard.as_mut() else {
        return;
    };
    match Material::load(&config.tls, &provider()) {
        Ok(material) => {
            info!("TLS: certificates re-read for the reload");
            p.material = Arc::new(material);
            p.watcher = Watcher::default();
        }
        Err(why) => error!("TLS: keeping the previous certificates: {why}"),
    }
}

/// The stamps of the files a [`Material`] was loaded from, as they are now.
type Stamps = Vec<(std::path::PathBuf, Option<Stamp>)>;

/// What a process remembers between looks at the files.
#[derive(Default)]
struct Watcher {
    /// A worker's: the ACME certificates of the cache are loaded (and watched) too.
    acme: bool,
    /// Changed at the last look: loaded at the next if they are the same then (a renewal
    /// writes the certificate and the key one after the other; loading between the two
    /// would fail).
    settling: Option<Stamps>,
    /// Failed to load as they are: not tried again until they change again.
    failed: Option<Stamps>,
}

impl Watcher {
    /// One look: `Some` with the new certificates when the files changed and load.
    fn look(&mut self, material: &Material, tls: &TlsConfig, who: &str) -> Option<Arc<Material>> {
        let now: Stamps = material
            .stamps
            .iter()
            .map(|(path, _)| (path.clone(), certs::stamp(path)))
            .collect();
        if now == material.stamps || self.failed.as_ref() == Some(&now) {
            self.settling = None;
            return None;
        }
        if self.settling.as_ref() != Some(&now) {
            self.settling = Some(now);
            return None;
        }
        self.settling = None;
        let changed = material
            .changed()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        match Material::load(tls, &provider()) {
            Ok(fresh) => {
                let fresh = if self.acme {
                    fresh.with_acme(tls, &provider())
                } else {
                    fresh
                };
                self.failed = None;
                info!("TLS: {who}: {changed} changed; certificates reloaded");
                for line in fresh.describe() {
                    info!("TLS: {who}: {line}");
                }
                Some(Arc::new(fresh))
            }
            Err(why) => {
                error!(
                    "TLS: {who}: {changed} changed but does not load, so the previous \
                     certificates stay: {why}"
                );
                self.failed = Some(now);
                None
            }
        }
    }
}

/// A worker's TLS: its configurations (swapped whole on a reload) and what it needs to
/// rebuild them.
pub(crate) struct WorkerTls {
    sites: RefCell<Rc<Sites>>,
    material: RefCell<Arc<Material>>,
    tickets: Arc<dyn ProducesTickets>,
    provider: Arc<CryptoProvider>,
    export_cert: bool,
}

impl WorkerTls {
    /// From what the master prepared (`None` without https listeners).
    pub(crate) fn new(tls: &TlsConfig) -> Result<Option<Rc<WorkerTls>>, String> {
        let mut guard = prepared();
        let Some(p) = guard.as_mut() else {
            return Ok(None);
        };
        let tickets: Arc<dyn ProducesTickets> = Arc::new(tickets::Ticketer::new(
            p.ratchet.clone(),
            crate::clock::monotonic_ms,
        ));
        let provider = provider();
        // The ACME certificates are the worker's to read (the master never reads the cache).
        let material = match &tls.acme {
            Some(_) => Arc::new(p.material.with_acme(tls, &provider)),
            None => p.material.clone(),
        };
        // The worker's ticketer has its own copy; the inherited one is not kept.
        *guard = None;
        let sites = Sites::new(&material, tls, &provider, &tickets)?;
        Ok(Some(Rc::new(WorkerTls {
            sites: RefCell::new(Rc::new(sites)),
            material: RefCell::new(material),
            tickets,
            provider,
            export_cert: tls.export_cert,
        })))
    }

    /// `https-export-cert`.
    pub(crate) fn export_cert(&self) -> bool {
        self.export_cert
    }

    /// The configurations as they stand (a handshake keeps the ones it started with).
    pub(crate) fn sites(&self) -> Rc<Sites> {
        self.sites.borrow().clone()
    }

    /// Watches the certificate files, and serves the new certificates once they load.
    pub(crate) async fn watch(self: Rc<Self>, tls: Rc<TlsConfig>, id: usize) {
        let mut watcher = Watcher {
            acme: true,
            ..Watcher::default()
        };
        let who = format!("worker {id}");
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            let material = self.material.borrow().clone();
            let Some(fresh) = watcher.look(&material, &tls, &who) else {
                continue;
            };
            match Sites::new(&fresh, &tls, &self.provider, &self.tickets) {
                Ok(sites) => {
                    *self.sites.borrow_mut() = Rc::new(sites);
                    *self.material.borrow_mut() = fresh;
                }
                Err(why) => warn!("TLS: {who}: keeping the previous certificates: {why}"),
            }
        }
    }
}
