//! Waiting on the engine's durability hook.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use respite_storage::Engine;

/// Calls of an engine's durability hook, to wait on (the sync thread calls it on a failure
/// and whenever it publishes a durable GSN).
pub struct Signal {
    pub calls: Mutex<u64>,
    cv: Condvar,
}

impl Signal {
    /// A signal registered as `e`'s durability hook.
    pub fn hooked(e: &Engine) -> Arc<Signal> {
        let sig = Arc::new(Signal {
            calls: Mutex::new(0),
            cv: Condvar::new(),
        });
        let s2 = sig.clone();
        e.on_durable(Arc::new(move || {
            *s2.calls.lock() += 1;
            s2.cv.notify_all();
        }));
        sig
    }

    /// Waits until `cond` holds, looking again on every hook call (and every 50 ms, for
    /// conditions no hook announces); panics naming `what` after 20 s.
    pub fn wait_until(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut calls = self.calls.lock();
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            self.cv.wait_for(&mut calls, Duration::from_millis(50));
        }
    }
}
