//! [`QueryScope`]: resources a connector keeps alive for exactly one query.
//!
//! The scheduler puts a fresh scope into the session configuration of every query it submits
//! (`SessionConfig` extension) and closes it when the query has ended, however it ended. A
//! connector's scan, planned on the scheduler, can hand the scope something to hold until
//! then: PostgreSQL's exporting transaction, whose snapshot every split imports. Plans cannot
//! carry such guards themselves: Ballista keeps finished jobs' plans for an hour.

use std::any::Any;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Resources held for the duration of one query.
#[derive(Debug, Default)]
pub struct QueryScope {
    resources: Mutex<Vec<Box<dyn Any + Send + Sync>>>,
    closed: AtomicBool,
}

/// Closes a query's scope when dropped: when the query has ended, however it ended.
#[derive(Debug)]
pub struct CloseOnDrop(std::sync::Arc<QueryScope>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl QueryScope {
    /// A fresh scope and the guard that closes it.
    pub fn open() -> (std::sync::Arc<Self>, CloseOnDrop) {
        let scope = std::sync::Arc::new(Self::default());
        let guard = CloseOnDrop(std::sync::Arc::clone(&scope));
        (scope, guard)
    }

    /// Keeps `resource` until the query ends. Returns it back when the query has already
    /// ended (the caller then releases it at once).
    pub fn hold(
        &self,
        resource: Box<dyn Any + Send + Sync>,
    ) -> Result<(), Box<dyn Any + Send + Sync>> {
        let mut resources = self.resources.lock().unwrap_or_else(|e| e.into_inner());
        if self.closed.load(Ordering::Acquire) {
            return Err(resource);
        }
        resources.push(resource);
        Ok(())
    }

    /// Ends the query: drops everything held.
    pub fn close(&self) {
        let held = {
            let mut resources = self.resources.lock().unwrap_or_else(|e| e.into_inner());
            self.closed.store(true, Ordering::Release);
            std::mem::take(&mut *resources)
        };
        drop(held);
    }

    /// Whether the query has ended.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn releases_on_close_and_refuses_after() {
        let scope = QueryScope::default();
        let held = Arc::new(());
        assert!(scope.hold(Box::new(Arc::clone(&held))).is_ok());
        assert_eq!(Arc::strong_count(&held), 2);
        scope.close();
        assert_eq!(Arc::strong_count(&held), 1);
        assert!(scope.hold(Box::new(Arc::clone(&held))).is_err());
        assert!(scope.is_closed());
    }
}
