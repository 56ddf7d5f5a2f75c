//! The production backend: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! A commit is one `BEGIN IMMEDIATE … COMMIT` transaction, so it costs one fsync of the WAL no
//! matter how many rows it holds; readers (`dhcpair leases`) never block the writer. Rows are
//! parsed into engine types on load and a row that does not parse is an error naming the address
//! and column, never a panic.
//!
//! Times are `u64` and SQLite integers are `i64`: times are stored bit for bit, so a time above
//! `i64::MAX` (say `Time::MAX` for "infinite") reads back unchanged but looks negative to raw SQL.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use rusqlite::types::FromSql;
use rusqlite::{params, Connection, OpenFlags, Row, TransactionBehavior};

use crate::{
    BindingState, ClientKey, Lease, LeaseStore, RelationshipState, Snapshot, StoreError, Time,
    Write,
};

/// The schema version this build writes and the newest it can read.
pub const SCHEMA_VERSION: i64 = 1;

const CREATE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS leases (
    ip INTEGER PRIMARY KEY,
    state INTEGER NOT NULL,
    client BLOB,
    htype INTEGER NOT NULL,
    chaddr BLOB NOT NULL,
    hostname TEXT,
    pool TEXT NOT NULL,
    starts INTEGER NOT NULL,
    ends INTEGER NOT NULL,
    tstp INTEGER NOT NULL,
    tsfp INTEGER NOT NULL,
    atsfp INTEGER NOT NULL,
    cltt INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS relationships (
    name TEXT PRIMARY KEY NOT NULL,
    my_state INTEGER NOT NULL,
    partner_state INTEGER NOT NULL,
    stos INTEGER NOT NULL,
    mclt INTEGER NOT NULL
);
";

const UPSERT_LEASE: &str = "
INSERT INTO leases (ip, state, client, htype, chaddr, hostname, pool,
                    starts, ends, tstp, tsfp, atsfp, cltt)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
ON CONFLICT (ip) DO UPDATE SET
    state = excluded.state, client = excluded.client, htype = excluded.htype,
    chaddr = excluded.chaddr, hostname = excluded.hostname, pool = excluded.pool,
    starts = excluded.starts, ends = excluded.ends, tstp = excluded.tstp,
    tsfp = excluded.tsfp, atsfp = excluded.atsfp, cltt = excluded.cltt";

const DELETE_LEASE: &str = "DELETE FROM leases WHERE ip = ?1";

const UPSERT_RELATIONSHIP: &str = "
INSERT INTO relationships (name, my_state, partner_state, stos, mclt)
VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (name) DO UPDATE SET
    my_state = excluded.my_state, partner_state = excluded.partner_state,
    stos = excluded.stos, mclt = excluded.mclt";

const SELECT_LEASES: &str = "
SELECT ip, state, client, htype, chaddr, hostname, pool,
       starts, ends, tstp, tsfp, atsfp, cltt
FROM leases ORDER BY ip";

const SELECT_RELATIONSHIPS: &str = "
SELECT name, my_state, partner_state, stos, mclt FROM relationships ORDER BY name";

/// A [`LeaseStore`] in one SQLite database file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    read_only: bool,
}

impl SqliteStore {
    /// Open the database at `path` for reading and writing, creating the file and its parent
    /// directories if missing. Refuses a database written by a newer schema version.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: path.to_owned(),
                op: "create its directory",
                source,
            })?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags).map_err(sqlite(path, "open"))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(sqlite(path, "set journal_mode=WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NotALeaseDatabase {
                path: path.to_owned(),
                reason: format!("journal mode stays {mode:?}, wal is required"),
            });
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sqlite(path, "set synchronous=FULL"))?;

        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite(path, "begin schema transaction"))?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);")
            .map_err(sqlite(path, "create table schema_version"))?;
        match schema_version(&tx, path)? {
            None => {
                tx.execute_batch(CREATE_SCHEMA)
                    .map_err(sqlite(path, "create tables"))?;
                tx.execute(
                    "INSERT INTO schema_version (version) VALUES (?1)",
                    [SCHEMA_VERSION],
                )
                .map_err(sqlite(path, "record schema version"))?;
            }
            Some(found) => check_version(path, found)?,
        }
        tx.commit().map_err(sqlite(path, "commit schema"))?;

        Ok(SqliteStore {
            conn,
            path: path.to_owned(),
            read_only: false,
        })
    }

    /// Open an existing database for [`load`](LeaseStore::load) only, e.g. for
    /// `dhcpair leases` while a server has it open. Never creates or changes the file;
    /// [`commit`](LeaseStore::commit) fails with [`StoreError::ReadOnly`].
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(sqlite(path, "open"))?;
        let has_table: bool = conn
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_master \
                 WHERE type = 'table' AND name = 'schema_version'",
                [],
                |row| row.get(0),
            )
            .map_err(sqlite(path, "read schema"))?;
        if !has_table {
            return Err(StoreError::NotALeaseDatabase {
                path: path.to_owned(),
                reason: "no schema_version table".to_owned(),
            });
        }
        match schema_version(&conn, path)? {
            None => {
                return Err(StoreError::NotALeaseDatabase {
                    path: path.to_owned(),
                    reason: "schema_version table is empty".to_owned(),
                })
            }
            Some(found) => check_version(path, found)?,
        }
        Ok(SqliteStore {
            conn,
            path: path.to_owned(),
            read_only: true,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load_leases(conn: &Connection, path: &Path) -> Result<Vec<Lease>, StoreError> {
        let mut stmt = conn
            .prepare_cached(SELECT_LEASES)
            .map_err(sqlite(path, "prepare lease query"))?;
        let mut rows = stmt.query([]).map_err(sqlite(path, "query leases"))?;
        let mut leases = Vec::new();
        while let Some(row) = rows.next().map_err(sqlite(path, "read leases"))? {
            leases.push(lease_from_row(row, path)?);
        }
        Ok(leases)
    }

    fn load_relationships(
        conn: &Connection,
        path: &Path,
    ) -> Result<Vec<RelationshipState>, StoreError> {
        let mut stmt = conn
            .prepare_cached(SELECT_RELATIONSHIPS)
            .map_err(sqlite(path, "prepare relationship query"))?;
        let mut rows = stmt
            .query([])
            .map_err(sqlite(path, "query relationships"))?;
        let mut rels = Vec::new();
        while let Some(row) = rows.next().map_err(sqlite(path, "read relationships"))? {
            rels.push(relationship_from_row(row, path)?);
        }
        Ok(rels)
    }
}

impl LeaseStore for SqliteStore {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        let path = self.path.as_path();
        // One read transaction, so leases and relationships come from the same commit.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(sqlite(path, "begin read transaction"))?;
        let leases = Self::load_leases(&tx, path)?;
        let relationships = Self::load_relationships(&tx, path)?;
        tx.finish().map_err(sqlite(path, "end read transaction"))?;
        Ok(Snapshot {
            leases,
            relationships,
        })
    }

    fn commit(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        let path = self.path.as_path();
        if self.read_only {
            return Err(StoreError::ReadOnly {
                path: path.to_owned(),
            });
        }
        if writes.is_empty() {
            return Ok(());
        }
        // Dropping `tx` on any early return rolls the whole batch back.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite(path, "begin transaction"))?;
        {
            let mut upsert_lease = tx
                .prepare_cached(UPSERT_LEASE)
                .map_err(sqlite(path, "prepare lease upsert"))?;
            let mut delete_lease = tx
                .prepare_cached(DELETE_LEASE)
                .map_err(sqlite(path, "prepare lease delete"))?;
            let mut upsert_rel = tx
                .prepare_cached(UPSERT_RELATIONSHIP)
                .map_err(sqlite(path, "prepare relationship upsert"))?;
            for write in writes {
                match write {
                    Write::Lease(l) => {
                        upsert_lease
                            .execute(params![
                                ip_to_sql(l.ip),
                                l.state as u8,
                                l.client.as_ref().map(ClientKey::to_bytes),
                                l.htype,
                                l.chaddr,
                                l.hostname,
                                l.pool,
                                time_to_sql(l.starts),
                                time_to_sql(l.ends),
                                time_to_sql(l.tstp),
                                time_to_sql(l.tsfp),
                                time_to_sql(l.atsfp),
                                time_to_sql(l.cltt),
                            ])
                            .map_err(sqlite(path, "upsert lease"))?;
                    }
                    Write::DeleteLease(ip) => {
                        delete_lease
                            .execute([ip_to_sql(*ip)])
                            .map_err(sqlite(path, "delete lease"))?;
                    }
                    Write::Relationship(r) => {
                        upsert_rel
                            .execute(params![
                                r.name,
                                r.my_state,
                                r.partner_state,
                                time_to_sql(r.stos),
                                r.mclt,
                            ])
                            .map_err(sqlite(path, "upsert relationship"))?;
                    }
                }
            }
        }
        tx.commit().map_err(sqlite(path, "commit"))
    }
}

fn sqlite<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError + 'a {
    move |source| StoreError::Sqlite {
        path: path.to_owned(),
        op,
        source,
    }
}

fn schema_version(conn: &Connection, path: &Path) -> Result<Option<i64>, StoreError> {
    conn.query_row("SELECT max(version) FROM schema_version", [], |row| {
        row.get(0)
    })
    .map_err(sqlite(path, "read schema version"))
}

fn check_version(path: &Path, found: i64) -> Result<(), StoreError> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < 1 {
        return Err(StoreError::NotALeaseDatabase {
            path: path.to_owned(),
            reason: format!("schema version {found} is invalid"),
        });
    }
    Ok(())
}

fn ip_to_sql(ip: Ipv4Addr) -> i64 {
    i64::from(u32::from(ip))
}

/// Bit-for-bit, so every `u64` round-trips (see the module docs).
fn time_to_sql(t: Time) -> i64 {
    i64::from_ne_bytes(t.to_ne_bytes())
}

fn time_from_sql(v: i64) -> Time {
    Time::from_ne_bytes(v.to_ne_bytes())
}

fn lease_from_row(row: &Row<'_>, path: &Path) -> Result<Lease, StoreError> {
    let raw_ip: i64 = row.get(0).map_err(|e| StoreError::Sqlite {
        path: path.to_owned(),
        op: "read lease ip",
        source: e,
    })?;
    let ip = u32::try_from(raw_ip)
        .map(Ipv4Addr::from)
        .map_err(|_| StoreError::CorruptLeaseIp {
            path: path.to_owned(),
            value: raw_ip,
        })?;
    let corrupt = |column: &'static str, reason: String| StoreError::CorruptLease {
        path: path.to_owned(),
        ip,
        column,
        reason,
    };
    let col = |idx: usize, column: &'static str| ColumnReader {
        row,
        idx,
        column,
        corrupt: &corrupt,
    };

    let raw_state: i64 = col(1, "state").read()?;
    let state = u8::try_from(raw_state)
        .ok()
        .and_then(BindingState::from_wire)
        .ok_or_else(|| corrupt("state", format!("{raw_state} is not a binding state")))?;
    let client = match col(2, "client").read::<Option<Vec<u8>>>()? {
        None => None,
        Some(bytes) => Some(ClientKey::from_bytes(&bytes).ok_or_else(|| {
            corrupt(
                "client",
                format!("{bytes:02x?} is not an encoded client key"),
            )
        })?),
    };
    Ok(Lease {
        ip,
        state,
        client,
        htype: col(3, "htype").read()?,
        chaddr: col(4, "chaddr").read()?,
        hostname: col(5, "hostname").read()?,
        pool: col(6, "pool").read()?,
        starts: time_from_sql(col(7, "starts").read()?),
        ends: time_from_sql(col(8, "ends").read()?),
        tstp: time_from_sql(col(9, "tstp").read()?),
        tsfp: time_from_sql(col(10, "tsfp").read()?),
        atsfp: time_from_sql(col(11, "atsfp").read()?),
        cltt: time_from_sql(col(12, "cltt").read()?),
    })
}

fn relationship_from_row(row: &Row<'_>, path: &Path) -> Result<RelationshipState, StoreError> {
    let name: String = row.get(0).map_err(|e| StoreError::Sqlite {
        path: path.to_owned(),
        op: "read relationship name",
        source: e,
    })?;
    let corrupt = |column: &'static str, reason: String| StoreError::CorruptRelationship {
        path: path.to_owned(),
        name: name.clone(),
        column,
        reason,
    };
    let col = |idx: usize, column: &'static str| ColumnReader {
        row,
        idx,
        column,
        corrupt: &corrupt,
    };
    let my_state = col(1, "my_state").read()?;
    let partner_state = col(2, "partner_state").read()?;
    let stos = time_from_sql(col(3, "stos").read()?);
    let mclt = col(4, "mclt").read()?;
    Ok(RelationshipState {
        name,
        my_state,
        partner_state,
        stos,
        mclt,
    })
}

/// Reads one column, turning a type or range mismatch into a corrupt-row error for that column.
struct ColumnReader<'a, 'r, F> {
    row: &'a Row<'r>,
    idx: usize,
    column: &'static str,
    corrupt: &'a F,
}

impl<F: Fn(&'static str, String) -> StoreError> ColumnReader<'_, '_, F> {
    fn read<T: FromSql>(&self) -> Result<T, StoreError> {
        self.row
            .get(self.idx)
            .map_err(|e| (self.corrupt)(self.column, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn every_time_round_trips_through_an_sqlite_integer() {
        for t in [
            0,
            1,
            1_700_000_000,
            i64::MAX as u64,
            i64::MAX as u64 + 1,
            u64::MAX,
        ] {
            assert_eq!(time_from_sql(time_to_sql(t)), t);
        }
    }

    #[test]
    fn a_writer_uses_wal_and_full_synchronous() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("leases.db")).unwrap();
        let mode: String = store
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        let sync: i64 = store
            .conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL is 2");
    }
}
