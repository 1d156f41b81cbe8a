//! A fixed pool of Python threads that run the application, for `threads = N`. Each thread
//! attaches to the interpreter once for its whole life (so `threading.local` state such as
//! Django's database connections survives between requests) and waits for jobs with the GIL
//! released. The queue is bounded by the worker's app slots: a job is only queued by a request
//! holding a slot.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use pyo3::Python;

use crate::error;

/// Work for an app thread: runs with the GIL held; gets the thread's index (0-based), which
/// is its "core" in the scoreboard.
pub(crate) type Job = Box<dyn FnOnce(Python<'_>, usize) + Send>;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closing: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// The app threads of one worker, started on first use.
pub(crate) struct Pool {
    size: usize,
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Pool {
    pub(crate) fn new(size: usize) -> Self {
        Pool {
            size,
            shared: Arc::default(),
            threads: Mutex::new(Vec::new()),
        }
    }

    /// Queues a job for the next free app thread.
    pub(crate) fn submit(&self, job: Job) {
        self.start();
        let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.jobs.push_back(job);
        drop(queue);
        self.shared.wake.notify_one();
    }

    fn start(&self) {
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        while threads.len() < self.size {
            let shared = self.shared.clone();
            let index = threads.len();
            let name = format!("dragoman-app-{}", index + 1);
            match std::thread::Builder::new()
                .name(name)
                .spawn(move || thread_main(&shared, index))
            {
                Ok(handle) => threads.push(handle),
                Err(e) => {
                    error!("cannot start an application thread: {e}");
                    break;
                }
            }
        }
    }

    /// Lets the threads finish their jobs, then joins them. Called with the GIL released.
    pub(crate) fn shutdown(&self) {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .closing = true;
        self.shared.wake.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

fn thread_main(shared: &Shared, index: usize) {
    // Attach once for the thread's life, then release the GIL while waiting for work.
    Python::attach(|py| {
        py.detach(|| loop {
            let job = {
                let mut queue = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(job) = queue.jobs.pop_front() {
                        break job;
                    }
                    if queue.closing {
                        return;
                    }
                    queue = shared.wake.wait(queue).unwrap_or_else(|e| e.into_inner());
                }
            };
            let outcome = catch_unwind(AssertUnwindSafe(|| Python::attach(|py| job(py, index))));
            if outcome.is_err() {
                error!("an application thread hit an internal error; the request was cut off");
            }
        })
    });
}
