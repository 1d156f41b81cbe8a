//! Admission to the application: one slot per request it may run at once (`threads`), and a
//! bounded queue of requests waiting for one. Beyond the queue a request gets 503 with
//! `Retry-After` at once: a 503 now beats a wait without end.

use std::cell::Cell;
use std::sync::Arc;

use http::{header, HeaderValue, Response, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http::{error_response, Body};

/// A request's slot in the application, held until its response no longer needs the app.
pub(crate) type Slot = OwnedSemaphorePermit;

/// The slots and the queue of one worker's application (only the event-loop thread uses it).
pub(crate) struct Admission {
    slots: Arc<Semaphore>,
    /// Requests waiting for a slot.
    waiting: Cell<usize>,
    queue: usize,
}

impl Admission {
    /// `slots` requests at once, `queue` more waiting (`request-queue`).
    pub(crate) fn new(slots: usize, queue: usize) -> Self {
        Admission {
            slots: Arc::new(Semaphore::new(slots)),
            waiting: Cell::new(0),
            queue,
        }
    }

    /// A slot if one is free now.
    pub(crate) fn try_now(&self) -> Option<Slot> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// A slot, once one is free; or the answer for a request that cannot have one (the
    /// queue is full).
    pub(crate) async fn admit(&self) -> Result<Slot, Response<Body>> {
        if self.slots.available_permits() == 0 && self.waiting.get() >= self.queue {
            let mut r = error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "every application thread is busy and the request queue is full",
                false,
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return Err(r);
        }
        let _waiting = Waiting::new(&self.waiting);
        self.slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| error_response(StatusCode::SERVICE_UNAVAILABLE, "shutting down", true))
    }
}

/// Counts a request waiting for a slot while it exists.
struct Waiting<'a>(&'a Cell<usize>);

impl<'a> Waiting<'a> {
    fn new(count: &'a Cell<usize>) -> Self {
        count.set(count.get() + 1);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}
