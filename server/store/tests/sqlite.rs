//! SQLite-only behaviour: schema versioning, corrupt rows, read-only access, real crashes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use dhcpair_store::battery::{sample_lease, sample_relationship};
use dhcpair_store::{Lease, LeaseStore, SqliteStore, StoreError, Write, SCHEMA_VERSION};
use rusqlite::Connection;

fn db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leases.db");
    (dir, path)
}

/// A database holding leases 1..=3 and one relationship, with no store left open.
fn populated() -> (tempfile::TempDir, PathBuf) {
    let (dir, path) = db();
    let mut store = SqliteStore::open(&path).unwrap();
    store
        .commit(&[
            Write::Lease(sample_lease(1)),
            Write::Lease(sample_lease(2)),
            Write::Lease(sample_lease(3)),
            Write::Relationship(sample_relationship("peer", 1)),
        ])
        .unwrap();
    (dir, path)
}

fn raw(path: &Path, sql: &str) {
    Connection::open(path).unwrap().execute_batch(sql).unwrap();
}

fn load_error(path: &Path) -> StoreError {
    let mut store = SqliteStore::open(path).unwrap();
    store.load().expect_err("load must fail on a corrupt row")
}

#[test]
fn open_creates_missing_parent_directories_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a").join("b").join("leases.db");
    let mut store = SqliteStore::open(&path).unwrap();
    assert!(path.is_file());
    assert_eq!(store.path(), path);
    assert!(store.load().unwrap().leases.is_empty());
}

#[test]
fn reopening_keeps_the_schema_version_at_one() {
    let (_dir, path) = populated();
    drop(SqliteStore::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM schema_version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(versions, vec![SCHEMA_VERSION]);
}

#[test]
fn a_newer_schema_version_is_refused_with_a_clear_message() {
    let (_dir, path) = populated();
    raw(&path, "UPDATE schema_version SET version = 2");
    for result in [SqliteStore::open(&path), SqliteStore::open_read_only(&path)] {
        let err = result.expect_err("a newer schema must be refused");
        assert!(
            matches!(
                err,
                StoreError::SchemaTooNew {
                    found: 2,
                    supported: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("schema version 2"), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
    }
    // Refusing did not touch the data.
    raw(&path, "UPDATE schema_version SET version = 1");
    assert_eq!(
        SqliteStore::open(&path)
            .unwrap()
            .load()
            .unwrap()
            .leases
            .len(),
        3
    );
}

#[test]
fn a_lease_row_with_state_99_is_an_error_naming_the_ip_and_column() {
    let (_dir, path) = populated();
    let ip = sample_lease(2).ip;
    raw(
        &path,
        &format!("UPDATE leases SET state = 99 WHERE ip = {}", u32::from(ip)),
    );
    let err = load_error(&path);
    assert!(
        matches!(&err, StoreError::CorruptLease { ip: i, column: "state", .. } if *i == ip),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("10.0.0.2") && msg.contains("state") && msg.contains("99"),
        "{msg}"
    );
}

#[test]
fn a_lease_row_with_unparseable_client_bytes_is_an_error_naming_the_ip_and_column() {
    let (_dir, path) = populated();
    for bad in ["x'07aabb'", "x''", "x'01'"] {
        raw(
            &path,
            &format!("UPDATE leases SET client = {bad} WHERE ip = 167772163"),
        );
        let err = load_error(&path);
        assert!(
            matches!(
                &err,
                StoreError::CorruptLease {
                    column: "client",
                    ..
                }
            ),
            "{bad}: {err:?}"
        );
        assert!(err.to_string().contains("10.0.0.3"), "{err}");
    }
}

#[test]
fn a_lease_row_with_a_wrong_type_or_range_is_an_error_naming_the_column() {
    for (sql, column) in [
        (
            "UPDATE leases SET htype = 300 WHERE ip = 167772161",
            "htype",
        ),
        (
            "UPDATE leases SET starts = 'soon' WHERE ip = 167772161",
            "starts",
        ),
        (
            "UPDATE leases SET chaddr = 'text' WHERE ip = 167772161",
            "chaddr",
        ),
        (
            "UPDATE leases SET hostname = x'ff00' WHERE ip = 167772161",
            "hostname",
        ),
        ("UPDATE leases SET state = -1 WHERE ip = 167772161", "state"),
    ] {
        let (_dir, path) = populated();
        raw(&path, sql);
        let err = load_error(&path);
        assert!(
            matches!(&err, StoreError::CorruptLease { column: c, .. } if *c == column),
            "{sql}: {err:?}"
        );
        assert!(err.to_string().contains("10.0.0.1"), "{err}");
    }
}

#[test]
fn a_lease_row_whose_ip_is_not_an_ipv4_address_is_an_error() {
    let (_dir, path) = populated();
    raw(
        &path,
        "UPDATE leases SET ip = 4294967296 WHERE ip = 167772161",
    );
    let err = load_error(&path);
    assert!(
        matches!(
            err,
            StoreError::CorruptLeaseIp {
                value: 4_294_967_296,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_corrupt_relationship_row_is_an_error_naming_it() {
    let (_dir, path) = populated();
    raw(
        &path,
        "UPDATE relationships SET my_state = 256 WHERE name = 'peer'",
    );
    let err = load_error(&path);
    assert!(
        matches!(&err, StoreError::CorruptRelationship { name, column: "my_state", .. } if name == "peer"),
        "{err:?}"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_an_error_not_a_panic() {
    let (_dir, path) = db();
    std::fs::write(&path, vec![0x42; 8192]).unwrap();
    assert!(SqliteStore::open(&path).is_err());
    assert!(SqliteStore::open_read_only(&path).is_err());
}

#[test]
fn a_database_without_our_schema_is_refused_read_only() {
    let (_dir, path) = db();
    raw(&path, "CREATE TABLE other (x INTEGER)");
    let err = SqliteStore::open_read_only(&path).expect_err("not ours");
    assert!(
        matches!(err, StoreError::NotALeaseDatabase { .. }),
        "{err:?}"
    );
}

#[test]
fn a_transaction_dropped_without_commit_leaves_nothing() {
    let (_dir, path) = populated();
    {
        let mut conn = Connection::open(&path).unwrap();
        let tx = conn.transaction().unwrap();
        tx.execute("DELETE FROM leases", []).unwrap();
        tx.execute("INSERT INTO relationships VALUES ('ghost', 1, 1, 1, 1)", [])
            .unwrap();
        // Dropped here: the connection goes away mid-transaction.
    }
    let snapshot = SqliteStore::open(&path).unwrap().load().unwrap();
    assert_eq!(snapshot.leases.len(), 3);
    assert_eq!(snapshot.relationships, vec![sample_relationship("peer", 1)]);
}

#[test]
fn a_write_failing_mid_transaction_reports_the_sqlite_error_and_rolls_back() {
    let (_dir, path) = populated();
    let mut store = SqliteStore::open(&path).unwrap();
    let before = store.load().unwrap();
    raw(
        &path,
        "CREATE TRIGGER no_more BEFORE INSERT ON leases WHEN NEW.ip = 167772170 \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
    );
    let err = store
        .commit(&[
            Write::DeleteLease(sample_lease(1).ip),
            Write::Lease(sample_lease(5)),
            Write::Lease(sample_lease(10)),
        ])
        .expect_err("the trigger aborts the batch");
    assert!(
        matches!(
            err,
            StoreError::Sqlite {
                op: "upsert lease",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(format!("{err}").contains("injected failure"), "{err}");
    assert_eq!(store.load().unwrap(), before);
}

#[test]
fn read_only_open_works_while_a_writer_holds_the_database() {
    let (_dir, path) = db();
    let mut writer = SqliteStore::open(&path).unwrap();
    writer.commit(&[Write::Lease(sample_lease(1))]).unwrap();

    let mut reader = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(reader.load().unwrap().leases, vec![sample_lease(1)]);

    // The writer keeps committing with the reader open, and the reader sees it.
    writer.commit(&[Write::Lease(sample_lease(2))]).unwrap();
    assert_eq!(reader.load().unwrap().leases.len(), 2);

    let err = reader
        .commit(&[Write::Lease(sample_lease(3))])
        .expect_err("read-only");
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
    assert_eq!(writer.load().unwrap().leases.len(), 2);
}

#[test]
fn read_only_open_works_after_the_writer_closed() {
    let (_dir, path) = populated();
    let mut reader = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(reader.load().unwrap().leases.len(), 3);
}

#[test]
fn read_only_open_of_a_missing_file_fails_and_creates_nothing() {
    let (dir, path) = db();
    assert!(SqliteStore::open_read_only(&path).is_err());
    assert!(!path.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

const CRASH_CHILD_ENV: &str = "DHCPAIR_STORE_CRASH_CHILD_DB";
const CRASH_BATCH: u32 = 1000;

/// Not a test on its own: the child half of `committed_batches_survive_kill_9_whole`. Without
/// the environment variable it returns at once.
#[test]
fn crash_child_commits_until_killed() {
    let Some(path) = std::env::var_os(CRASH_CHILD_ENV) else {
        return;
    };
    let mut store = SqliteStore::open(Path::new(&path)).unwrap();
    // Straight to the file descriptor: the test harness does not capture `io::stdout()`.
    let mut out = std::io::stdout();
    for k in 1u64.. {
        let writes: Vec<Write> = (0..CRASH_BATCH)
            .map(|n| {
                Write::Lease(Lease {
                    ends: k,
                    ..sample_lease(n)
                })
            })
            .collect();
        store.commit(&writes).unwrap();
        writeln!(out, "committed {k}").unwrap();
        out.flush().unwrap();
    }
}

/// A real crash: a child process commits batches in a loop and is killed with SIGKILL at an
/// arbitrary point, usually mid-transaction. Every batch acknowledged before the kill is there,
/// and no batch is there in part.
#[test]
fn committed_batches_survive_kill_9_whole() {
    let (_dir, path) = db();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_commits_until_killed",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut acknowledged = 0u64;
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(k) = line.strip_prefix("committed ") {
            acknowledged = k.parse().unwrap();
            if acknowledged >= 5 {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        acknowledged >= 5,
        "the child stopped after {acknowledged} commits"
    );

    let leases = SqliteStore::open(&path).unwrap().load().unwrap().leases;
    assert_eq!(leases.len(), CRASH_BATCH as usize);
    let ends = leases[0].ends;
    assert!(
        ends >= acknowledged,
        "batch {acknowledged} was acknowledged, found {ends}"
    );
    assert!(
        leases.iter().all(|l| l.ends == ends),
        "a batch survived in part"
    );
}
