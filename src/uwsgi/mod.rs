//! The uwsgi protocol, for sites that keep nginx in front (`uwsgi_pass`): the `socket`
//! listeners. [`codec`] reads and writes packets, [`request`] translates one for the HTTP
//! side; the connection layer reads the packet ([`crate::conn::preamble`]).

pub(crate) mod codec;
pub(crate) mod request;
