//! The snapshot channel: where the admin publishes [`Snapshot`] generations and where every
//! data-plane process reads them (docs/internals/control-protocol.md §1).
//!
//! This is the only I/O in the core (feature `lmdb`). It lives here so that the writer (admin)
//! and the readers (data planes) share one definition of the layout:
//!
//! - one LMDB environment in a directory (`{data_dir}/snapshot`), database `snapshot`;
//! - key `generation` → `u64` big-endian, key `current` → [`Snapshot::encode`] bytes, both
//!   written in one transaction, so a reader never sees a generation without its snapshot.
//!
//! LMDB readers never block the writer and see the last committed transaction. The reader
//! side is meant to be polled from one background thread (a generation read is ~100 ns);
//! never from a reactor's request path. heed refuses to open one environment twice in a
//! process, so one [`SnapshotStore`] handle serves both publishing and reading.

use crate::snapshot::{Snapshot, SnapshotError};
use heed::types::{Bytes, Str};
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions};
use std::path::Path;

const DB_NAME: &str = "snapshot";
const KEY_GENERATION: &str = "generation";
const KEY_CURRENT: &str = "current";
/// Snapshots are small (KiBs to a few MiB); 1 GiB of address space costs nothing and means
/// readers never have to handle a map resize.
const MAP_SIZE: usize = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotStoreError {
    #[error("snapshot store I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("snapshot store LMDB: {0}")]
    Lmdb(#[from] heed::Error),
    #[error("snapshot store holds an undecodable snapshot: {0}")]
    Decode(#[from] SnapshotError),
    #[error("snapshot store: generation key is not 8 bytes")]
    CorruptGeneration,
}

/// A handle on the snapshot environment. `Clone` is cheap (heed's `Env` is reference-counted).
#[derive(Clone)]
pub struct SnapshotStore {
    env: Env,
    db: Database<'static, Str, Bytes>,
}

impl SnapshotStore {
    /// Opens (creating the directory and the database if needed) the snapshot environment at
    /// `dir`. Readers may open it before the admin ever published: creating the empty named
    /// database is idempotent, and LMDB serialises the two processes' write transactions.
    pub fn open(dir: &Path) -> Result<Self, SnapshotStoreError> {
        std::fs::create_dir_all(dir)?;
        // SAFETY: heed requires that the environment is not opened twice in one process and
        // that its files are not modified outside LMDB; this module is the only code that
        // opens this directory, and each process holds one `SnapshotStore`.
        let env = unsafe {
            EnvOpenOptions::new()
                .map_size(MAP_SIZE)
                .max_dbs(4)
                .open(dir)?
        };
        let wtxn = env.write_txn()?;
        let db = env
            .create_databases_and_commit(wtxn, |opener, wtxn| -> Result<_, heed::Error> {
                let db = opener.create_database::<Str, Bytes>(wtxn, Some(DB_NAME))?;
                Ok(CommitOrAbort::<_, ()>::Commit(db))
            })?
            .unwrap_commit();
        Ok(SnapshotStore { env, db })
    }

    /// Publishes `snapshot` as the next generation and returns that generation. The stored
    /// snapshot's `generation` field is set to it, whatever the caller put there.
    pub fn publish(&self, snapshot: &Snapshot) -> Result<u64, SnapshotStoreError> {
        let db = self.db;
        let mut wtxn = self.env.write_txn()?;
        let previous = match db.get(&wtxn, KEY_GENERATION)? {
            Some(b) => u64::from_be_bytes(
                b.try_into()
                    .map_err(|_| SnapshotStoreError::CorruptGeneration)?,
            ),
            None => 0,
        };
        let generation = previous + 1;
        let mut stored = snapshot.clone();
        stored.generation = generation;
        db.put(&mut wtxn, KEY_CURRENT, &stored.encode())?;
        db.put(&mut wtxn, KEY_GENERATION, &generation.to_be_bytes())?;
        wtxn.commit()?;
        Ok(generation)
    }

    /// The latest published generation, `0` when nothing was ever published.
    pub fn generation(&self) -> Result<u64, SnapshotStoreError> {
        let db = self.db;
        let rtxn = self.env.read_txn()?;
        match db.get(&rtxn, KEY_GENERATION)? {
            Some(b) => Ok(u64::from_be_bytes(
                b.try_into()
                    .map_err(|_| SnapshotStoreError::CorruptGeneration)?,
            )),
            None => Ok(0),
        }
    }

    /// The latest published snapshot, `None` when nothing was ever published.
    pub fn load(&self) -> Result<Option<Snapshot>, SnapshotStoreError> {
        let db = self.db;
        let rtxn = self.env.read_txn()?;
        match db.get(&rtxn, KEY_CURRENT)? {
            Some(bytes) => Ok(Some(Snapshot::decode(bytes)?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_then_load_round_trips_and_counts_generations() {
        let dir = std::env::temp_dir().join(format!("miroir-snapstore-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = SnapshotStore::open(&dir).unwrap();
        assert_eq!(store.generation().unwrap(), 0);
        assert!(store.load().unwrap().is_none());

        let mut snap = Snapshot {
            epoch: 3,
            replication_factor: 1,
            replica_groups: 1,
            ..Default::default()
        };
        assert_eq!(store.publish(&snap).unwrap(), 1);
        snap.epoch = 4;
        assert_eq!(store.publish(&snap).unwrap(), 2);

        let loaded = store.load().unwrap().unwrap();
        assert_eq!(loaded.generation, 2);
        assert_eq!(loaded.epoch, 4);
        assert_eq!(store.generation().unwrap(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
