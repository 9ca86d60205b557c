//! A core's shutdown flag: set once by the reactor when the process starts shutting down,
//! awaited by the accept loop and by every idle connection. Core-local (`Rc`, no atomics); the
//! cross-thread trigger that sets it lives with whoever runs the cores.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// A core's shutdown flag: waiters are many (every idle connection), so they are kept in a
/// keyed map that a dropped waiter leaves, never in a list that grows per poll.
#[derive(Clone, Default)]
pub struct Shutdown(Rc<LocalShutdown>);

#[derive(Default)]
struct LocalShutdown {
    set: Cell<bool>,
    next_key: Cell<u64>,
    waiters: RefCell<HashMap<u64, Waker>>,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_set(&self) -> bool {
        self.0.set.get()
    }

    pub fn trigger(&self) {
        self.0.set.set(true);
        let waiters = std::mem::take(&mut *self.0.waiters.borrow_mut());
        for (_, w) in waiters {
            w.wake();
        }
    }

    /// Resolves once shutdown started.
    pub fn wait(&self) -> ShutdownWait {
        ShutdownWait {
            inner: self.0.clone(),
            key: None,
        }
    }
}

pub struct ShutdownWait {
    inner: Rc<LocalShutdown>,
    key: Option<u64>,
}

impl Future for ShutdownWait {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.set.get() {
            return Poll::Ready(());
        }
        let key = match self.key {
            Some(k) => k,
            None => {
                let k = self.inner.next_key.get();
                self.inner.next_key.set(k + 1);
                self.key = Some(k);
                k
            }
        };
        self.inner
            .waiters
            .borrow_mut()
            .insert(key, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for ShutdownWait {
    fn drop(&mut self) {
        if let Some(k) = self.key {
            self.inner.waiters.borrow_mut().remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_shutdown_wakes_waiters_and_forgets_dropped_ones() {
        let s = Shutdown::new();
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut w1 = Box::pin(s.wait());
        assert!(w1.as_mut().poll(&mut cx).is_pending());
        assert!(w1.as_mut().poll(&mut cx).is_pending());
        {
            let mut w2 = Box::pin(s.wait());
            assert!(w2.as_mut().poll(&mut cx).is_pending());
            assert_eq!(s.0.waiters.borrow().len(), 2);
        }
        assert_eq!(
            s.0.waiters.borrow().len(),
            1,
            "re-polls reuse a key; drops remove it"
        );
        s.trigger();
        assert!(w1.as_mut().poll(&mut cx).is_ready());
        assert!(s.is_set());
    }
}
