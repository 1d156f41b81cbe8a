//! Certificates by ACME (RFC 8555), as Caddy gets them: `acme-domain = example.com` and the
//! site serves HTTPS with a certificate from Let's Encrypt (or any ACME CA), renewed before it
//! expires, with nothing else to run.
//!
//! The protocol runs in a service process of its own, which the master forks and supervises
//! like a worker ([`crate::master`]'s service child): the master has no async runtime and
//! never waits on the network; this process builds its own ([`run`]). It talks to the CA
//! ([`client`], [`account`], [`order`]), decides when to renew and when to try again
//! ([`schedule`], [`manager`]), and keeps everything in the cache directory ([`crate::tls::acme_cache`]),
//! under a lock with a lease when several instances share it ([`lease`]). The workers read the
//! cache: they serve the certificates ([`crate::tls`] watches their files), answer HTTP-01
//! ([`http01`]) and TLS-ALPN-01 ([`crate::tls::acme`]) from the challenge files the manager
//! writes there. A failure is one log line ([`problem`]): the CA's problem document, or what
//! kept it from being reached, with what to do.
//!
//! Not done: revocation, account key rollover, DNS-01 (so no wildcard certificates).

mod account;
mod client;
pub(crate) mod http01;
mod lease;
mod manager;
mod order;
mod problem;
mod schedule;

use tokio::signal::unix::{signal, SignalKind};

use crate::config::acme::AcmeConfig;
use crate::error;

/// The service process: runs the certificate manager until SIGTERM or SIGINT; returns its
/// exit code. Called in a freshly forked child of the master, which has no runtime and no
/// thread: this one is the process's own.
pub(crate) fn run(acme: AcmeConfig) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            error!("ACME: cannot start the event loop of the certificate manager: {e}");
            return 1;
        }
    };
    runtime.block_on(async {
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            error!("ACME: cannot install the signal handlers of the certificate manager");
            return 1;
        };
        // Stopping drops the manager where it is: its lock and challenge files are removed
        // on the way out (their guards' Drop).
        tokio::select! {
            () = manager::Manager::new(acme).run() => 0,
            _ = term.recv() => 0,
            _ = int.recv() => 0,
        }
    })
}
