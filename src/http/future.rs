//! The future a bridge's answer, a WebSocket session and the HTTP service hand around.

use std::future::Future;
use std::pin::Pin;

/// A boxed future local to the worker's event-loop thread.
pub(crate) type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;
