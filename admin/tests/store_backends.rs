//! One test suite for every task-store backend: each scenario is a generic async fn taking a
//! [`Harness`], instantiated once per backend by `both_backends!`. The Redis harness starts a
//! real `redis-server` on a free loopback port (no persistence, temp dir; the test kit's
//! `Redis`) and kills it on drop; if `redis-server` is not installed the Redis tests fail with
//! a message saying so.

use miroir_admin::store::{
    open_task_store, FailedNode, LmdbTaskStore, NewTask, NodeTask, RedisTaskStore, StoreError,
    TaskFilter, TaskQuery, TaskRecord, TaskState, TaskStatus, TaskStore, TaskType, UpdateOutcome,
};
use miroir_core::config::{Config, TaskStoreBackend};
use miroir_core::ids::{NodeId, TaskUid};
use miroir_testkit::Redis;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use time::OffsetDateTime;

// ---------------------------------------------------------------------------------------------
// Harness

/// Where a backend keeps its data across "restarts" of the store.
enum Harness {
    Lmdb(TempDir),
    Redis(Redis),
}

/// An open store, typed so that LMDB can be closed (and reopened) explicitly.
enum Opened {
    Lmdb(Arc<LmdbTaskStore>),
    Redis(Arc<RedisTaskStore>),
}

const PREFIX: &str = "test:";

impl Harness {
    fn lmdb() -> Harness {
        Harness::Lmdb(tempfile::tempdir().unwrap())
    }

    fn redis() -> Harness {
        Harness::Redis(Redis::start())
    }

    async fn open(&self) -> Opened {
        match self {
            Harness::Lmdb(dir) => Opened::Lmdb(Arc::new(
                LmdbTaskStore::open(&dir.path().join("tasks"))
                    .await
                    .unwrap(),
            )),
            Harness::Redis(server) => Opened::Redis(Arc::new(
                RedisTaskStore::connect(&server.url(), PREFIX)
                    .await
                    .unwrap(),
            )),
        }
    }
}

impl Opened {
    fn store(&self) -> Arc<dyn TaskStore> {
        match self {
            Opened::Lmdb(s) => s.clone(),
            Opened::Redis(s) => s.clone(),
        }
    }

    /// Closes the store (LMDB: releases the environment; Redis: drops the client).
    async fn close(self) {
        match self {
            Opened::Lmdb(s) => {
                let s = Arc::into_inner(s).expect("the test holds the only handle");
                s.close().await.unwrap();
            }
            Opened::Redis(s) => drop(s),
        }
    }
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod lmdb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Harness::lmdb()).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Harness::redis()).await
                }
            )*
        }
    };
}

both_backends!(
    allocation_is_dense_monotonic_and_never_reuses,
    concurrent_allocation_is_dense,
    records_round_trip,
    filters_and_pagination,
    scans_span_many_chunks,
    updates_and_terminal_cache,
    restart_keeps_everything,
    delete_and_prune,
    metadata_kv,
    opens_from_config,
);

// ---------------------------------------------------------------------------------------------
// Helpers

fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_700_000_000 + secs).unwrap()
}

fn new_task(index: Option<&str>, ty: TaskType, enqueued: i64) -> NewTask {
    NewTask {
        index_uid: index.map(str::to_owned),
        task_type: ty,
        enqueued_at: at(enqueued),
        state: TaskState::enqueued(
            vec![NodeTask {
                node: NodeId::new("meili-0"),
                task_uid: enqueued as u32,
            }],
            vec![],
            json!({"receivedDocuments": 1}),
        ),
    }
}

async fn create(store: &dyn TaskStore, index: Option<&str>, ty: TaskType, enq: i64) -> u32 {
    store
        .create_task(new_task(index, ty, enq))
        .await
        .unwrap()
        .uid
        .0
}

fn uids(tasks: &[TaskRecord]) -> Vec<u32> {
    tasks.iter().map(|t| t.uid.0).collect()
}

/// `(uids on the page, total, next)` for a query.
async fn page(store: &dyn TaskStore, q: TaskQuery) -> (Vec<u32>, u64, Option<u32>) {
    let p = store.list_tasks(&q).await.unwrap();
    (uids(&p.tasks), p.total, p.next.map(|n| n.0))
}

fn filtered(filter: TaskFilter) -> TaskQuery {
    TaskQuery {
        filter,
        ..TaskQuery::default()
    }
}

fn state(status: TaskStatus, started: Option<i64>, finished: Option<i64>) -> TaskState {
    TaskState {
        status,
        started_at: started.map(at),
        finished_at: finished.map(at),
        ..TaskState::enqueued(vec![], vec![], json!({}))
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

async fn allocation_is_dense_monotonic_and_never_reuses(h: Harness) {
    let opened = h.open().await;
    let store = opened.store();
    assert_eq!(store.next_task_uid().await.unwrap(), 0);
    for expected in 0..20u32 {
        assert_eq!(
            create(&*store, Some("movies"), TaskType::IndexCreation, 0).await,
            expected
        );
    }
    assert_eq!(store.next_task_uid().await.unwrap(), 20);
    // Deleting the newest task must not hand its uid out again.
    assert_eq!(store.delete_tasks(&[TaskUid(19)]).await.unwrap(), 1);
    assert_eq!(create(&*store, None, TaskType::DumpCreation, 0).await, 20);
    assert_eq!(store.count_tasks().await.unwrap(), 20);
}

async fn concurrent_allocation_is_dense(h: Harness) {
    let opened = h.open().await;
    let store = opened.store();
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create_task(new_task(Some("i"), TaskType::DocumentDeletion, i))
                    .await
            })
        })
        .collect();
    let mut got = Vec::new();
    for h in handles {
        got.push(h.await.unwrap().unwrap().uid.0);
    }
    got.sort_unstable();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    assert_eq!(store.count_tasks().await.unwrap(), 100);
    // Every record landed under the uid it was given.
    for uid in [0, 42, 99] {
        assert_eq!(
            store.get_task(TaskUid(uid)).await.unwrap().unwrap().uid,
            TaskUid(uid)
        );
    }
}

async fn records_round_trip(h: Harness) {
    let opened = h.open().await;
    let store = opened.store();
    let task = NewTask {
        index_uid: Some("movies".into()),
        task_type: TaskType::DocumentAdditionOrUpdate,
        enqueued_at: OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap(),
        state: TaskState::enqueued(
            vec![
                NodeTask {
                    node: NodeId::new("meili-0"),
                    task_uid: 12,
                },
                NodeTask {
                    node: NodeId::new("meili-2"),
                    task_uid: 7,
                },
            ],
            vec![FailedNode {
                node: NodeId::new("meili-1"),
                error: json!({
                    "message": "boom", "code": "internal", "type": "internal", "link": ""
                }),
            }],
            json!({"receivedDocuments": 1000}),
        ),
    };
    let created = store.create_task(task.clone()).await.unwrap();
    assert_eq!(created.uid, TaskUid(0));
    let got = store.get_task(TaskUid(0)).await.unwrap().unwrap();
    assert_eq!(got, created);
    assert_eq!(got.index_uid.as_deref(), Some("movies"));
    assert_eq!(got.enqueued_at, task.enqueued_at);
    assert_eq!(got.state, task.state);
    assert_eq!(store.get_task(TaskUid(1)).await.unwrap(), None);
}

/// A fixture task: (index, type, status, startedAt, finishedAt, canceledBy); uid = position.
type Row = (
    Option<&'static str>,
    TaskType,
    TaskStatus,
    Option<i64>,
    Option<i64>,
    Option<u32>,
);

#[rustfmt::skip]
const FIXTURE: [Row; 8] = {
    use TaskStatus::*;
    use TaskType::*;
    [
        (Some("movies"), DocumentAdditionOrUpdate, Succeeded, Some(100), Some(200), None),
        (Some("books"), SettingsUpdate, Failed, Some(101), Some(201), None),
        (Some("movies"), DocumentDeletion, Enqueued, None, None, None),
        (None, TaskCancelation, Succeeded, Some(103), Some(203), None),
        (Some("movies"), DocumentAdditionOrUpdate, Canceled, None, Some(204), Some(3)),
        (Some("books"), DocumentAdditionOrUpdate, Processing, Some(105), None, None),
        (Some("movies"), IndexCreation, Succeeded, Some(106), Some(206), None),
        (Some("music"), DocumentAdditionOrUpdate, Enqueued, None, None, None),
    ]
};

async fn seed_filter_fixture(store: &dyn TaskStore) {
    let rows = FIXTURE;
    for (i, (index, ty, status, started, finished, canceled_by)) in rows.into_iter().enumerate() {
        let uid = create(store, index, ty, i as i64).await;
        assert_eq!(uid, i as u32);
        if status != TaskStatus::Enqueued {
            let mut st = state(status, started, finished);
            st.canceled_by = canceled_by.map(TaskUid);
            assert_eq!(
                store.update_task(TaskUid(uid), st).await.unwrap(),
                UpdateOutcome::Updated
            );
        }
    }
}

async fn filters_and_pagination(h: Harness) {
    use TaskStatus::*;
    let opened = h.open().await;
    let store = opened.store();
    let s = &*store;
    seed_filter_fixture(s).await;
    let f = TaskFilter::default;

    assert_eq!(
        page(s, TaskQuery::default()).await,
        ((0..8).rev().collect(), 8, None)
    );
    let by_status = |st: Vec<TaskStatus>| {
        filtered(TaskFilter {
            statuses: Some(st),
            ..f()
        })
    };
    assert_eq!(
        page(s, by_status(vec![Succeeded])).await,
        (vec![6, 3, 0], 3, None)
    );
    assert_eq!(
        page(s, by_status(vec![Enqueued, Processing])).await,
        (vec![7, 5, 2], 3, None)
    );
    assert_eq!(store.count_unfinished_tasks().await.unwrap(), 3);
    let unfinished = || TaskFilter {
        statuses: Some(vec![Enqueued, Processing]),
        ..f()
    };
    let limited = |from: Option<u32>, reverse| TaskQuery {
        filter: unfinished(),
        from: from.map(TaskUid),
        limit: 2,
        reverse,
    };
    assert_eq!(
        page(s, limited(None, false)).await,
        (vec![7, 5], 3, Some(2))
    );
    assert_eq!(page(s, limited(Some(2), false)).await, (vec![2], 3, None));
    assert_eq!(page(s, limited(None, true)).await, (vec![2, 5], 3, Some(7)));
    let unfinished_movies = TaskFilter {
        index_uids: Some(vec!["movies".into()]),
        ..unfinished()
    };
    assert_eq!(
        page(s, filtered(unfinished_movies)).await,
        (vec![2], 1, None)
    );
    assert_eq!(page(s, by_status(vec![])).await, (vec![], 0, None));

    let doc_add = || Some(vec![TaskType::DocumentAdditionOrUpdate]);
    assert_eq!(
        page(
            s,
            filtered(TaskFilter {
                types: doc_add(),
                ..f()
            })
        )
        .await,
        (vec![7, 5, 4, 0], 4, None)
    );
    let idx = |l: &[&str]| Some(l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(
        page(
            s,
            filtered(TaskFilter {
                index_uids: idx(&["movies"]),
                ..f()
            })
        )
        .await,
        (vec![6, 4, 2, 0], 4, None)
    );
    // Task 3 has no index: it never matches an index filter.
    assert_eq!(
        page(
            s,
            filtered(TaskFilter {
                index_uids: idx(&["movies", "books"]),
                ..f()
            })
        )
        .await,
        (vec![6, 5, 4, 2, 1, 0], 6, None)
    );
    assert_eq!(
        page(
            s,
            filtered(TaskFilter {
                canceled_by: Some(vec![TaskUid(3)]),
                ..f()
            })
        )
        .await,
        (vec![4], 1, None)
    );
    let some_uids = Some(vec![TaskUid(1), TaskUid(4), TaskUid(4), TaskUid(99)]);
    assert_eq!(
        page(
            s,
            filtered(TaskFilter {
                uids: some_uids,
                ..f()
            })
        )
        .await,
        (vec![4, 1], 2, None)
    );
    // Date bounds are exclusive.
    assert_eq!(
        page(
            s,
            filtered(TaskFilter {
                after_enqueued_at: Some(at(3)),
                ..f()
            })
        )
        .await,
        (vec![7, 6, 5, 4], 4, None)
    );
    assert_eq!(
        page(
            s,
            filtered(TaskFilter {
                before_enqueued_at: Some(at(3)),
                ..f()
            })
        )
        .await,
        (vec![2, 1, 0], 3, None)
    );
    assert_eq!(
        page(
            s,
            filtered(TaskFilter {
                after_started_at: Some(at(101)),
                ..f()
            })
        )
        .await,
        (vec![6, 5, 3], 3, None)
    );
    assert_eq!(
        page(
            s,
            filtered(TaskFilter {
                before_finished_at: Some(at(204)),
                ..f()
            })
        )
        .await,
        (vec![3, 1, 0], 3, None)
    );
    assert_eq!(
        page(
            s,
            filtered(TaskFilter {
                types: doc_add(),
                index_uids: idx(&["movies"]),
                ..f()
            })
        )
        .await,
        (vec![4, 0], 2, None)
    );

    // Pagination: `from` inclusive, `next` = first uid of the following page, `total` ignores
    // `from`/`limit`.
    let q = |filter: TaskFilter, from: Option<u32>, limit: u32, reverse: bool| TaskQuery {
        filter,
        from: from.map(TaskUid),
        limit,
        reverse,
    };
    let docs = || TaskFilter {
        types: doc_add(),
        ..f()
    };
    assert_eq!(
        page(s, q(docs(), None, 2, false)).await,
        (vec![7, 5], 4, Some(4))
    );
    assert_eq!(
        page(s, q(docs(), Some(4), 2, false)).await,
        (vec![4, 0], 4, None)
    );
    assert_eq!(
        page(s, q(f(), None, 3, false)).await,
        (vec![7, 6, 5], 8, Some(4))
    );
    assert_eq!(
        page(s, q(f(), Some(4), 3, false)).await,
        (vec![4, 3, 2], 8, Some(1))
    );
    assert_eq!(
        page(s, q(f(), None, 3, true)).await,
        (vec![0, 1, 2], 8, Some(3))
    );
    assert_eq!(
        page(s, q(f(), Some(6), 3, true)).await,
        (vec![6, 7], 8, None)
    );
    assert_eq!(
        page(s, q(f(), Some(100), 2, false)).await,
        (vec![7, 6], 8, Some(5))
    );
    assert_eq!(
        page(
            s,
            q(
                TaskFilter {
                    statuses: Some(vec![Succeeded]),
                    ..f()
                },
                None,
                20,
                true
            )
        )
        .await,
        (vec![0, 3, 6], 3, None)
    );
    let listed = Some(vec![TaskUid(7), TaskUid(0), TaskUid(5), TaskUid(2)]);
    assert_eq!(
        page(
            s,
            q(
                TaskFilter {
                    uids: listed.clone(),
                    ..f()
                },
                None,
                2,
                true
            )
        )
        .await,
        (vec![0, 2], 4, Some(5))
    );
    assert_eq!(
        page(
            s,
            q(
                TaskFilter {
                    uids: listed,
                    ..f()
                },
                Some(5),
                2,
                false
            )
        )
        .await,
        (vec![5, 2], 4, Some(0))
    );
}

async fn scans_span_many_chunks(h: Harness) {
    // More tasks and metadata keys than one Redis scan chunk (512), so chunk boundaries and
    // cursors are exercised; LMDB runs the same assertions.
    const N: u32 = 1100;
    let opened = h.open().await;
    let store = opened.store();
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .put_meta(&format!("k/{i:05}"), &i.to_be_bytes())
                    .await
                    .unwrap();
                let index = if i % 2 == 0 { "even" } else { "odd" };
                store
                    .create_task(new_task(Some(index), TaskType::DocumentDeletion, 0))
                    .await
            })
        })
        .collect();
    // Concurrent creation: which uid is "even" depends on scheduling, so record the mapping.
    let mut even = Vec::new();
    for h in handles {
        let rec = h.await.unwrap().unwrap();
        if rec.index_uid.as_deref() == Some("even") {
            even.push(rec.uid.0);
        }
    }
    even.sort_unstable_by(|a, b| b.cmp(a));

    let filter = TaskFilter {
        index_uids: Some(vec!["even".into()]),
        ..TaskFilter::default()
    };
    let mut seen = Vec::new();
    let mut from = None;
    loop {
        let query = TaskQuery {
            filter: filter.clone(),
            from,
            limit: 100,
            reverse: false,
        };
        let p = store.list_tasks(&query).await.unwrap();
        assert_eq!(p.total, u64::from(N / 2));
        seen.extend(uids(&p.tasks));
        match p.next {
            Some(n) => from = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, even);

    let q = TaskQuery {
        from: Some(TaskUid(1050)),
        limit: 5,
        ..TaskQuery::default()
    };
    assert_eq!(
        page(&*store, q).await,
        (vec![1050, 1049, 1048, 1047, 1046], u64::from(N), Some(1045))
    );
    let q = TaskQuery {
        from: Some(TaskUid(600)),
        limit: 3,
        reverse: true,
        ..TaskQuery::default()
    };
    assert_eq!(
        page(&*store, q).await,
        (vec![600, 601, 602], u64::from(N), Some(603))
    );

    let meta = store.list_meta("k/").await.unwrap();
    assert_eq!(meta.len(), N as usize);
    assert!(
        meta.windows(2).all(|w| w[0].0 < w[1].0),
        "listed in key order"
    );
    assert_eq!(
        meta[777],
        (format!("k/{:05}", 777), 777u32.to_be_bytes().to_vec())
    );
    assert_eq!(store.list_meta("k/010").await.unwrap().len(), 100);
}

async fn updates_and_terminal_cache(h: Harness) {
    let opened = h.open().await;
    let store = opened.store();
    let uid = TaskUid(create(&*store, Some("movies"), TaskType::SettingsUpdate, 5).await);

    let processing = state(TaskStatus::Processing, Some(6), None);
    assert_eq!(
        store.update_task(uid, processing.clone()).await.unwrap(),
        UpdateOutcome::Updated
    );
    assert_eq!(
        store.get_task(uid).await.unwrap().unwrap().state,
        processing
    );

    let view = br#"{"uid":0,"status":"succeeded","details":{"indexedDocuments":3}}"#.to_vec();
    let mut done = state(TaskStatus::Succeeded, Some(6), Some(7));
    done.details = json!({"indexedDocuments": 3});
    done.terminal_view = Some(view.clone());
    assert_eq!(
        store.update_task(uid, done.clone()).await.unwrap(),
        UpdateOutcome::Updated
    );

    // Frozen once terminal: a late poller cannot move it back.
    assert_eq!(
        store.update_task(uid, processing.clone()).await.unwrap(),
        UpdateOutcome::AlreadyTerminal
    );
    let got = store.get_task(uid).await.unwrap().unwrap();
    assert_eq!(got.state, done);
    assert_eq!(got.state.terminal_view.as_deref(), Some(view.as_slice()));
    // Immutable fields survive updates.
    assert_eq!(got.index_uid.as_deref(), Some("movies"));
    assert_eq!(got.task_type, TaskType::SettingsUpdate);
    assert_eq!(got.enqueued_at, at(5));
    // The cached view also comes back through listing.
    let listed = store.list_tasks(&TaskQuery::default()).await.unwrap();
    assert_eq!(
        listed.tasks[0].state.terminal_view.as_deref(),
        Some(view.as_slice())
    );

    assert_eq!(
        store.update_task(TaskUid(1), processing).await.unwrap(),
        UpdateOutcome::NotFound
    );
}

async fn restart_keeps_everything(h: Harness) {
    let opened = h.open().await;
    let store = opened.store();
    for i in 0..5 {
        create(
            &*store,
            Some("movies"),
            TaskType::DocumentAdditionOrUpdate,
            i,
        )
        .await;
    }
    let mut done = state(TaskStatus::Failed, Some(10), Some(11));
    done.terminal_view = Some(b"{}".to_vec());
    store.update_task(TaskUid(2), done.clone()).await.unwrap();
    store.delete_tasks(&[TaskUid(4)]).await.unwrap();
    store.put_meta("index/movies", b"meta").await.unwrap();
    let before = store.list_tasks(&TaskQuery::default()).await.unwrap();
    drop(store);
    opened.close().await;

    let reopened = h.open().await;
    let store = reopened.store();
    assert_eq!(
        store.list_tasks(&TaskQuery::default()).await.unwrap(),
        before
    );
    assert_eq!(
        store.get_task(TaskUid(2)).await.unwrap().unwrap().state,
        done
    );
    assert_eq!(store.get_task(TaskUid(4)).await.unwrap(), None);
    assert_eq!(
        store.count_unfinished_tasks().await.unwrap(),
        3,
        "0, 1, 3 (2 failed, 4 deleted)"
    );
    assert_eq!(
        store.get_meta("index/movies").await.unwrap().as_deref(),
        Some(&b"meta"[..])
    );
    // Allocation continues after the highest uid ever handed out, not after the last stored.
    assert_eq!(create(&*store, None, TaskType::DumpCreation, 9).await, 5);
}

async fn delete_and_prune(h: Harness) {
    use TaskStatus::*;
    let opened = h.open().await;
    let store = opened.store();
    // Statuses by uid: 0 S, 1 E, 2 F, 3 P, 4 C, 5 S, 6 E, 7 S
    let statuses = [
        Succeeded, Enqueued, Failed, Processing, Canceled, Succeeded, Enqueued, Succeeded,
    ];
    for (i, st) in statuses.into_iter().enumerate() {
        let uid = TaskUid(create(&*store, Some("i"), TaskType::DocumentDeletion, i as i64).await);
        if st != Enqueued {
            store
                .update_task(uid, state(st, Some(1), st.is_terminal().then_some(2)))
                .await
                .unwrap();
        }
    }
    // Five terminal tasks (0, 2, 4, 5, 7); keep the newest three.
    assert_eq!(store.prune(3).await.unwrap(), 2);
    let left = store.list_tasks(&TaskQuery::default()).await.unwrap();
    assert_eq!(uids(&left.tasks), vec![7, 6, 5, 4, 3, 1]);
    assert_eq!(store.prune(3).await.unwrap(), 0, "prune is idempotent");
    // Non-terminal tasks are never pruned, even with a limit of zero.
    assert_eq!(store.prune(0).await.unwrap(), 3);
    let left = store.list_tasks(&TaskQuery::default()).await.unwrap();
    assert_eq!(uids(&left.tasks), vec![6, 3, 1]);
    assert_eq!(store.count_unfinished_tasks().await.unwrap(), 3);

    assert_eq!(
        store
            .delete_tasks(&[TaskUid(6), TaskUid(6), TaskUid(42)])
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.get_task(TaskUid(6)).await.unwrap(), None);
    assert_eq!(store.count_tasks().await.unwrap(), 2);
    assert_eq!(
        store.count_unfinished_tasks().await.unwrap(),
        2,
        "deleted tasks leave the index"
    );
    assert_eq!(store.delete_tasks(&[]).await.unwrap(), 0);
    assert_eq!(create(&*store, None, TaskType::TaskDeletion, 0).await, 8);

    // Per-index sets follow deletes and pruning, and one index name never matches another
    // that merely shares a prefix.
    assert_eq!(
        create(&*store, Some("ii"), TaskType::IndexCreation, 0).await,
        9
    );
    let by_index = |names: &[&str]| {
        let index_uids = Some(names.iter().map(|n| n.to_string()).collect());
        filtered(TaskFilter {
            index_uids,
            ..TaskFilter::default()
        })
    };
    assert_eq!(page(&*store, by_index(&["i"])).await, (vec![3, 1], 2, None));
    assert_eq!(page(&*store, by_index(&["ii"])).await, (vec![9], 1, None));
    assert_eq!(
        page(&*store, by_index(&["ii", "i"])).await,
        (vec![9, 3, 1], 3, None)
    );
    store.delete_tasks(&[TaskUid(3)]).await.unwrap();
    assert_eq!(page(&*store, by_index(&["i"])).await, (vec![1], 1, None));
}

async fn metadata_kv(h: Harness) {
    let opened = h.open().await;
    let store = opened.store();
    assert_eq!(store.get_meta("index/movies").await.unwrap(), None);
    store.put_meta("index/movies", b"m1").await.unwrap();
    store.put_meta("index/books", b"b1").await.unwrap();
    store.put_meta("indexes", b"x").await.unwrap();
    store.put_meta("key/default-search", b"").await.unwrap();
    store.put_meta("index/movies", b"m2").await.unwrap();
    assert_eq!(
        store.get_meta("index/movies").await.unwrap().as_deref(),
        Some(&b"m2"[..])
    );
    assert_eq!(
        store
            .get_meta("key/default-search")
            .await
            .unwrap()
            .as_deref(),
        Some(&b""[..])
    );

    let listed = store.list_meta("index/").await.unwrap();
    assert_eq!(
        listed,
        vec![
            ("index/books".to_string(), b"b1".to_vec()),
            ("index/movies".into(), b"m2".to_vec())
        ]
    );
    let all: Vec<String> = store
        .list_meta("")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        all,
        [
            "index/books",
            "index/movies",
            "indexes",
            "key/default-search"
        ]
    );
    assert!(store.list_meta("nothing").await.unwrap().is_empty());

    assert!(store.delete_meta("indexes").await.unwrap());
    assert!(!store.delete_meta("indexes").await.unwrap());
    assert_eq!(store.list_meta("index").await.unwrap().len(), 2);

    // Compare-and-set.
    assert!(!store
        .cas_meta("topology", Some(b"v0"), Some(b"v1"))
        .await
        .unwrap());
    assert!(store.cas_meta("topology", None, Some(b"v1")).await.unwrap());
    assert!(!store.cas_meta("topology", None, Some(b"v1")).await.unwrap());
    assert!(!store
        .cas_meta("topology", Some(b"v0"), Some(b"v2"))
        .await
        .unwrap());
    assert!(store
        .cas_meta("topology", Some(b"v1"), Some(b"v2"))
        .await
        .unwrap());
    assert_eq!(
        store.get_meta("topology").await.unwrap().as_deref(),
        Some(&b"v2"[..])
    );
    assert!(store.cas_meta("topology", Some(b"v2"), None).await.unwrap());
    assert_eq!(store.get_meta("topology").await.unwrap(), None);
    assert!(
        store.list_meta("topology").await.unwrap().is_empty(),
        "cas delete unlists the key"
    );

    // Keys are bounded the same way on both backends.
    let long = "k".repeat(512);
    assert!(matches!(
        store.put_meta(&long, b"v").await,
        Err(StoreError::InvalidKey(_))
    ));
    assert!(matches!(
        store.get_meta("").await,
        Err(StoreError::InvalidKey(_))
    ));
}

async fn opens_from_config(h: Harness) {
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: data_dir.path().to_path_buf(),
        ..Config::default()
    };
    match &h {
        Harness::Lmdb(_) => {
            config.task_store.backend = TaskStoreBackend::Lmdb;
            let store = open_task_store(&config).await.unwrap();
            assert_eq!(store.backend_name(), "lmdb");
            assert_eq!(create(&*store, None, TaskType::DumpCreation, 0).await, 0);
            assert!(data_dir.path().join("tasks").join("data.mdb").exists());
        }
        Harness::Redis(server) => {
            config.task_store.backend = TaskStoreBackend::Redis;
            let err = open_task_store(&config)
                .await
                .err()
                .expect("url is required");
            assert!(matches!(err, StoreError::Config(_)), "{err}");
            config.task_store.url = Some(server.url());
            let store = open_task_store(&config).await.unwrap();
            assert_eq!(store.backend_name(), "redis");
            assert_eq!(create(&*store, None, TaskType::DumpCreation, 0).await, 0);
            // The configured store uses the `miroir:` prefix: a store with another prefix on
            // the same server is an independent namespace.
            let other = RedisTaskStore::connect(&server.url(), PREFIX)
                .await
                .unwrap();
            assert_eq!(other.next_task_uid().await.unwrap(), 0);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Redis only: several admin processes share one server.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_redis_stores_never_hand_out_the_same_uid() {
    let server = Redis::start();
    let a = Arc::new(
        RedisTaskStore::connect(&server.url(), PREFIX)
            .await
            .unwrap(),
    );
    let b = Arc::new(
        RedisTaskStore::connect(&server.url(), PREFIX)
            .await
            .unwrap(),
    );
    let mut handles = Vec::new();
    for i in 0..100 {
        let store: Arc<dyn TaskStore> = if i % 2 == 0 { a.clone() } else { b.clone() };
        handles.push(tokio::spawn(async move {
            store
                .create_task(new_task(
                    Some("shared"),
                    TaskType::DocumentAdditionOrUpdate,
                    i,
                ))
                .await
        }));
    }
    let mut got = Vec::new();
    for h in handles {
        got.push(h.await.unwrap().unwrap().uid.0);
    }
    got.sort_unstable();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    // Each sees the other's tasks and the other's terminal freeze.
    let mut done = state(TaskStatus::Succeeded, Some(1), Some(2));
    done.terminal_view = Some(b"{}".to_vec());
    assert_eq!(
        a.update_task(TaskUid(7), done).await.unwrap(),
        UpdateOutcome::Updated
    );
    assert_eq!(
        b.update_task(TaskUid(7), state(TaskStatus::Processing, Some(1), None))
            .await
            .unwrap(),
        UpdateOutcome::AlreadyTerminal
    );
    assert_eq!(b.count_tasks().await.unwrap(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_then_recovers() {
    let server = Redis::start();
    let port = server.port;
    let store = RedisTaskStore::connect(&server.url(), PREFIX)
        .await
        .unwrap();
    assert_eq!(create(&store, None, TaskType::DumpCreation, 0).await, 0);
    drop(server); // kill -9 and reap

    let down = store.count_tasks().await;
    assert!(matches!(down, Err(StoreError::Redis(_))), "{down:?}");
    let failed_create = store
        .create_task(new_task(None, TaskType::DumpCreation, 0))
        .await;
    assert!(failed_create.is_err());

    // A new (empty: no persistence) server on the same port: the client reconnects by itself.
    let _server = Redis::start_on(Some(port));
    let mut recovered = None;
    for _ in 0..100 {
        if let Ok(n) = store.count_tasks().await {
            recovered = Some(n);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(recovered, Some(0), "the store never reconnected");
    assert_eq!(create(&store, None, TaskType::DumpCreation, 0).await, 0);
}

#[tokio::test]
async fn redis_unreachable_is_an_error_not_a_hang() {
    // A port nothing listens on (bound then released).
    let port = miroir_testkit::free_port();
    let result = RedisTaskStore::connect(&format!("redis://127.0.0.1:{port}/"), PREFIX).await;
    assert!(matches!(result, Err(StoreError::Redis(_))));
}
