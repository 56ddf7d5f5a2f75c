//! Group commit: one writer thread folds every submission queued while the previous commit ran
//! into the next commit, so N concurrent DHCPREQUESTs cost one fsync, not N.
//!
//! Callers hand over their writes with a `done` callback and send the reply (DHCPACK, failover
//! BNDACK) only from that callback: it runs after the batch holding the writes is durable, or
//! with the error if the batch failed, in which case none of the batch's writes happened.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{LeaseStore, StoreError, Write};

/// Called once per submission with the outcome of the commit that carried it.
pub type Done = Box<dyn FnOnce(Result<(), Arc<StoreError>>) + Send>;

type Observer = Box<dyn Fn(CommitStats) + Send>;

/// What one commit carried, for metrics (e.g. histograms of batch size and latency).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitStats {
    /// Writes in the batch.
    pub batch_writes: usize,
    /// Submissions folded into the batch.
    pub submissions: usize,
    /// Time spent in [`LeaseStore::commit`].
    pub duration: Duration,
    pub ok: bool,
}

/// Running totals since spawn, read with relaxed atomics (exact once the committer is idle).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitCounters {
    /// Commits attempted, failed ones included.
    pub commits: u64,
    pub failed_commits: u64,
    /// Writes in all attempted commits.
    pub writes: u64,
    /// Submissions in all attempted commits.
    pub submissions: u64,
}

#[derive(Debug, Default)]
struct Counters {
    commits: AtomicU64,
    failed_commits: AtomicU64,
    writes: AtomicU64,
    submissions: AtomicU64,
}

struct Submission {
    writes: Vec<Write>,
    done: Done,
}

/// A writer thread in front of a [`LeaseStore`]. `submit` never blocks on the store.
///
/// Dropping the committer, like [`shutdown`](GroupCommitter::shutdown), commits what is queued
/// and joins the thread.
pub struct GroupCommitter {
    tx: Option<Sender<Submission>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for GroupCommitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommitter")
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

impl GroupCommitter {
    /// Start the "store-writer" thread. A commit carries at most `max_batch` writes, except that
    /// a single submission larger than that is committed alone and whole (submissions are never
    /// split). A `max_batch` of 0 counts as 1.
    pub fn spawn<S: LeaseStore + 'static>(store: S, max_batch: usize) -> GroupCommitter {
        Self::spawn_with_observer(store, max_batch, |_| {})
    }

    /// Like [`spawn`](GroupCommitter::spawn), calling `observer` on the writer thread after each
    /// commit and before that commit's `done` callbacks.
    pub fn spawn_with_observer<S, O>(store: S, max_batch: usize, observer: O) -> GroupCommitter
    where
        S: LeaseStore + 'static,
        O: Fn(CommitStats) + Send + 'static,
    {
        Self::spawn_lingering(store, max_batch, Duration::ZERO, observer)
    }

    /// Like [`spawn_with_observer`](Self::spawn_with_observer), but once a batch holds a
    /// write, the writer waits up to `linger` for more before committing: fewer, larger
    /// commits (one fsync each) for at most `linger` more latency.
    pub fn spawn_lingering<S, O>(
        store: S,
        max_batch: usize,
        linger: Duration,
        observer: O,
    ) -> GroupCommitter
    where
        S: LeaseStore + 'static,
        O: Fn(CommitStats) + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let writer = Writer {
            store: Box::new(store),
            rx,
            max_batch: max_batch.max(1),
            linger,
            counters: Arc::clone(&counters),
            observer: Box::new(observer),
        };
        // Same failure behaviour as `std::thread::spawn`: only when the OS refuses a thread,
        // at start-up.
        #[allow(clippy::expect_used)]
        let thread = std::thread::Builder::new()
            .name("store-writer".to_owned())
            .spawn(move || writer.run())
            .expect("failed to spawn the store-writer thread");
        GroupCommitter {
            tx: Some(tx),
            thread: Some(thread),
            counters,
        }
    }

    /// Queue `writes` for the next commit; `done` runs on the writer thread once that commit has
    /// returned. Writes of one submission always land in the same commit. If the writer thread
    /// has stopped (it panicked), `done` runs at once, here, with [`StoreError::WriterStopped`].
    pub fn submit(&self, writes: Vec<Write>, done: Done) {
        let Some(tx) = &self.tx else {
            done(Err(Arc::new(StoreError::WriterStopped)));
            return;
        };
        if let Err(mpsc::SendError(sub)) = tx.send(Submission { writes, done }) {
            (sub.done)(Err(Arc::new(StoreError::WriterStopped)));
        }
    }

    /// Totals so far; cheap (a few relaxed atomic loads).
    pub fn counters(&self) -> CommitCounters {
        let c = &self.counters;
        CommitCounters {
            commits: c.commits.load(Ordering::Relaxed),
            failed_commits: c.failed_commits.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            submissions: c.submissions.load(Ordering::Relaxed),
        }
    }

    /// Commit everything already submitted, run its callbacks and join the writer thread.
    /// A panic on the writer thread (in the store, the observer or a callback) resumes here.
    pub fn shutdown(mut self) {
        if let Some(Err(panic)) = self.stop() {
            std::panic::resume_unwind(panic);
        }
    }

    fn stop(&mut self) -> Option<std::thread::Result<()>> {
        // Closing the channel ends the writer's loop once the queue is drained.
        drop(self.tx.take());
        self.thread.take().map(JoinHandle::join)
    }
}

impl Drop for GroupCommitter {
    fn drop(&mut self) {
        // A writer panic is not re-raised from drop; `shutdown` reports it.
        let _ = self.stop();
    }
}

struct Writer {
    store: Box<dyn LeaseStore>,
    rx: Receiver<Submission>,
    max_batch: usize,
    linger: Duration,
    counters: Arc<Counters>,
    observer: Observer,
}

impl Writer {
    fn run(mut self) {
        let mut carried: Option<Submission> = None;
        loop {
            let first = match carried.take() {
                Some(sub) => sub,
                None => match self.rx.recv() {
                    Ok(sub) => sub,
                    Err(mpsc::RecvError) => return,
                },
            };
            let mut writes = first.writes;
            let mut dones = vec![first.done];
            // Linger: give more writes a moment to join this commit (one fsync for all). The
            // writer sleeps rather than waits on the channel, so submitters never have to wake
            // it (a futex wake and a context switch per lease otherwise).
            if !writes.is_empty() && !self.linger.is_zero() {
                std::thread::sleep(self.linger);
            }
            while writes.len() < self.max_batch {
                let next = self.rx.try_recv();
                match next {
                    Ok(sub) if writes.len() + sub.writes.len() > self.max_batch => {
                        carried = Some(sub);
                        break;
                    }
                    Ok(mut sub) => {
                        writes.append(&mut sub.writes);
                        dones.push(sub.done);
                    }
                    Err(_) => break,
                }
            }
            self.commit(&writes, dones);
        }
    }

    fn commit(&mut self, writes: &[Write], dones: Vec<Done>) {
        let started = Instant::now();
        let result = self.store.commit(writes).map_err(Arc::new);
        let stats = CommitStats {
            batch_writes: writes.len(),
            submissions: dones.len(),
            duration: started.elapsed(),
            ok: result.is_ok(),
        };
        let c = &self.counters;
        c.commits.fetch_add(1, Ordering::Relaxed);
        if result.is_err() {
            c.failed_commits.fetch_add(1, Ordering::Relaxed);
        }
        c.writes.fetch_add(writes.len() as u64, Ordering::Relaxed);
        c.submissions
            .fetch_add(dones.len() as u64, Ordering::Relaxed);
        (self.observer)(stats);
        for done in dones {
            done(result.clone());
        }
    }
}
