//! The certificate manager: for each `acme-domain` certificate, a look at the cache when it is
//! due, an order when the certificate is missing, damaged, for other names, or due for
//! renewal, and the next look scheduled ([`super::schedule`]). Certificates are handled one at
//! a time; each has its own back-off, so a name the CA refuses never holds up the others.
//! What the account needs (the directory, its creation) is shared: its failures are said once
//! for all.
//!
//! The manager writes certificates to the cache and nothing else: the workers watch the cache
//! and serve a new certificate within seconds, with no restart and no dropped connection.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use instant_acme::{Account, CertificateIdentifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use x509_cert::der::Decode;

use super::account::{self, NoAccount};
use super::client::Client;
use super::lease::{self, Lease, Taken};
use super::order;
use super::problem::Failure;
use super::schedule;
use crate::config::acme::{AcmeConfig, Challenge};
use crate::config::tls::CertFiles;
use crate::log::utc_timestamp;
use crate::tls::acme_cache as cache;
use crate::{error, info, warn};

/// How long one order may take, everything included.
const ORDER_TIMEOUT: Duration = Duration::from_secs(300);
/// Quick tries of an order whose failure may pass at once (a nonce the CA rejected three times
/// in a row, an internal error of the CA's), before the back-off.
const QUICK_TRIES: u32 = 3;
/// How often an instance waiting for another's order looks at the lock again.
const WAIT_FOR_OTHER: Duration = Duration::from_secs(3);

/// What the manager knows of one certificate.
struct Managed {
    /// Its index in `acme.certificates`.
    index: usize,
    /// When to look at it next.
    next: Instant,
    /// Failures in a row.
    failures: u32,
    /// The challenge the next order prefers: the next one after a failed validation.
    challenge: usize,
    /// The renewal time chosen in the CA's window (ARI), and when to ask again.
    ari: Option<(SystemTime, Instant)>,
    /// What the log said last about it, so that a look that finds nothing new says nothing.
    said: String,
    /// An order naming the certificate it replaces (ARI) failed: the next ones do not name
    /// it (a CA may refuse it, say when another order replaced it already).
    plain_renewal: bool,
}

/// Whether the CA offers ACME Renewal Information.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ari {
    Unknown,
    Offered,
    NotOffered,
}

/// The certificate manager of one dragoman (one per service process).
pub(crate) struct Manager {
    acme: AcmeConfig,
    me: String,
    client: Option<Client>,
    account: Option<Account>,
    /// Account failures in a row, and when to try again.
    account_failures: u32,
    account_next: Instant,
    ari: Ari,
    certs: Vec<Managed>,
}

/// A certificate of the cache, read.
enum Cached {
    Missing,
    /// Does not load: why.
    Damaged(String),
    Expired,
    /// Loads, but does not cover every name of its acme-domain.
    OtherNames(Vec<String>),
    Good(Info),
}

/// What the manager needs of a certificate it keeps.
struct Info {
    not_before: SystemTime,
    not_after: SystemTime,
    /// For ARI: its authority key identifier and serial.
    id: Option<CertificateIdentifier<'static>>,
}

impl Manager {
    pub(crate) fn new(acme: AcmeConfig) -> Manager {
        let now = Instant::now();
        let certs = (0..acme.certificates.len())
            .map(|index| Managed {
                index,
                next: now,
                failures: 0,
                challenge: 0,
                ari: None,
                said: String::new(),
                plain_renewal: false,
            })
            .collect();
        Manager {
            acme,
            me: lease::me(),
            client: None,
            account: None,
            account_failures: 0,
            account_next: now,
            ari: Ari::Unknown,
            certs,
        }
    }

    /// Looks after the certificates until the process is told to stop.
    pub(crate) async fn run(mut self) {
        let names: Vec<String> = self
            .acme
            .certificates
            .iter()
            .map(|c| c.names.join(","))
            .collect();
        let challenges: Vec<&str> = self.acme.challenges.iter().map(|c| c.name()).collect();
        info!(
            "ACME: certificates for {} from {}, by {}; cache {}",
            names.join("; "),
            self.acme.directory,
            challenges.join(" or "),
            self.acme.cache.display()
        );
        if self.acme.cache.exists() && !cache::is_private(&self.acme.cache) {
            warn!(
                "ACME: the cache {} can be read by other users, and it holds private keys: \
                 `chmod 700 {}`",
                self.acme.cache.display(),
                self.acme.cache.display()
            );
        }
        loop {
            for i in 0..self.certs.len() {
                if self.certs[i].next <= Instant::now() {
                    self.look(i).await;
                }
            }
            let next = self.certs.iter().map(|c| c.next).min();
            let next = next.unwrap_or_else(|| Instant::now() + schedule::LOOK_EVERY);
            tokio::time::sleep_until(next.into()).await;
        }
    }

    /// Logs `line` unless it is what was said last about certificate `i`.
    fn say(&mut self, i: usize, line: String) {
        if self.certs[i].said != line {
            info!("{line}");
            self.certs[i].said = line;
        }
    }

    /// A look at certificate `i`: schedules the next, or orders.
    async fn look(&mut self, i: usize) {
        let cert = &self.acme.certificates[self.certs[i].index];
        let names = cert.names.join(",");
        let path = cache::certificate_file(&self.acme, cert);
        let had = match read(&path, &cert.names) {
            Cached::Good(info) => {
                let due = self.due(i, &info).await;
                let now = SystemTime::now();
                if due > now {
                    let wait = due.duration_since(now).unwrap_or_default();
                    let wait = schedule::jittered(wait.min(schedule::LOOK_EVERY), random());
                    let until = self.certs[i].ari.map(|(_, until)| until);
                    let next = Instant::now() + wait;
                    self.certs[i].next = until.map_or(next, |u| u.min(next));
                    self.certs[i].failures = 0;
                    let line = format!(
                        "ACME: {names}: certificate valid until {}, renewed from {}",
                        utc_timestamp(info.not_after),
                        utc_timestamp(due)
                    );
                    self.say(i, line);
                    return;
                }
                self.say(i, format!("ACME: {names}: due for renewal"));
                Some(info)
            }
            Cached::Missing => None,
            Cached::Expired => {
                self.say(i, format!("ACME: {names}: the cached certificate expired"));
                None
            }
            Cached::OtherNames(had) => {
                self.say(
                    i,
                    format!(
                        "ACME: {names}: the cached certificate is for {}; ordering one for \
                         the names of acme-domain",
                        had.join(",")
                    ),
                );
                None
            }
            Cached::Damaged(why) => {
                let line = format!(
                    "ACME: {names}: the cached certificate {} does not load ({why}); ordering \
                     a new one",
                    path.display()
                );
                if self.certs[i].said != line {
                    error!("{line}");
                    self.certs[i].said = line;
                }
                None
            }
        };
        self.order(i, had).await;
    }

    /// When certificate `i` is due: in the CA's renewal window when it has one (ARI), else
    /// when a third of its lifetime is left.
    async fn due(&mut self, i: usize, info: &Info) -> SystemTime {
        let fallback = schedule::third_left(info.not_before, info.not_after);
        if self.ari == Ari::NotOffered {
            return fallback;
        }
        if let Some((at, until)) = self.certs[i].ari {
            if Instant::now() < until {
                return at;
            }
        }
        let (Some(id), Some(account)) = (&info.id, self.account_now().await) else {
            return fallback;
        };
        match account.renewal_info(id).await {
            Ok((renewal, retry_after)) => {
                self.ari = Ari::Offered;
                let window = renewal.suggested_window;
                let at = schedule::in_window(window.start.into(), window.end.into(), random());
                let again = Instant::now() + schedule::ari_again(Some(retry_after));
                self.certs[i].ari = Some((at, again));
                at
            }
            Err(instant_acme::Error::Unsupported(_)) => {
                self.ari = Ari::NotOffered;
                fallback
            }
            Err(e) => {
                let names = self.acme.certificates[self.certs[i].index].names.join(",");
                let f = super::problem::failure(
                    &format!("asking the renewal window of {names}"),
                    &e,
                    &self.acme.directory,
                );
                warn!(
                    "ACME: {}; renewing when a third of its lifetime is left",
                    f.line
                );
                let again = Instant::now() + schedule::ari_again(None);
                self.certs[i].ari = Some((fallback, again));
                fallback
            }
        }
    }

    /// The account, if it can be had now without waiting for a back-off.
    async fn account_now(&mut self) -> Option<Account> {
        if self.account.is_none() && Instant::now() >= self.account_next {
            let _ = self.account().await;
        }
        self.account.clone()
    }

    /// The account, made or loaded if need be. `Err`: when to try again (the log said why).
    async fn account(&mut self) -> Result<Account, Instant> {
        if let Some(account) = &self.account {
            return Ok(account.clone());
        }
        if Instant::now() < self.account_next {
            return Err(self.account_next);
        }
        let client = match &self.client {
            Some(client) => client.clone(),
            None => match Client::new(&self.acme) {
                Ok(client) => {
                    self.client = Some(client.clone());
                    client
                }
                Err(line) => return Err(self.account_failed(Failure::local(line))),
            },
        };
        let mut tries = 1;
        let made = loop {
            match account::account(&self.acme, &client, &self.me).await {
                Err(NoAccount::Failed(f)) if f.transient && tries < QUICK_TRIES => {
                    let wait = Duration::from_secs(1 << tries);
                    warn!("ACME: {}; trying again in {}s", f.line, wait.as_secs());
                    tokio::time::sleep(wait).await;
                    tries += 1;
                }
                made => break made,
            }
        };
        match made {
            Ok(account) => {
                self.account_failures = 0;
                self.account = Some(account.clone());
                Ok(account)
            }
            Err(NoAccount::Busy(holder)) => {
                info!(
                    "ACME: another instance ({}) is making the account; waiting for it",
                    holder.who
                );
                self.account_next = Instant::now() + WAIT_FOR_OTHER;
                Err(self.account_next)
            }
            Err(NoAccount::Failed(f)) => Err(self.account_failed(f)),
        }
    }

    fn account_failed(&mut self, f: Failure) -> Instant {
        self.account_failures += 1;
        let wait = schedule::backoff(self.account_failures, f.retry_after);
        error!("ACME: {}; trying again in {}", f.line, shown(wait));
        self.account_next = Instant::now() + wait;
        self.account_next
    }

    /// Orders certificate `i`, under its lock. `had`: the certificate it renews.
    async fn order(&mut self, i: usize, had: Option<Info>) {
        let cert = self.acme.certificates[self.certs[i].index].clone();
        let names = cert.names.join(",");
        let path = cache::certificate_file(&self.acme, &cert);
        let dir = cache::directory_dir(&self.acme);
        if let Err(line) = cache::check_writable(&dir) {
            return self.failed(i, Failure::local(line));
        }
        let lock = cache::lock_file(&self.acme, &cert.names[0]);
        let lease = match lease::take(&lock, &self.me, SystemTime::now()) {
            Ok(Taken::Mine(lease)) => lease,
            Ok(Taken::Held(holder)) => {
                self.say(
                    i,
                    format!(
                        "ACME: {names}: another instance ({}) is ordering it; waiting for it",
                        holder.who
                    ),
                );
                self.certs[i].next = Instant::now() + WAIT_FOR_OTHER;
                return;
            }
            Err(e) => return self.failed(i, Failure::local(cache::unwritable(&dir, &e))),
        };
        // Another instance may have stored a new one while this one waited for the lock.
        if let Cached::Good(info) = read(&path, &cert.names) {
            let newer = had.as_ref().is_none_or(|h| info.not_before > h.not_before);
            if newer && schedule::third_left(info.not_before, info.not_after) > SystemTime::now() {
                drop(lease);
                self.say(
                    i,
                    format!("ACME: {names}: another instance ordered it; loaded from the cache"),
                );
                self.certs[i].next = Instant::now();
                return;
            }
        }
        let account = match self.account().await {
            Ok(account) => account,
            Err(next) => {
                self.certs[i].next = next;
                return;
            }
        };
        let client = self.client.clone().expect("made with the account");
        // The certificate it renews, for a CA that takes it (ARI renewals are exempt from
        // Let's Encrypt's limits).
        let replaces = had
            .and_then(|h| h.id)
            .filter(|_| self.ari == Ari::Offered && !self.certs[i].plain_renewal);
        let mut tries = 0;
        loop {
            tries += 1;
            let prefer =
                self.acme.challenges[self.certs[i].challenge % self.acme.challenges.len().max(1)];
            info!(
                "ACME: {names}: ordering a certificate{}",
                if replaces.is_some() {
                    " (renewal, in the CA's window)"
                } else {
                    ""
                }
            );
            let started = Instant::now();
            let issued = held(
                &lease,
                order::issue(
                    &account,
                    &client,
                    &self.acme,
                    &cert,
                    prefer,
                    replaces.clone(),
                ),
            )
            .await;
            match issued.and_then(|issued| store(&path, &cert, issued)) {
                Ok(used) => {
                    let how = used.map_or("an earlier validation".to_string(), |c| {
                        c.name().to_string()
                    });
                    info!(
                        "ACME: {names}: certificate issued ({how}, {:.1}s), stored in {}",
                        started.elapsed().as_secs_f64(),
                        path.display()
                    );
                    self.certs[i].failures = 0;
                    self.certs[i].plain_renewal = false;
                    self.certs[i].ari = None;
                    self.certs[i].said.clear();
                    self.certs[i].next = Instant::now();
                    return;
                }
                Err(f) if f.transient && tries < QUICK_TRIES => {
                    let wait = Duration::from_secs(1 << tries);
                    warn!("ACME: {}; trying again in {}s", f.line, wait.as_secs());
                    tokio::time::sleep(wait).await;
                    if !lease.renew(SystemTime::now()) {
                        return self.failed(i, lost_lease(&names));
                    }
                }
                Err(f) => {
                    if replaces.is_some() {
                        self.certs[i].plain_renewal = true;
                    }
                    return self.failed(i, f);
                }
            }
        }
    }

    /// An order of certificate `i` failed: said, and backed off.
    fn failed(&mut self, i: usize, f: Failure) {
        let m = &mut self.certs[i];
        m.failures += 1;
        if f.validation {
            m.challenge += 1;
        }
        let wait = schedule::backoff(m.failures, f.retry_after);
        error!("ACME: {}; trying again in {}", f.line, shown(wait));
        m.next = Instant::now() + wait;
        m.said.clear();
    }
}

/// Runs `work` while keeping `lease` alive; fails if the lease is lost, or after
/// [`ORDER_TIMEOUT`].
async fn held<T>(
    lease: &Lease,
    work: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    let keep = async {
        loop {
            tokio::time::sleep(lease::RENEW_EVERY).await;
            if !lease.renew(SystemTime::now()) {
                return;
            }
        }
    };
    tokio::select! {
        done = tokio::time::timeout(ORDER_TIMEOUT, work) => done.unwrap_or_else(|_| {
            Err(Failure::local(format!(
                "the order did not finish within {}s",
                ORDER_TIMEOUT.as_secs()
            )))
        }),
        () = keep => Err(lost_lease("the certificate")),
    }
}

fn lost_lease(what: &str) -> Failure {
    Failure::local(format!(
        "{what}: the lock in the cache was taken over by another instance while this one \
         ordered (was this process stopped for a minute?)"
    ))
}

/// Stores what an order gave, once it loads as the workers will load it.
fn store(
    path: &PathBuf,
    cert: &crate::config::acme::AcmeCertificate,
    issued: order::Issued,
) -> Result<Option<Challenge>, Failure> {
    let fresh = path.with_extension("pem.new");
    let unwritable =
        |e: std::io::Error| Failure::local(cache::unwritable(path.parent().unwrap_or(path), &e));
    cache::write_atomic(&fresh, issued.pem.as_bytes()).map_err(unwritable)?;
    let checked = match read(&fresh, &cert.names) {
        Cached::Good(_) => Ok(()),
        Cached::Damaged(why) => Err(why),
        Cached::Expired => Err("it has expired already".into()),
        Cached::OtherNames(had) => Err(format!("it is for {}", had.join(","))),
        Cached::Missing => Err("it is gone".into()),
    };
    if let Err(why) = checked {
        let _ = std::fs::remove_file(&fresh);
        return Err(Failure::local(format!(
            "the certificate the CA issued for {} does not load ({why})",
            cert.names.join(",")
        )));
    }
    std::fs::rename(&fresh, path).map_err(unwritable)?;
    Ok(issued.challenge)
}

/// Reads the certificate at `path`, checked as the workers load it, for `names`.
fn read(path: &PathBuf, names: &[String]) -> Cached {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Cached::Missing,
        Err(e) => return Cached::Damaged(e.to_string()),
    };
    let Some(Ok(der)) = CertificateDer::pem_slice_iter(&bytes).next() else {
        return Cached::Damaged("no certificate in it".into());
    };
    let Ok(cert) = x509_cert::Certificate::from_der(&der) else {
        return Cached::Damaged("not a valid X.509 certificate".into());
    };
    let validity = &cert.tbs_certificate.validity;
    let not_before = SystemTime::UNIX_EPOCH + validity.not_before.to_unix_duration();
    let not_after = SystemTime::UNIX_EPOCH + validity.not_after.to_unix_duration();
    if not_after <= SystemTime::now() {
        return Cached::Expired;
    }
    // The key and the chain, as the workers check them.
    let files = CertFiles {
        cert: path.clone(),
        key: path.clone(),
        ciphers: None,
        client_ca: None,
        origin: crate::config::Origin::Positional,
    };
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    if let Err(why) = crate::tls::certs::load(&files, None, &provider, SystemTime::now()) {
        return Cached::Damaged(why);
    }
    let had = dns_names(&cert);
    if !names.iter().all(|n| had.contains(n)) {
        return Cached::OtherNames(had);
    }
    Cached::Good(Info {
        not_before,
        not_after,
        id: identifier(&cert),
    })
}

/// The DNS names of a certificate's subjectAltName.
fn dns_names(cert: &x509_cert::Certificate) -> Vec<String> {
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;
    let Ok(Some((_, san))) = cert.tbs_certificate.get::<SubjectAltName>() else {
        return Vec::new();
    };
    san.0
        .iter()
        .filter_map(|n| match n {
            GeneralName::DnsName(name) => Some(name.as_str().to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// The ARI identifier of a certificate (RFC 9773 §4.1): its authority key identifier and
/// its serial number, as DER contents.
fn identifier(cert: &x509_cert::Certificate) -> Option<CertificateIdentifier<'static>> {
    use x509_cert::ext::pkix::AuthorityKeyIdentifier;
    let (_, aki) = cert
        .tbs_certificate
        .get::<AuthorityKeyIdentifier>()
        .ok()??;
    let key_id = aki.key_identifier?;
    let serial = cert.tbs_certificate.serial_number.as_bytes();
    Some(
        CertificateIdentifier::new(
            rustls::pki_types::Der::from_slice(key_id.as_bytes()),
            rustls::pki_types::Der::from_slice(serial),
        )
        .into_owned(),
    )
}

fn random() -> f64 {
    schedule::random_fraction()
}

/// A wait as the log says it: `45s`, `10m`, `2h`.
fn shown(wait: Duration) -> String {
    let secs = wait.as_secs();
    if secs < 120 {
        format!("{secs}s")
    } else if secs < 2 * 3600 {
        format!("{}m", secs / 60)
    } else {
        format!("{}h", secs / 3600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_as_a_person_says_them() {
        assert_eq!(shown(Duration::from_secs(60)), "60s");
        assert_eq!(shown(Duration::from_secs(600)), "10m");
        assert_eq!(shown(Duration::from_secs(6 * 3600)), "6h");
    }

    #[test]
    fn the_cache_is_read_as_the_workers_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.test.pem");
        let names = vec!["a.test".to_string(), "www.a.test".to_string()];
        assert!(matches!(read(&path, &names), Cached::Missing));
        std::fs::write(&path, "garbage").unwrap();
        assert!(matches!(read(&path, &names), Cached::Damaged(_)));
        // A certificate for the names, with its key: good, and its ARI identifier read.
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.key_identifier_method = rcgen::KeyIdMethod::Sha256;
        let ca_cert = ca.self_signed(&issuer_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, &issuer_key);
        let mut params = rcgen::CertificateParams::new(names.clone()).unwrap();
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &issuer).unwrap();
        let pem = format!("{}{}{}", key.serialize_pem(), cert.pem(), ca_cert.pem());
        std::fs::write(&path, &pem).unwrap();
        match read(&path, &names) {
            Cached::Good(info) => {
                assert!(info.not_after > SystemTime::now());
                let id = info.id.expect("an AKI");
                assert!(!id.serial.is_empty());
            }
            _ => panic!("a good certificate"),
        }
        assert!(matches!(
            read(&path, &["other.test".to_string()]),
            Cached::OtherNames(_)
        ));
        // The key of another certificate: damaged.
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&path, format!("{}{}", other.serialize_pem(), cert.pem())).unwrap();
        assert!(matches!(read(&path, &names), Cached::Damaged(_)));
    }
}
