//! The lease-store contract battery, stamped out once per backend under the same test names.

#![allow(clippy::unwrap_used, clippy::expect_used)]

macro_rules! contract_tests {
    ($backend:ident, $fixture:path) => {
        mod $backend {
            use dhcpair_store::battery;

            contract_tests!(@plain $fixture;
                empty_store_loads_empty,
                upsert_then_reopen_returns_the_same_lease,
                upsert_overwrites_the_lease_with_the_same_ip,
                delete_removes_only_that_lease,
                deleting_a_missing_lease_is_not_an_error,
                an_empty_commit_changes_nothing,
                every_binding_state_round_trips,
                every_field_round_trips,
                load_returns_leases_in_address_order,
                relationships_upsert_and_reload,
                writes_in_a_batch_apply_in_order,
                committed_data_survives_drop_and_reopen,
                a_reopened_store_keeps_writing,
                ten_thousand_lease_batch_commits_and_reloads,
            );

            #[test]
            fn a_failed_commit_changes_nothing_and_the_store_stays_usable() {
                let fixture = $fixture();
                battery::a_failed_commit_changes_nothing_and_the_store_stays_usable(
                    || fixture.open(),
                    |ip| fixture.arm_failure(ip),
                );
            }
        }
    };
    (@plain $fixture:path; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let fixture = $fixture();
                battery::$name(|| fixture.open());
            }
        )*
    };
}

contract_tests!(memory, crate::fixtures::memory);
contract_tests!(sqlite, crate::fixtures::sqlite);

mod fixtures {
    use std::net::Ipv4Addr;
    use std::path::PathBuf;

    use dhcpair_store::{LeaseStore, MemDisk, MemStore, SqliteStore};

    pub struct Memory {
        disk: MemDisk,
    }

    pub fn memory() -> Memory {
        Memory {
            disk: MemDisk::new(),
        }
    }

    impl Memory {
        pub fn open(&self) -> Box<dyn LeaseStore> {
            Box::new(MemStore::open(self.disk.clone()))
        }

        pub fn arm_failure(&self, _ip: Ipv4Addr) {
            self.disk.fail_next_commit();
        }
    }

    pub struct Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    }

    pub fn sqlite() -> Sqlite {
        let dir = tempfile::tempdir().unwrap();
        // A directory that does not exist yet: open must create it.
        let path = dir.path().join("state").join("leases.db");
        Sqlite { _dir: dir, path }
    }

    impl Sqlite {
        pub fn open(&self) -> Box<dyn LeaseStore> {
            Box::new(SqliteStore::open(&self.path).unwrap())
        }

        /// A trigger makes the insert of `ip` fail inside the transaction, after the batch's
        /// earlier writes have been executed: a real mid-transaction failure.
        pub fn arm_failure(&self, ip: Ipv4Addr) {
            let conn = rusqlite::Connection::open(&self.path).unwrap();
            conn.execute_batch(&format!(
                "CREATE TRIGGER injected_failure BEFORE INSERT ON leases \
                 WHEN NEW.ip = {} BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
                u32::from(ip)
            ))
            .unwrap();
        }
    }
}
