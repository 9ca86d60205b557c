//! The leader lease, fencing and host heartbeats against a real `redis-server`
//! (admin/src/leader, admin/src/store/redis_shared.rs). The transitions themselves are
//! unit-tested without Redis in `leader::tests`.

use miroir_admin::leader::{Leader, Leadership, Transition};
use miroir_admin::store::RedisTaskStore;
use miroir_testkit::Redis;
use std::sync::Arc;
use std::time::Duration;

async fn store(redis: &Redis) -> Arc<RedisTaskStore> {
    Arc::new(
        RedisTaskStore::connect(&redis.url(), "miroir:")
            .await
            .unwrap(),
    )
}

fn host(store: &Arc<RedisTaskStore>, name: &str, ttl: Duration) -> Arc<Leadership> {
    Leadership::shared(
        store.clone(),
        name.into(),
        format!("http://{name}:7701"),
        ttl,
        ttl / 4,
    )
}

#[tokio::test]
async fn one_holder_renewals_keep_the_token_a_successor_gets_a_new_one() {
    let redis = Redis::start();
    let s = store(&redis).await;
    let ttl = Duration::from_millis(400);
    let (a, b) = (host(&s, "a", ttl), host(&s, "b", ttl));

    assert_eq!(
        a.attempt().await.unwrap(),
        Transition::Acquired { token: 1 }
    );
    // Holding the lease, `a` fences its writes but leads only once its takeover is done.
    assert_eq!(a.fencing_token(), Some(1));
    assert!(!a.is_leader());
    assert_eq!(a.leader(), Leader::Unknown);
    a.mark_ready(1);
    assert_eq!(b.attempt().await.unwrap(), Transition::Following);
    assert!(a.is_leader() && !b.is_leader());
    assert_eq!(a.fencing_token(), Some(1));
    assert_eq!(b.fencing_token(), None);
    assert_eq!(
        b.leader(),
        Leader::Remote {
            holder: "a".into(),
            address: "http://a:7701".into()
        }
    );
    assert_eq!(a.attempt().await.unwrap(), Transition::Renewed);
    assert_eq!(a.fencing_token(), Some(1));

    // The leader's fenced writes pass; nobody else's do.
    assert!(s.fenced_meta(1, "x", Some(b"1")).await.unwrap());
    assert_eq!(s.bump_generation(1).await.unwrap(), Some(1));
    assert!(!s.fenced_meta(2, "x", Some(b"2")).await.unwrap());
    assert_eq!(s.bump_generation(2).await.unwrap(), None);
    assert_eq!(s.generation().await.unwrap(), 1);

    // `a` stops renewing: once its lease ran out, `b` takes it under a new token, and `a`
    // (paused, believing nothing) is fenced off.
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert!(!a.is_leader(), "a lease is not trusted past its TTL");
    assert_eq!(
        b.attempt().await.unwrap(),
        Transition::Acquired { token: 2 }
    );
    b.mark_ready(2);
    assert!(b.is_leader());
    assert!(!s.fenced_meta(1, "x", Some(b"stale")).await.unwrap());
    assert_eq!(s.bump_generation(1).await.unwrap(), None);
    assert!(s.fenced_meta(2, "x", None).await.unwrap());
    assert_eq!(s.bump_generation(2).await.unwrap(), Some(2));
    assert_eq!(a.attempt().await.unwrap(), Transition::Following);
    assert_eq!(
        a.leader(),
        Leader::Remote {
            holder: "b".into(),
            address: "http://b:7701".into()
        }
    );

    // A clean release hands over at once.
    b.release().await;
    assert!(!b.is_leader());
    // A released lease is not taken back by the shutting-down host's next attempt.
    assert_eq!(b.attempt().await.unwrap(), Transition::Following);
    assert_eq!(
        a.attempt().await.unwrap(),
        Transition::Acquired { token: 3 }
    );
}

#[tokio::test]
async fn a_restarted_host_renews_its_own_lease() {
    let redis = Redis::start();
    let s = store(&redis).await;
    let ttl = Duration::from_secs(30);
    let first = host(&s, "a", ttl);
    assert_eq!(
        first.attempt().await.unwrap(),
        Transition::Acquired { token: 1 }
    );
    // Same host id after a restart (kill -9: nothing released): leader again at once.
    let again = host(&s, "a", ttl);
    assert_eq!(
        again.attempt().await.unwrap(),
        Transition::Acquired { token: 1 }
    );
    again.mark_ready(1);
    assert!(again.is_leader());
    assert_eq!(
        host(&s, "b", ttl).attempt().await.unwrap(),
        Transition::Following
    );
}

#[tokio::test]
async fn host_heartbeats_expire() {
    let redis = Redis::start();
    let s = store(&redis).await;
    s.host_heartbeat("a", 5, 2, Duration::from_millis(200))
        .await
        .unwrap();
    s.host_heartbeat("b", 7, 3, Duration::from_secs(30))
        .await
        .unwrap();
    let mut live = s.live_hosts().await.unwrap();
    live.sort_by(|x, y| x.host.cmp(&y.host));
    let seen: Vec<(&str, u64, u64)> = live
        .iter()
        .map(|h| (h.host.as_str(), h.applied, h.epoch))
        .collect();
    assert_eq!(seen, [("a", 5, 2), ("b", 7, 3)]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let live = s.live_hosts().await.unwrap();
    let seen: Vec<(&str, u64)> = live.iter().map(|h| (h.host.as_str(), h.applied)).collect();
    assert_eq!(seen, [("b", 7)], "a silent host drops out");
    // A heartbeat brings it back with what it applied since.
    s.host_heartbeat("a", 9, 4, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(s.live_hosts().await.unwrap().len(), 2);
}
