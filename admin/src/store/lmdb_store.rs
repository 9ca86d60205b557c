//! [`LmdbTaskStore`]: the embedded backend (heed/LMDB), the default for one host.
//!
//! Layout — one environment (`task_store.path`, default `{data_dir}/tasks`), five databases:
//! - `tasks`: big-endian `u32` uid → [`codec`] envelope. Big-endian so LMDB's byte order is
//!   numeric order: listing newest-first is a reverse cursor walk, `from` is a range bound.
//! - `unfinished`: uid → nothing, for every enqueued/processing task, maintained in the same
//!   transactions as `tasks`. The admin's refresher lists unfinished tasks several times a
//!   second; this index makes that cost proportional to the tasks in flight, not to history.
//! - `by_index`: [`codec::index_key`] (index uid, then big-endian uid) → nothing, written with
//!   the task (the index uid never changes) and removed with it: `indexUids` filters walk
//!   only the named indexes' tasks.
//! - `counters`: `next_task_uid` → `u64` big-endian, bumped in the same write transaction
//!   as the task insert, so a crash can neither lose an allocated uid nor leave a hole, and a
//!   deleted last task never gives its uid back.
//! - `meta`: metadata key (UTF-8) → opaque bytes; prefix listing is a cursor range.
//!
//! (Stores created by earlier versions also hold a `leases` database, unused since the leader
//! lease moved to the shared store, admin/src/leader/; it is left in place and never opened.)
//!
//! Every operation runs on tokio's blocking pool: LMDB writes fsync, and a reactor thread must
//! never wait on a disk. The environment is opened without thread-local read slots
//! (`read_txn_without_tls`) because pool threads are reused across unrelated jobs.

use super::codec::{self, Head, PageBuilder, ScanPlan};
use super::{
    NewTask, StoreError, StoreFuture, TaskPage, TaskQuery, TaskRecord, TaskState, TaskStatus,
    TaskStore, UpdateOutcome,
};
use heed::byteorder::BigEndian;
use heed::types::{Bytes, Str, Unit, U32};
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};
use miroir_core::ids::TaskUid;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Address space reserved for the map. LMDB only uses disk for pages actually written; a
/// large map means the store never needs a resize (which requires stopping all
/// transactions). 1M tasks with cached terminal views of ~1 KiB fit with ample room.
const MAP_SIZE: usize = 32 << 30;
const KEY_NEXT_UID: &str = "next_task_uid";
/// Bound of the `permits` semaphore; well below LMDB's default 126 reader slots.
const MAX_CONCURRENT_JOBS: usize = 32;

type TaskDb = Database<'static, U32<BigEndian>, Bytes>;
type StrDb = Database<'static, Str, Bytes>;
type UidSetDb = Database<'static, U32<BigEndian>, Unit>;
type KeySetDb = Database<'static, Bytes, Unit>;

#[derive(Clone)]
struct Inner {
    env: Env<WithoutTls>,
    tasks: TaskDb,
    unfinished: UidSetDb,
    by_index: KeySetDb,
    counters: StrDb,
    meta: StrDb,
}

/// The LMDB task store. Not `Clone`: share it as `Arc<dyn TaskStore>`; [`LmdbTaskStore::close`]
/// needs the only handle.
pub struct LmdbTaskStore {
    inner: Inner,
    path: PathBuf,
    /// Bounds the LMDB jobs in flight: each holds a reader slot (126 by default) and a
    /// blocking-pool thread, and a burst of polls must queue here rather than fail with
    /// `MDB_READERS_FULL` or spawn hundreds of threads.
    permits: Arc<Semaphore>,
}

fn worker_err(e: tokio::task::JoinError) -> StoreError {
    StoreError::Worker(e.to_string())
}

fn corrupt_counter() -> StoreError {
    StoreError::Corrupt {
        what: KEY_NEXT_UID.into(),
        reason: "not 8 bytes".into(),
    }
}

impl Inner {
    /// Keeps `uid`'s membership of the unfinished index in step with its status.
    fn track(&self, wtxn: &mut RwTxn, uid: u32, status: TaskStatus) -> Result<(), StoreError> {
        if status.is_terminal() {
            self.unfinished.delete(wtxn, &uid)?;
        } else {
            self.unfinished.put(wtxn, &uid, &())?;
        }
        Ok(())
    }

    fn next_uid(&self, txn: &RoTxn) -> Result<u64, StoreError> {
        match self.counters.get(txn, KEY_NEXT_UID)? {
            None => Ok(0),
            Some(b) => Ok(u64::from_be_bytes(
                b.try_into().map_err(|_| corrupt_counter())?,
            )),
        }
    }

    fn create(&self, task: NewTask, envelope: Vec<u8>) -> Result<TaskRecord, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let next = self.next_uid(&wtxn)?;
        let uid = u32::try_from(next).map_err(|_| StoreError::UidSpaceExhausted(next))?;
        self.tasks.put(&mut wtxn, &uid, &envelope)?;
        self.track(&mut wtxn, uid, task.state.status)?;
        if let Some(index) = &task.index_uid {
            self.by_index
                .put(&mut wtxn, &codec::index_key(index, TaskUid(uid)), &())?;
        }
        self.counters
            .put(&mut wtxn, KEY_NEXT_UID, &(next + 1).to_be_bytes())?;
        wtxn.commit()?;
        Ok(TaskRecord {
            uid: TaskUid(uid),
            index_uid: task.index_uid,
            task_type: task.task_type,
            enqueued_at: task.enqueued_at,
            state: task.state,
        })
    }

    fn update(&self, uid: TaskUid, state: &TaskState) -> Result<UpdateOutcome, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let Some(stored) = self.tasks.get(&wtxn, &uid.0)? else {
            return Ok(UpdateOutcome::NotFound);
        };
        if codec::status_of(stored)?.is_terminal() {
            return Ok(UpdateOutcome::AlreadyTerminal);
        }
        let envelope = codec::encode_update(stored, state)?;
        self.tasks.put(&mut wtxn, &uid.0, &envelope)?;
        self.track(&mut wtxn, uid.0, state.status)?;
        wtxn.commit()?;
        Ok(UpdateOutcome::Updated)
    }

    fn list(&self, query: &TaskQuery) -> Result<TaskPage, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut page = PageBuilder::new(query);
        let total = match codec::plan(query) {
            ScanPlan::Uids(uids) => {
                for uid in uids {
                    if let Some(v) = self.tasks.get(&rtxn, &uid.0)? {
                        page.offer(uid, v)?;
                    }
                }
                None
            }
            ScanPlan::Window => {
                let from = query.from.map(|f| f.0);
                match (query.reverse, from) {
                    (false, None) => feed(&mut page, self.tasks.rev_iter(&rtxn)?, true)?,
                    (false, Some(f)) => {
                        feed(&mut page, self.tasks.rev_range(&rtxn, &(..=f))?, true)?
                    }
                    (true, None) => feed(&mut page, self.tasks.iter(&rtxn)?, true)?,
                    (true, Some(f)) => feed(&mut page, self.tasks.range(&rtxn, &(f..))?, true)?,
                }
                Some(self.tasks.len(&rtxn)?)
            }
            ScanPlan::Unfinished => {
                let uids: Vec<u32> = if query.reverse {
                    self.unfinished
                        .iter(&rtxn)?
                        .map(|e| e.map(|(k, ())| k))
                        .collect::<Result<_, _>>()?
                } else {
                    self.unfinished
                        .rev_iter(&rtxn)?
                        .map(|e| e.map(|(k, ())| k))
                        .collect::<Result<_, _>>()?
                };
                for uid in uids {
                    if let Some(v) = self.tasks.get(&rtxn, &uid)? {
                        page.offer(TaskUid(uid), v)?;
                    }
                }
                None
            }
            ScanPlan::Indexes(indexes) => {
                let mut uids = Vec::new();
                for index in &indexes {
                    for entry in self
                        .by_index
                        .prefix_iter(&rtxn, &codec::index_prefix(index))?
                    {
                        uids.push((codec::uid_of_index_key(entry?.0)?, ()));
                    }
                }
                codec::sort_result_order(&mut uids, query.reverse);
                for (uid, ()) in uids {
                    if let Some(v) = self.tasks.get(&rtxn, &uid.0)? {
                        page.offer(uid, v)?;
                    }
                }
                None
            }
            ScanPlan::Full => {
                if query.reverse {
                    feed(&mut page, self.tasks.iter(&rtxn)?, false)?;
                } else {
                    feed(&mut page, self.tasks.rev_iter(&rtxn)?, false)?;
                }
                None
            }
        };
        Ok(page.finish(total))
    }

    /// Removes a task and its index entries; returns whether it existed.
    fn remove(&self, wtxn: &mut RwTxn, uid: TaskUid) -> Result<bool, StoreError> {
        let Some(v) = self.tasks.get(wtxn, &uid.0)? else {
            return Ok(false);
        };
        if let Some(index) = Head::decode(v)?.index_uid {
            let key = codec::index_key(index, uid);
            self.by_index.delete(wtxn, &key)?;
        }
        self.unfinished.delete(wtxn, &uid.0)?;
        self.tasks.delete(wtxn, &uid.0)?;
        Ok(true)
    }

    fn delete(&self, uids: &[TaskUid]) -> Result<u64, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let mut deleted = 0;
        for uid in uids {
            deleted += u64::from(self.remove(&mut wtxn, *uid)?);
        }
        wtxn.commit()?;
        Ok(deleted)
    }

    fn prune(&self, max_terminal: u64) -> Result<u64, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let mut statuses = Vec::new();
        for entry in self.tasks.iter(&wtxn)? {
            let (uid, v) = entry?;
            statuses.push((TaskUid(uid), codec::status_of(v)?));
        }
        let victims = codec::prune_victims(statuses, max_terminal);
        for uid in &victims {
            self.remove(&mut wtxn, *uid)?;
        }
        wtxn.commit()?;
        Ok(victims.len() as u64)
    }

    fn list_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        let mut push = |entry: heed::Result<(&str, &[u8])>| -> Result<(), StoreError> {
            let (k, v) = entry?;
            out.push((k.to_owned(), v.to_vec()));
            Ok(())
        };
        // LMDB rejects an empty key as a cursor position, so "" lists from the start.
        if prefix.is_empty() {
            self.meta.iter(&rtxn)?.try_for_each(&mut push)?;
        } else {
            self.meta
                .prefix_iter(&rtxn, prefix)?
                .try_for_each(&mut push)?;
        }
        Ok(out)
    }

    fn cas_meta(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        if self.meta.get(&wtxn, key)? != expected {
            return Ok(false);
        }
        match new {
            Some(v) => self.meta.put(&mut wtxn, key, v)?,
            None => {
                self.meta.delete(&mut wtxn, key)?;
            }
        }
        wtxn.commit()?;
        Ok(true)
    }
}

/// Offers cursor entries to `page` in cursor order; with `stop_when_done`, stops as soon as
/// the page and its `next` are known.
fn feed<'t>(
    page: &mut PageBuilder<'_>,
    iter: impl Iterator<Item = heed::Result<(u32, &'t [u8])>>,
    stop_when_done: bool,
) -> Result<(), StoreError> {
    for entry in iter {
        let (uid, v) = entry?;
        page.offer(TaskUid(uid), v)?;
        if stop_when_done && page.is_done() {
            break;
        }
    }
    Ok(())
}

impl LmdbTaskStore {
    /// Opens (creating if needed) the environment in directory `path`.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        let p = path.clone();
        let inner = tokio::task::spawn_blocking(move || Self::open_blocking(&p))
            .await
            .map_err(worker_err)??;
        Ok(LmdbTaskStore {
            inner,
            path,
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT_JOBS)),
        })
    }

    fn open_blocking(path: &Path) -> Result<Inner, StoreError> {
        std::fs::create_dir_all(path).map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // SAFETY: LMDB's memory map is only sound if the files are not modified outside LMDB
        // and the environment is not opened twice in this process (heed checks the latter and
        // returns `EnvAlreadyOpened`). Only this module opens the task store directory.
        let env = unsafe {
            EnvOpenOptions::new()
                .read_txn_without_tls()
                .map_size(MAP_SIZE)
                .max_dbs(6)
                .open(path)?
        };
        let wtxn = env.write_txn()?;
        let (tasks, unfinished, by_index, counters, meta) = env
            .create_databases_and_commit(wtxn, |dbo, wtxn| {
                let dbs = (
                    dbo.create_database(wtxn, Some("tasks"))?,
                    dbo.create_database(wtxn, Some("unfinished"))?,
                    dbo.create_database(wtxn, Some("by_index"))?,
                    dbo.create_database(wtxn, Some("counters"))?,
                    dbo.create_database(wtxn, Some("meta"))?,
                );
                Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit(dbs))
            })?
            .unwrap_commit();
        Ok(Inner {
            env,
            tasks,
            unfinished,
            by_index,
            counters,
            meta,
        })
    }

    /// The environment directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the environment and waits until LMDB has released it, so the same directory can
    /// be opened again in this process (admin restart, tests).
    pub async fn close(self) -> Result<(), StoreError> {
        let event = self.inner.env.clone().prepare_for_closing();
        drop(self);
        tokio::task::spawn_blocking(move || event.wait())
            .await
            .map_err(worker_err)
    }

    fn run<T, F>(&self, f: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        let permits = self.permits.clone();
        Box::pin(async move {
            let permit = permits
                .acquire_owned()
                .await
                .map_err(|e| StoreError::Worker(e.to_string()))?;
            // The permit moves into the job: a caller that stops waiting does not free the
            // slot before the job actually ends.
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                f(&inner)
            })
            .await
            .map_err(worker_err)?
        })
    }
}

impl TaskStore for LmdbTaskStore {
    fn backend_name(&self) -> &'static str {
        "lmdb"
    }

    fn create_task(&self, task: NewTask) -> StoreFuture<'_, TaskRecord> {
        // Encode before taking LMDB's single writer lock.
        match codec::encode_new(&task) {
            Ok(envelope) => self.run(move |s| s.create(task, envelope)),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    fn get_task(&self, uid: TaskUid) -> StoreFuture<'_, Option<TaskRecord>> {
        self.run(move |s| {
            let rtxn = s.env.read_txn()?;
            s.tasks
                .get(&rtxn, &uid.0)?
                .map(|v| codec::decode(uid, v))
                .transpose()
        })
    }

    fn update_task(&self, uid: TaskUid, state: TaskState) -> StoreFuture<'_, UpdateOutcome> {
        self.run(move |s| s.update(uid, &state))
    }

    fn list_tasks<'a>(&'a self, query: &'a TaskQuery) -> StoreFuture<'a, TaskPage> {
        let query = query.clone();
        self.run(move |s| s.list(&query))
    }

    fn delete_tasks<'a>(&'a self, uids: &'a [TaskUid]) -> StoreFuture<'a, u64> {
        let uids = uids.to_vec();
        self.run(move |s| s.delete(&uids))
    }

    fn prune(&self, max_terminal: u64) -> StoreFuture<'_, u64> {
        self.run(move |s| s.prune(max_terminal))
    }

    fn count_tasks(&self) -> StoreFuture<'_, u64> {
        self.run(|s| {
            let rtxn = s.env.read_txn()?;
            Ok(s.tasks.len(&rtxn)?)
        })
    }

    fn count_unfinished_tasks(&self) -> StoreFuture<'_, u64> {
        self.run(|s| {
            let rtxn = s.env.read_txn()?;
            Ok(s.unfinished.len(&rtxn)?)
        })
    }

    fn next_task_uid(&self) -> StoreFuture<'_, u64> {
        self.run(|s| {
            let rtxn = s.env.read_txn()?;
            s.next_uid(&rtxn)
        })
    }

    fn get_meta<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let key = key.to_owned();
        self.run(move |s| {
            codec::check_meta_key(&key)?;
            let rtxn = s.env.read_txn()?;
            Ok(s.meta.get(&rtxn, &key)?.map(<[u8]>::to_vec))
        })
    }

    fn put_meta<'a>(&'a self, key: &'a str, value: &'a [u8]) -> StoreFuture<'a, ()> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.run(move |s| {
            codec::check_meta_key(&key)?;
            let mut wtxn = s.env.write_txn()?;
            s.meta.put(&mut wtxn, &key, &value)?;
            Ok(wtxn.commit()?)
        })
    }

    fn delete_meta<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        let key = key.to_owned();
        self.run(move |s| {
            codec::check_meta_key(&key)?;
            let mut wtxn = s.env.write_txn()?;
            let existed = s.meta.delete(&mut wtxn, &key)?;
            wtxn.commit()?;
            Ok(existed)
        })
    }

    fn list_meta<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<(String, Vec<u8>)>> {
        let prefix = prefix.to_owned();
        self.run(move |s| s.list_meta(&prefix))
    }

    fn cas_meta<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Option<&'a [u8]>,
    ) -> StoreFuture<'a, bool> {
        let key = key.to_owned();
        let (expected, new) = (expected.map(<[u8]>::to_vec), new.map(<[u8]>::to_vec));
        self.run(move |s| {
            codec::check_meta_key(&key)?;
            s.cas_meta(&key, expected.as_deref(), new.as_deref())
        })
    }
}
