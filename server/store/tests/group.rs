//! Group commit: grouping, ordering, durability before callbacks, and failure fan-out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dhcpair_store::battery::sample_lease;
use dhcpair_store::{
    CommitStats, GroupCommitter, LeaseStore, MemDisk, MemStore, Snapshot, SqliteStore, StoreError,
    Write,
};

/// Long enough never to fire on a healthy run; only stops a broken test from hanging.
const TIMEOUT: Duration = Duration::from_secs(20);

type Outcome = Result<(), Arc<StoreError>>;

/// What a callback reports: the submission's tag and its outcome.
type Report<T> = (T, Outcome);

/// Wraps a store so that each commit announces itself and then waits for the test to release it,
/// which lets a test queue submissions while a commit is in flight, without sleeping. Once the
/// test drops its [`Gate`], commits no longer wait.
struct Gated<S> {
    inner: S,
    entered: Sender<()>,
    release: Receiver<()>,
}

struct Gate {
    entered: Receiver<()>,
    release: Sender<()>,
}

impl Gate {
    fn wait_for_commit(&self) {
        self.entered
            .recv_timeout(TIMEOUT)
            .expect("the writer never started a commit");
    }

    fn release(&self) {
        self.release.send(()).unwrap();
    }
}

fn gated<S: LeaseStore>(inner: S) -> (Gated<S>, Gate) {
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let store = Gated {
        inner,
        entered: entered_tx,
        release: release_rx,
    };
    let gate = Gate {
        entered: entered_rx,
        release: release_tx,
    };
    (store, gate)
}

impl<S: LeaseStore> LeaseStore for Gated<S> {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        self.inner.load()
    }

    fn commit(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        let _ = self.entered.send(());
        let _ = self.release.recv();
        self.inner.commit(writes)
    }
}

/// Callbacks report `(tag, outcome)` here.
fn outcomes<T: Send + 'static>() -> (Sender<Report<T>>, Receiver<Report<T>>) {
    mpsc::channel()
}

fn reporter<T: Send + 'static>(tx: &Sender<Report<T>>, tag: T) -> dhcpair_store::Done {
    let tx = tx.clone();
    Box::new(move |outcome| {
        let _ = tx.send((tag, outcome));
    })
}

fn recv<T>(rx: &Receiver<Report<T>>) -> Report<T> {
    match rx.recv_timeout(TIMEOUT) {
        Ok(v) => v,
        Err(RecvTimeoutError::Timeout) => panic!("a callback never came"),
        Err(RecvTimeoutError::Disconnected) => panic!("a callback was dropped without a call"),
    }
}

fn recorder() -> (
    Arc<Mutex<Vec<CommitStats>>>,
    impl Fn(CommitStats) + Send + 'static,
) {
    let stats = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&stats);
    (stats, move |s| sink.lock().unwrap().push(s))
}

fn shape(stats: &Mutex<Vec<CommitStats>>) -> Vec<(usize, usize, bool)> {
    stats
        .lock()
        .unwrap()
        .iter()
        .map(|s| (s.submissions, s.batch_writes, s.ok))
        .collect()
}

fn lease_write(n: u32) -> Vec<Write> {
    vec![Write::Lease(sample_lease(n))]
}

#[test]
fn the_committer_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<GroupCommitter>();
}

#[test]
fn many_threads_submitting_concurrently_all_get_their_callbacks() {
    const THREADS: u32 = 8;
    const EACH: u32 = 25;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leases.db");
    let committer = GroupCommitter::spawn(SqliteStore::open(&path).unwrap(), 64);
    let (tx, rx) = outcomes::<(u32, u32)>();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (committer, tx) = (&committer, tx.clone());
            s.spawn(move || {
                for i in 0..EACH {
                    committer.submit(lease_write(t * EACH + i), reporter(&tx, (t, i)));
                }
            });
        }
    });
    let mut next = vec![0; THREADS as usize];
    for _ in 0..THREADS * EACH {
        let ((t, i), outcome) = recv(&rx);
        outcome.unwrap();
        assert_eq!(i, next[t as usize], "thread {t}'s callbacks out of order");
        next[t as usize] += 1;
    }
    let counters = committer.counters();
    assert_eq!(counters.submissions, u64::from(THREADS * EACH));
    assert_eq!(counters.writes, u64::from(THREADS * EACH));
    assert_eq!(counters.failed_commits, 0);
    assert!(counters.commits <= u64::from(THREADS * EACH));
    committer.shutdown();

    let leases = SqliteStore::open(&path).unwrap().load().unwrap().leases;
    assert_eq!(leases.len(), (THREADS * EACH) as usize);
}

#[test]
fn callbacks_come_after_the_data_is_durable_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leases.db");
    let committer = GroupCommitter::spawn(SqliteStore::open(&path).unwrap(), 64);
    let (tx, rx) = mpsc::channel();
    for n in 0..20 {
        let (tx, path) = (tx.clone(), path.clone());
        committer.submit(
            lease_write(n),
            Box::new(move |outcome| {
                outcome.unwrap();
                // A fresh connection, as a restarted server would open it.
                let leases = SqliteStore::open_read_only(&path)
                    .unwrap()
                    .load()
                    .unwrap()
                    .leases;
                let _ = tx.send(leases.contains(&sample_lease(n)));
            }),
        );
    }
    for _ in 0..20 {
        assert!(
            rx.recv_timeout(TIMEOUT).unwrap(),
            "acknowledged before durable"
        );
    }
    committer.shutdown();
}

#[test]
fn callbacks_come_after_the_data_is_durable_in_memory() {
    let disk = MemDisk::new();
    let committer = GroupCommitter::spawn(MemStore::open(disk.clone()), 64);
    let (tx, rx) = mpsc::channel();
    for n in 0..20 {
        let (tx, disk) = (tx.clone(), disk.clone());
        committer.submit(
            lease_write(n),
            Box::new(move |outcome| {
                outcome.unwrap();
                let leases = MemStore::open(disk).load().unwrap().leases;
                let _ = tx.send(leases.contains(&sample_lease(n)));
            }),
        );
    }
    for _ in 0..20 {
        assert!(
            rx.recv_timeout(TIMEOUT).unwrap(),
            "acknowledged before durable"
        );
    }
    committer.shutdown();
}

#[test]
fn submissions_queued_during_a_commit_go_into_one_commit() {
    let (store, gate) = gated(MemStore::open(MemDisk::new()));
    let (stats, observer) = recorder();
    let committer = GroupCommitter::spawn_with_observer(store, 1000, observer);
    let (tx, rx) = outcomes::<u32>();

    committer.submit(lease_write(0), reporter(&tx, 0));
    gate.wait_for_commit();
    // The first commit is in flight: these ten queue up behind it.
    for n in 1..=10 {
        let writes = vec![
            Write::Lease(sample_lease(n)),
            Write::Lease(sample_lease(n + 100)),
        ];
        committer.submit(writes, reporter(&tx, n));
    }
    drop(gate);
    for expected in 0..=10 {
        let (n, outcome) = recv(&rx);
        assert_eq!(n, expected);
        outcome.unwrap();
    }
    committer.shutdown();
    assert_eq!(shape(&stats), vec![(1, 1, true), (10, 20, true)]);
}

#[test]
fn max_batch_caps_writes_per_commit_and_never_splits_a_submission() {
    let disk = MemDisk::new();
    let (store, gate) = gated(MemStore::open(disk.clone()));
    let (stats, observer) = recorder();
    let committer = GroupCommitter::spawn_with_observer(store, 4, observer);
    let (tx, rx) = outcomes::<u32>();

    committer.submit(lease_write(0), reporter(&tx, 0));
    gate.wait_for_commit();
    for n in 1..=5 {
        committer.submit(lease_write(n), reporter(&tx, n));
    }
    let big: Vec<Write> = (10..16).flat_map(lease_write).collect();
    committer.submit(big, reporter(&tx, 6));
    committer.submit(lease_write(20), reporter(&tx, 7));
    drop(gate);
    for expected in 0..=7 {
        let (n, outcome) = recv(&rx);
        assert_eq!(n, expected);
        outcome.unwrap();
    }
    committer.shutdown();
    assert_eq!(
        shape(&stats),
        vec![
            (1, 1, true),
            (4, 4, true),
            (1, 1, true),
            (1, 6, true),
            (1, 1, true)
        ]
    );
    assert_eq!(MemStore::open(disk).load().unwrap().leases.len(), 13);
}

#[test]
fn a_failing_commit_reports_the_error_to_every_waiter_in_that_batch() {
    let disk = MemDisk::new();
    let (store, gate) = gated(MemStore::open(disk.clone()));
    let (stats, observer) = recorder();
    let committer = GroupCommitter::spawn_with_observer(store, 1000, observer);
    let (tx, rx) = outcomes::<char>();

    committer.submit(lease_write(0), reporter(&tx, 'a'));
    gate.wait_for_commit();
    committer.submit(lease_write(1), reporter(&tx, 'b'));
    committer.submit(lease_write(2), reporter(&tx, 'c'));
    committer.submit(lease_write(3), reporter(&tx, 'd'));
    gate.release();
    let (tag, outcome) = recv(&rx);
    assert_eq!(tag, 'a');
    outcome.unwrap();

    // b, c and d are now one commit, waiting at the gate: make it fail.
    gate.wait_for_commit();
    disk.fail_next_commit();
    gate.release();
    for expected in ['b', 'c', 'd'] {
        let (tag, outcome) = recv(&rx);
        assert_eq!(tag, expected);
        let err = outcome.expect_err("the batch failed");
        assert!(matches!(*err, StoreError::InjectedFailure), "{err:?}");
    }

    // The writer carries on after a failure.
    drop(gate);
    committer.submit(lease_write(4), reporter(&tx, 'e'));
    let (tag, outcome) = recv(&rx);
    assert_eq!(tag, 'e');
    outcome.unwrap();

    let counters = committer.counters();
    assert_eq!((counters.commits, counters.failed_commits), (3, 1));
    committer.shutdown();
    assert_eq!(
        shape(&stats),
        vec![(1, 1, true), (3, 3, false), (1, 1, true)]
    );
    let ips: Vec<Ipv4Addr> = MemStore::open(disk)
        .load()
        .unwrap()
        .leases
        .iter()
        .map(|l| l.ip)
        .collect();
    assert_eq!(ips, vec![sample_lease(0).ip, sample_lease(4).ip]);
}

#[test]
fn shutdown_commits_everything_queued_and_runs_callbacks_in_submission_order() {
    const N: u32 = 500;
    let disk = MemDisk::new();
    let (stats, observer) = recorder();
    let committer = GroupCommitter::spawn_with_observer(MemStore::open(disk.clone()), 32, observer);
    let order = Arc::new(Mutex::new(Vec::new()));
    for n in 0..N {
        let order = Arc::clone(&order);
        committer.submit(
            lease_write(n),
            Box::new(move |outcome| {
                outcome.unwrap();
                order.lock().unwrap().push(n);
            }),
        );
    }
    let counters_before_shutdown = committer.counters();
    committer.shutdown();

    assert_eq!(*order.lock().unwrap(), (0..N).collect::<Vec<_>>());
    assert_eq!(
        MemStore::open(disk.clone()).load().unwrap().leases.len(),
        N as usize
    );
    let stats = stats.lock().unwrap();
    assert_eq!(
        stats.iter().map(|s| s.batch_writes).sum::<usize>(),
        N as usize
    );
    assert!(stats.iter().all(|s| s.batch_writes <= 32));
    assert_eq!(disk.commits(), stats.len() as u64);
    assert!(counters_before_shutdown.submissions <= u64::from(N));
}

#[test]
fn dropping_the_committer_flushes_like_shutdown() {
    let disk = MemDisk::new();
    let committer = GroupCommitter::spawn(MemStore::open(disk.clone()), 8);
    let (tx, rx) = outcomes::<u32>();
    for n in 0..50 {
        committer.submit(lease_write(n), reporter(&tx, n));
    }
    drop(committer);
    drop(tx);
    let delivered: Vec<u32> = rx
        .iter()
        .map(|(n, outcome)| outcome.map(|()| n).unwrap())
        .collect();
    assert_eq!(delivered, (0..50).collect::<Vec<_>>());
    assert_eq!(MemStore::open(disk).load().unwrap().leases.len(), 50);
}

#[test]
fn counters_add_up_over_commits() {
    let committer = GroupCommitter::spawn(MemStore::open(MemDisk::new()), 100);
    let (tx, rx) = outcomes::<u32>();
    committer.submit(lease_write(1), reporter(&tx, 1));
    recv(&rx).1.unwrap();
    let two: Vec<Write> = (2..4).flat_map(lease_write).collect();
    committer.submit(two, reporter(&tx, 2));
    recv(&rx).1.unwrap();
    let c = committer.counters();
    assert_eq!(
        (c.commits, c.failed_commits, c.writes, c.submissions),
        (2, 0, 3, 2)
    );
    committer.shutdown();
}

#[test]
fn a_lingering_writer_gathers_writes_submitted_within_the_linger_into_one_commit() {
    let disk = dhcpair_store::MemDisk::new();
    let store = dhcpair_store::MemStore::open(disk.clone());
    let gc = dhcpair_store::GroupCommitter::spawn_lingering(
        store,
        1024,
        std::time::Duration::from_millis(300),
        |_| {},
    );
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..5u32 {
        let tx = tx.clone();
        gc.submit(
            vec![dhcpair_store::Write::Lease(
                dhcpair_store::battery::sample_lease(i),
            )],
            Box::new(move |r| tx.send(r.is_ok()).unwrap()),
        );
    }
    for _ in 0..5 {
        assert!(rx.recv().unwrap());
    }
    assert_eq!(
        gc.counters().commits,
        1,
        "five writes within the linger share one commit"
    );
    gc.shutdown();
}
