//! The point of no return of a statement that writes.
//!
//! A write (an `INSERT` into a Delta table, a materialized view's refresh, an `INSERT` into
//! MySQL/PostgreSQL) is prepared first (data files written, rows sent inside a transaction)
//! and then made visible in one step (the Delta log entry, the transaction's `COMMIT`). A
//! statement killed while it prepares must leave nothing behind; a statement that has begun
//! that last step must finish it and report it, or its client would be told "failed" about a
//! write that happened.
//!
//! The scheduler runs every statement within a [`CommitGate`] (a task-local, like tracing's
//! current span); the connector calls [`point_of_no_return`] just before that last step.

use std::future::Future;
use std::sync::Arc;

/// Decides whether a statement may pass its point of no return.
pub trait CommitGate: Send + Sync {
    /// Passes the point: `Err(why)` when the statement is being stopped (then nothing may
    /// become visible); after `Ok` the statement can no longer be stopped.
    fn pass(&self) -> Result<(), String>;
}

tokio::task_local! {
    static GATE: Arc<dyn CommitGate>;
}

/// Runs `work` (a statement) within `gate`.
pub async fn within_gate<F: Future>(gate: Arc<dyn CommitGate>, work: F) -> F::Output {
    GATE.scope(gate, work).await
}

/// The gate of the statement the current task runs, for a connector that commits on another
/// task or runtime (it then calls [`CommitGate::pass`] itself).
pub fn current_gate() -> Option<Arc<dyn CommitGate>> {
    GATE.try_with(Arc::clone).ok()
}

/// Called by a connector just before the step that makes a write visible: `Err(why)` when the
/// statement has been stopped (the connector then abandons the write); `Ok` otherwise, and
/// from then on the statement is not stopped any more. Outside a statement (a test, a tool)
/// there is no gate and it always passes.
pub fn point_of_no_return() -> Result<(), String> {
    GATE.try_with(|gate| gate.pass()).unwrap_or(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gate that refuses with the reason it holds.
    struct Gate(Option<String>);

    impl CommitGate for Gate {
        fn pass(&self) -> Result<(), String> {
            self.0.clone().map_or(Ok(()), Err)
        }
    }

    #[tokio::test]
    async fn passes_without_a_gate_and_asks_the_gate_within_one() {
        assert_eq!(point_of_no_return(), Ok(()));
        let stopped: Arc<dyn CommitGate> = Arc::new(Gate(Some("killed".into())));
        let answer = within_gate(stopped, async { point_of_no_return() }).await;
        assert_eq!(answer, Err("killed".to_owned()));
        let open: Arc<dyn CommitGate> = Arc::new(Gate(None));
        assert_eq!(
            within_gate(open, async { point_of_no_return() }).await,
            Ok(())
        );
    }
}
