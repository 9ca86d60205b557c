//! One leader among several Miroir hosts sharing a Redis store (docs/architecture.md
//! #several-hosts, docs/decisions/024-shared-metadata-sync.md, 025-followers-forward.md,
//! 026-leader-lease-fencing.md).
//!
//! [`Leadership`] answers "may this admin do leader-only work now?" with one call. Every
//! background job that must run on one host only gates on it:
//!
//! ```ignore
//! if !admin.leadership().is_leader() { continue; }           // skip this round
//! let token = admin.leadership().fencing_token();             // Some(t) while leader
//! ```
//!
//! - **LMDB** (one host): always leader, no lease, token `Some(0)`.
//! - **Redis**: the lease `{p}leader` ([`crate::store::redis_shared`]) with a fencing token
//!   that grows on every acquisition. [`run`] renews it every `admin.lease_renew_ms`; a host
//!   that does not hold it tries to take it at the same pace, so a dead leader is replaced
//!   within `lease_ttl_ms + lease_renew_ms` (6 s with defaults). This host believes it leads
//!   until `sent + ttl`, where `sent` is when the last successful renewal was *sent* — Redis
//!   set its expiry later than that, so this host stops before Redis lets another take over.
//!   Store writes only a leader may do pass the token to a Redis script that refuses a stale
//!   one (fencing), so a leader that was paused past its lease cannot clobber its successor.

pub mod forward;

use crate::store::redis_shared::LeaseState;
use crate::store::{RedisTaskStore, StoreError};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where leader-only work of this request happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leader {
    /// This admin holds the lease.
    Local,
    /// Another host does; its advertised admin address.
    Remote { holder: String, address: String },
    /// Nobody holds it (or this host has not heard yet).
    Unknown,
}

/// This host's view of the lease, as of its last attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// The token of the lease this host holds (meaningful while `held_until` is ahead).
    pub token: u64,
    /// Until when this host may act as leader (`None` = it does not hold the lease).
    pub held_until: Option<Instant>,
    /// The holder and its address, as last seen (this host included).
    pub holder: String,
    pub address: String,
}

/// What one lease attempt changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// This host just became leader (it did not hold a running lease before).
    Acquired { token: u64 },
    /// Still leader.
    Renewed,
    /// It was leader and no longer is.
    Lost,
    /// It was not leader and still is not.
    Following,
}

impl View {
    /// Whether this view makes the host leader at `now`.
    pub fn leads(&self, now: Instant) -> bool {
        self.held_until.is_some_and(|t| now < t)
    }

    /// The view after an attempt sent at `sent` answered `state`, and what changed. Pure, so
    /// the transitions are unit-tested without Redis.
    pub fn after(&self, state: &LeaseState, sent: Instant, ttl: Duration) -> (View, Transition) {
        let was = self.leads(sent);
        let next = View {
            token: if state.held { state.token } else { 0 },
            held_until: state.held.then(|| sent + ttl),
            holder: state.holder.clone(),
            address: state.address.clone(),
        };
        let t = match (was, state.held) {
            // A changed token means the lease lapsed and was taken again in between: whatever
            // the old reign started is not this reign's, so treat it as a new acquisition.
            (true, true) if state.token == self.token => Transition::Renewed,
            (_, true) => Transition::Acquired { token: state.token },
            (true, false) => Transition::Lost,
            (false, false) => Transition::Following,
        };
        (next, t)
    }

    /// The view when an attempt failed (Redis unreachable): nothing learnt, and the lease
    /// keeps running out on its own.
    pub fn after_error(&self, now: Instant) -> Transition {
        if self.leads(now) {
            Transition::Renewed
        } else if self.held_until.is_some() {
            Transition::Lost
        } else {
            Transition::Following
        }
    }
}

/// Who leads, for every part of the admin that must know (see the module docs).
pub struct Leadership {
    shared: Option<Arc<RedisTaskStore>>,
    host_id: String,
    address: String,
    ttl: Duration,
    renew: Duration,
    view: Mutex<View>,
    /// Set by [`Leadership::release`] at shutdown: no further attempt takes the lease back.
    stopping: std::sync::atomic::AtomicBool,
    /// The token whose takeover ([`Leadership::mark_ready`]) has completed: until then the
    /// lease is held (writes are fenced with it) but the host does not act as leader yet, so
    /// nothing it starts races the clean-up of its predecessor's work.
    ready: std::sync::atomic::AtomicU64,
}

/// Called (on its own task) each time this host becomes leader, with the new token.
pub type OnAcquired =
    Arc<dyn Fn(u64) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync + 'static>;

impl Leadership {
    /// One host on LMDB: always leader.
    pub fn single() -> Arc<Leadership> {
        Arc::new(Leadership {
            shared: None,
            host_id: String::new(),
            address: String::new(),
            ttl: Duration::ZERO,
            renew: Duration::ZERO,
            view: Mutex::new(View::default()),
            stopping: std::sync::atomic::AtomicBool::new(false),
            ready: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// A host among several on the Redis store `shared`. `host_id` must be unique per host and
    /// stable across restarts of that host (a restarted admin renews its own lease at once);
    /// `address` is where the other hosts reach this admin's REST listener.
    pub fn shared(
        shared: Arc<RedisTaskStore>,
        host_id: String,
        address: String,
        ttl: Duration,
        renew: Duration,
    ) -> Arc<Leadership> {
        Arc::new(Leadership {
            shared: Some(shared),
            host_id,
            address,
            ttl,
            renew,
            view: Mutex::new(View::default()),
            stopping: std::sync::atomic::AtomicBool::new(false),
            ready: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The shared store, when several hosts may run (Redis backend).
    pub fn shared_store(&self) -> Option<&Arc<RedisTaskStore>> {
        self.shared.as_ref()
    }

    /// This host's id in the lease and the host heartbeats.
    pub fn host_id(&self) -> &str {
        &self.host_id
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Whether this admin may do leader-only work now: it holds the lease and has finished
    /// taking over. Gate background jobs on this.
    pub fn is_leader(&self) -> bool {
        if self.shared.is_none() {
            return true;
        }
        let v = self.view();
        v.leads(Instant::now()) && self.ready.load(std::sync::atomic::Ordering::Acquire) == v.token
    }

    /// Records that the takeover for `token` is done: from now on [`Leadership::is_leader`]
    /// holds while the lease with that token does.
    pub fn mark_ready(&self, token: u64) {
        self.ready
            .store(token, std::sync::atomic::Ordering::Release);
    }

    /// The fencing token of the lease this admin holds (also while it takes over), `None`
    /// when it does not hold it (`Some(0)` on LMDB, where there is nothing to fence). Pass it
    /// to fenced store writes; gate work on [`Leadership::is_leader`].
    pub fn fencing_token(&self) -> Option<u64> {
        if self.shared.is_none() {
            return Some(0);
        }
        let v = self.view();
        v.leads(Instant::now()).then_some(v.token)
    }

    /// Who leads, as this host last saw it.
    pub fn leader(&self) -> Leader {
        if self.is_leader() {
            return Leader::Local;
        }
        let v = self.view();
        if v.holder.is_empty() || v.address.is_empty() || v.holder == self.host_id {
            Leader::Unknown
        } else {
            Leader::Remote {
                holder: v.holder.clone(),
                address: v.address.clone(),
            }
        }
    }

    /// One lease attempt (acquire or renew); updates the view and says what changed.
    pub async fn attempt(&self) -> Result<Transition, StoreError> {
        let Some(store) = &self.shared else {
            return Ok(Transition::Renewed);
        };
        if self.stopping.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(Transition::Following);
        }
        let sent = Instant::now();
        match store
            .leader_lease(&self.host_id, &self.address, self.ttl)
            .await
        {
            Ok(state) => {
                let mut v = self.view();
                let (next, t) = v.after(&state, sent, self.ttl);
                *v = next;
                Ok(t)
            }
            Err(e) => {
                let t = self.view().after_error(Instant::now());
                if t == Transition::Lost {
                    // Forget the lapsed lease so this is reported once, not on every failure.
                    self.view().held_until = None;
                    tracing::warn!(
                        host = %self.host_id,
                        "this host lost the leader lease (Redis unreachable); following"
                    );
                }
                Err(e)
            }
        }
    }

    /// Gives the lease up for good (clean shutdown), so another host need not wait for the
    /// TTL; this host never takes it again.
    pub async fn release(&self) {
        if let Some(store) = &self.shared {
            self.stopping
                .store(true, std::sync::atomic::Ordering::Relaxed);
            self.view().held_until = None;
            if let Err(e) = store.release_leader_lease(&self.host_id).await {
                tracing::warn!(error = %e, "releasing the leader lease failed");
            }
        }
    }
}

/// Logs a transition and runs `on_acquired` for an acquisition.
fn react(leadership: &Leadership, t: Transition, on_acquired: &OnAcquired) {
    match t {
        Transition::Acquired { token } => {
            tracing::info!(
                host = leadership.host_id(),
                token,
                "this host is now the leader"
            );
            tokio::spawn(on_acquired(token));
        }
        Transition::Lost => tracing::warn!(
            host = leadership.host_id(),
            "this host lost the leader lease; following"
        ),
        Transition::Renewed | Transition::Following => {}
    }
}

/// Renews (or tries to take) the lease every `admin.lease_renew_ms` until the process exits.
pub async fn run(leadership: Arc<Leadership>, on_acquired: OnAcquired) {
    if leadership.shared.is_none() {
        return;
    }
    let mut ticker = tokio::time::interval(leadership.renew);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        match leadership.attempt().await {
            Ok(t) => react(&leadership, t, &on_acquired),
            Err(e) => tracing::warn!(error = %e, "leader lease attempt failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(held: bool, token: u64, holder: &str) -> LeaseState {
        LeaseState {
            held,
            token,
            holder: holder.into(),
            address: format!("http://{holder}"),
        }
    }

    const TTL: Duration = Duration::from_secs(5);

    #[test]
    fn acquiring_renewing_and_losing() {
        let t0 = Instant::now();
        let v = View::default();
        assert!(!v.leads(t0));
        let (v, t) = v.after(&state(true, 7, "a"), t0, TTL);
        assert_eq!(t, Transition::Acquired { token: 7 });
        assert!(v.leads(t0 + Duration::from_secs(4)));
        // The lease runs from when the attempt was sent, not from when it was answered.
        assert!(!v.leads(t0 + TTL));
        let t1 = t0 + Duration::from_secs(1);
        let (v, t) = v.after(&state(true, 7, "a"), t1, TTL);
        assert_eq!(t, Transition::Renewed);
        assert!(v.leads(t1 + Duration::from_secs(4)));
        // Someone else holds it now: lost, and the view says who leads.
        let t2 = t1 + Duration::from_secs(1);
        let (v, t) = v.after(&state(false, 8, "b"), t2, TTL);
        assert_eq!(t, Transition::Lost);
        assert!(!v.leads(t2));
        assert_eq!((v.holder.as_str(), v.token), ("b", 0));
        let (_, t) = v.after(&state(false, 8, "b"), t2, TTL);
        assert_eq!(t, Transition::Following);
    }

    #[test]
    fn a_new_token_is_a_new_reign_even_without_a_gap_seen() {
        let t0 = Instant::now();
        let (v, _) = View::default().after(&state(true, 3, "a"), t0, TTL);
        // Held again but under a new token: the lease lapsed and was re-acquired in between.
        let (v, t) = v.after(&state(true, 4, "a"), t0 + Duration::from_secs(1), TTL);
        assert_eq!(t, Transition::Acquired { token: 4 });
        assert_eq!(v.token, 4);
    }

    #[test]
    fn a_lapsed_lease_taken_back_is_an_acquisition() {
        let t0 = Instant::now();
        let (v, _) = View::default().after(&state(true, 3, "a"), t0, TTL);
        // Renewals failed past the TTL; the same token comes back (no one else took it).
        let late = t0 + TTL + Duration::from_secs(1);
        assert_eq!(v.after_error(late), Transition::Lost);
        let (_, t) = v.after(&state(true, 3, "a"), late, TTL);
        assert_eq!(t, Transition::Acquired { token: 3 });
    }

    #[test]
    fn errors_keep_the_lease_until_it_runs_out() {
        let t0 = Instant::now();
        let (v, _) = View::default().after(&state(true, 1, "a"), t0, TTL);
        assert_eq!(
            v.after_error(t0 + Duration::from_secs(2)),
            Transition::Renewed
        );
        assert_eq!(v.after_error(t0 + TTL), Transition::Lost);
        assert_eq!(View::default().after_error(t0), Transition::Following);
    }

    #[test]
    fn lmdb_is_always_leader() {
        let l = Leadership::single();
        assert!(l.is_leader());
        assert_eq!(l.fencing_token(), Some(0));
        assert_eq!(l.leader(), Leader::Local);
    }
}
