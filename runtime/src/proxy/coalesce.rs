//! Coalescing (`scatter.coalesce`): identical searches in flight at once on one core share
//! one scatter-gather and its merge. The first one (the *leader*) runs; those arriving while
//! it runs (*followers*) wait for its answer and get a copy. Identical means same snapshot
//! generation, same index and the same node query (after a tenant token's filter was ANDed
//! in), so a follower gets exactly what its own scatter would have answered from the same
//! topology, only without asking the nodes again. Decision record:
//! docs/decisions/034-search-coalescing.md.
//!
//! Per core and `!Send` like everything on a reactor: no locks, no cross-core traffic. A
//! leader that ends without an answer (its task dropped, a panic) releases its followers with
//! `None`, and each then runs its own search.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// The searches in flight on one core, by key.
pub struct Inflight<T> {
    map: RefCell<HashMap<Vec<u8>, Rc<Slot<T>>>>,
}

impl<T> Default for Inflight<T> {
    fn default() -> Self {
        Inflight {
            map: RefCell::new(HashMap::new()),
        }
    }
}

struct Slot<T> {
    /// `Some(Some(v))`: the leader's answer; `Some(None)`: the leader gave up.
    value: RefCell<Option<Option<T>>>,
    wakers: RefCell<Vec<Waker>>,
}

/// What a caller of [`Inflight::join`] does.
pub enum Role<'a, T: Clone> {
    /// Run the search, then [`Leader::finish`] with its answer.
    Leader(Leader<'a, T>),
    /// Await the leader's answer (`None`: run your own).
    Follower(Follow<T>),
}

impl<T: Clone> Inflight<T> {
    /// Joins the search in flight under `key`, or becomes its leader.
    pub fn join(&self, key: Vec<u8>) -> Role<'_, T> {
        let mut map = self.map.borrow_mut();
        if let Some(slot) = map.get(&key) {
            return Role::Follower(Follow { slot: slot.clone() });
        }
        let slot = Rc::new(Slot {
            value: RefCell::new(None),
            wakers: RefCell::new(Vec::new()),
        });
        map.insert(key.clone(), slot.clone());
        Role::Leader(Leader {
            inflight: self,
            key,
            slot,
            done: false,
        })
    }

    /// Searches in flight (tests).
    pub fn len(&self) -> usize {
        self.map.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The running search of a key; dropping it unfinished releases the followers.
pub struct Leader<'a, T: Clone> {
    inflight: &'a Inflight<T>,
    key: Vec<u8>,
    slot: Rc<Slot<T>>,
    done: bool,
}

impl<T: Clone> Leader<'_, T> {
    /// Hands `value` to every follower (a copy each; none when nobody joined).
    pub fn finish(mut self, value: &T) {
        self.done = true;
        let followers = self.release();
        if followers {
            *self.slot.value.borrow_mut() = Some(Some(value.clone()));
        }
        self.wake();
    }

    /// Leaves the map (later identical searches start their own); whether anyone joined.
    fn release(&self) -> bool {
        self.inflight.map.borrow_mut().remove(&self.key);
        // Ours and the map's reference are gone or ours alone remains: followers hold the rest.
        Rc::strong_count(&self.slot) > 1
    }

    fn wake(&self) {
        for w in self.slot.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }
}

impl<T: Clone> Drop for Leader<'_, T> {
    fn drop(&mut self) {
        if !self.done {
            self.release();
            *self.slot.value.borrow_mut() = Some(None);
            self.wake();
        }
    }
}

/// A follower's wait for its leader.
pub struct Follow<T> {
    slot: Rc<Slot<T>>,
}

impl<T: Clone> Future for Follow<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(v) = self.slot.value.borrow().as_ref() {
            return Poll::Ready(v.clone());
        }
        let mut wakers = self.slot.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::task::noop_waker;

    fn poll<T: Clone>(f: &mut Follow<T>) -> Poll<Option<T>> {
        let waker = noop_waker();
        Pin::new(f).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn followers_get_the_leaders_answer_and_the_key_is_free_again() {
        let inflight = Inflight::<String>::default();
        let Role::Leader(leader) = inflight.join(b"k".to_vec()) else {
            panic!("the first search leads");
        };
        let Role::Follower(mut f1) = inflight.join(b"k".to_vec()) else {
            panic!("an identical search follows");
        };
        let Role::Follower(mut f2) = inflight.join(b"k".to_vec()) else {
            panic!("an identical search follows");
        };
        assert!(matches!(inflight.join(b"other".to_vec()), Role::Leader(_)));
        assert!(poll(&mut f1).is_pending());
        leader.finish(&"answer".to_string());
        assert_eq!(poll(&mut f1), Poll::Ready(Some("answer".to_string())));
        assert_eq!(poll(&mut f2), Poll::Ready(Some("answer".to_string())));
        assert!(inflight.is_empty());
        assert!(matches!(inflight.join(b"k".to_vec()), Role::Leader(_)));
    }

    #[test]
    fn a_leader_that_gives_up_releases_its_followers() {
        let inflight = Inflight::<u32>::default();
        let leader = inflight.join(b"k".to_vec());
        let Role::Follower(mut f) = inflight.join(b"k".to_vec()) else {
            panic!("an identical search follows");
        };
        drop(leader);
        assert_eq!(poll(&mut f), Poll::Ready(None));
        assert!(inflight.is_empty());
    }
}
