//! One connection, from accept to close: its preamble, then (later) the TLS handshake and
//! ALPN, then the protocol that serves it, over the layers it needs.
//!
//! The protocol is a seam ([`Protocol`]): the connection layer knows nothing of HTTP, and the
//! HTTP side ([`crate::http::server`]) knows nothing of preambles, listeners or sockets, only
//! a [`Transport`] and whether file bodies can go out with zero copies.

use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use super::lifecycle::Lifecycle;
use super::preamble::{Preamble, PreambleError};
use super::registry::Registered;
use super::rewind::Rewind;
use super::transport::{RawSocket, Transport};
use super::watch::{Watch, WriteRules};
use super::zerocopy::{FileSender, ZeroCopy};
use super::ConnInfo;
use crate::config::Wire;
use crate::{info, warn};

/// What serves a connection once the connection layer has set it up.
pub(crate) trait Protocol {
    /// Serves the connection until it ends. `files` is the queue for file bodies sent with
    /// zero copies, when the transport can send files by itself.
    async fn serve<T: Transport>(
        &self,
        io: Watch<T>,
        files: Option<Rc<ZeroCopy>>,
        conn: ConnInfo,
        life: Rc<Lifecycle>,
    );

    /// Answers a connection whose preamble is malformed (the protocol has not started: this
    /// is its one answer), then closes it.
    async fn refuse<T: Transport>(&self, io: &mut T, why: &str);
}

/// How a worker's connections are set up, shared by its accept loops.
pub(crate) struct Driver<P> {
    pub(crate) protocol: P,
    /// With the PROXY protocol on: the peers whose headers are believed.
    pub(crate) proxy: Option<Vec<IpAddr>>,
    pub(crate) header_timeout: Duration,
    pub(crate) write: WriteRules,
}

impl<P: Protocol> Driver<P> {
    /// Drives a connection accepted on a listener speaking `wire`; it stays in the registry
    /// until this returns.
    pub(crate) async fn drive<S: RawSocket>(
        &self,
        mut stream: S,
        wire: Wire,
        mut conn: ConnInfo,
        registered: Registered,
    ) {
        let preamble = match (wire, &self.proxy) {
            (Wire::Uwsgi, _) => Preamble::Uwsgi,
            (Wire::Http, Some(trusted)) => Preamble::Proxy(trusted),
            (Wire::Http, None) => Preamble::None,
        };
        let prefix = match preamble
            .read(&mut stream, &mut conn, self.header_timeout)
            .await
        {
            Ok(prefix) => prefix,
            Err(e) => {
                self.ended_early(&mut stream, wire, &conn, e).await;
                return;
            }
        };
        let life = registered.life.clone();
        // The preamble had a header-timeout of its own: the request head gets a fresh one.
        life.restart_wait();
        let peer: Rc<str> = conn.describe().into();
        let (io, files) = FileSender::new(Rewind::new(stream, prefix));
        let io = Watch::new(io, life.clone(), self.write, peer);
        self.protocol.serve(io, Some(files), conn, life).await;
        drop(registered);
    }

    /// A connection that ended in its preamble: logged, and answered when it was malformed.
    async fn ended_early<T: Transport>(
        &self,
        stream: &mut T,
        wire: Wire,
        conn: &ConnInfo,
        error: PreambleError,
    ) {
        let peer = conn.describe();
        match (error, wire) {
            (PreambleError::Invalid(why), Wire::Http) => {
                warn!("refused the connection from {peer}: {why} (proxy-protocol is on)");
                self.refuse(stream, &why).await;
            }
            (PreambleError::Invalid(why), Wire::Uwsgi) => {
                warn!("refused a uwsgi request from {peer}: {why}");
                self.refuse(stream, &why).await;
            }
            (PreambleError::Gone(Some(why)), Wire::Http) => {
                info!("closed the connection from {peer}: {why}")
            }
            (PreambleError::Gone(Some(why)), Wire::Uwsgi) => {
                info!("closed the uwsgi connection from {peer}: {why}")
            }
            (PreambleError::Gone(None), _) => {}
        }
    }

    async fn refuse<T: Transport>(&self, stream: &mut T, why: &str) {
        let _ = tokio::time::timeout(self.write.timeout, self.protocol.refuse(stream, why)).await;
    }
}
