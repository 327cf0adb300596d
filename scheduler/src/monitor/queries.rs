//! Every statement a client sends is a query with Trino's life cycle: created, analysed
//! (parsed and planned), starting (its Ballista job waits for planning or task slots),
//! running (a task runs), then FINISHED or FAILED.
//! A [`QueryHandle`] follows the statement through the engine (a task-local, so deep code
//! such as `Engine::run_job` can record the job it submitted); the [`QueryTracker`] keeps
//! running queries and the most recent finished ones, and hands finished ones to the
//! history store. What is recorded of a query is `query_info.rs`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::now_ms;
use super::query_info::{QueryInfo, QueryState};

/// Finished queries kept in memory (and read back from the history store at start-up).
const RECENT_QUERIES: usize = 500;

/// Why a running query is being stopped.
#[derive(Debug, Clone)]
pub struct Kill {
    /// The message given.
    pub message: String,
    /// `kill_query` (ADMINISTRATIVELY_KILLED), not a cancel by its client (USER_CANCELED).
    pub administrative: bool,
}

/// What became of a request to stop a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillOutcome {
    /// It is being stopped.
    Killed,
    /// No such query runs.
    NotRunning,
    /// It has begun to make its write visible (past its point of no return): it finishes.
    Committing,
}

/// A query passes its point of no return only when not stopped; from then on kills are
/// refused (`QueryHandle::kill` checks `committing` under the same lock).
impl tributary_connector::CommitGate for QueryHandle {
    fn pass(&self) -> Result<(), String> {
        let killed = self.entry.killed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(kill) = killed.as_ref() {
            return Err(kill.message.clone());
        }
        self.entry.committing.store(true, Ordering::Release);
        Ok(())
    }
}

/// The mutable part of a running query.
#[derive(Debug)]
struct QueryEntry {
    info: Mutex<QueryInfo>,
    killed: Mutex<Option<Kill>>,
    /// Set, under `killed`'s lock, when the statement passed its point of no return.
    committing: std::sync::atomic::AtomicBool,
    kill: tokio::sync::Notify,
    planning_started: Mutex<Option<i64>>,
    /// The end of its job, when its result was announced before the job ended.
    job_end: Mutex<Option<crate::live::JobEndReceiver>>,
}

/// A running query, as the engine sees it.
#[derive(Debug, Clone)]
pub struct QueryHandle {
    entry: Arc<QueryEntry>,
    tracker: Arc<QueryTracker>,
}

tokio::task_local! {
    static CURRENT: QueryHandle;
}

/// The query the current task works for (set by the Flight SQL service around a statement).
pub fn current_query() -> Option<QueryHandle> {
    CURRENT.try_with(QueryHandle::clone).ok()
}

impl QueryHandle {
    /// Runs `f` as this query's work (so [`current_query`] finds it).
    pub async fn scope<F: std::future::Future>(&self, f: F) -> F::Output {
        let gate: Arc<dyn tributary_connector::CommitGate> = Arc::new(self.clone());
        // Boxed once here: a statement's future is large (debug builds keep every await's
        // state), and each wrapper would otherwise hold a copy of it on the stack.
        CURRENT
            .scope(
                self.clone(),
                tributary_connector::within_gate(gate, Box::pin(f)),
            )
            .await
    }

    /// The query id.
    pub fn id(&self) -> String {
        self.with(|i| i.query_id.clone())
    }

    /// Reads or changes the query's record (no heartbeat: reading is not progress).
    fn with<T>(&self, f: impl FnOnce(&mut QueryInfo) -> T) -> T {
        let mut info = self.entry.info.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut info)
    }

    /// Changes the record as the engine makes progress (stamps `last_heartbeat`).
    fn progress<T>(&self, f: impl FnOnce(&mut QueryInfo) -> T) -> T {
        self.with(|info| {
            info.last_heartbeat_ms = now_ms();
            f(info)
        })
    }

    /// Its result was announced while its job runs: the query ends when `end` says.
    pub(crate) fn end_with(&self, end: crate::live::JobEndReceiver) {
        *self.entry.job_end.lock().unwrap_or_else(|e| e.into_inner()) = Some(end);
    }

    /// The end of its job still to come, when its result was announced before it.
    pub(crate) fn take_job_end(&self) -> Option<crate::live::JobEndReceiver> {
        self.entry
            .job_end
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// The engine is still working on the query.
    pub(crate) fn heartbeat(&self) {
        self.progress(|_| ());
    }

    /// The resource group the query runs in (dotted path).
    pub fn set_resource_group(&self, group: &str) {
        self.with(|i| i.resource_group_id = group.to_owned());
    }

    /// Analysis began.
    pub fn planning(&self) {
        let now = now_ms();
        *self
            .entry
            .planning_started
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(now);
        self.progress(|i| {
            i.queued_time_ms = now - i.created_ms;
            i.state = QueryState::Planning;
        });
    }

    /// The statement's job was submitted to Ballista.
    pub fn submitted(&self, job_id: &str) {
        let now = now_ms();
        let planning_started = *self
            .entry
            .planning_started
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.progress(|i| {
            i.analysis_time_ms = now - planning_started.unwrap_or(i.created_ms);
            i.started_ms = Some(now);
            i.job_id = Some(job_id.to_owned());
            i.state = QueryState::Starting;
        });
    }

    /// The job's tasks started.
    pub fn running(&self) {
        let now = now_ms();
        self.progress(|i| {
            if i.state == QueryState::Starting {
                i.planning_time_ms = now - i.started_ms.unwrap_or(now);
                i.state = QueryState::Running;
            }
        });
    }

    /// The job's first task was launched at `launched_ms`: planning ended then. (The job's
    /// status loop sees tasks running at best at its next status, up to a poll of 100 ms
    /// later.)
    pub fn first_task_launched(&self, launched_ms: i64) {
        self.with(|i| {
            if let Some(started) = i.started_ms {
                i.planning_time_ms = (launched_ms - started).max(0);
            }
        });
    }

    /// The job ended; the statement still writes or prepares its result.
    pub fn finishing(&self) {
        self.progress(|i| {
            if i.state == QueryState::Starting {
                i.planning_time_ms = now_ms() - i.started_ms.unwrap_or_else(now_ms);
            }
            i.state = QueryState::Finishing;
        });
    }

    /// The trace context of the query's span.
    pub fn set_trace(&self, trace: tributary_telemetry::TraceParent) {
        self.with(|i| {
            i.trace_id = Some(format!("{:032x}", trace.trace_id));
            i.traceparent = Some(trace.header());
        });
    }

    /// Records warnings about the query (kept with it, shown in `system.runtime.queries`).
    pub fn warn(&self, warnings: &[String]) {
        if !warnings.is_empty() {
            self.with(|i| i.warnings.extend_from_slice(warnings));
        }
    }

    /// Records the join regions reordered in the query's plan.
    pub fn set_join_order(&self, lines: Vec<String>) {
        self.with(|i| i.join_order = lines);
    }

    /// Records the dynamic filters applied to the query's plan.
    pub fn set_dynamic_filters(&self, lines: Vec<String>) {
        self.with(|i| i.dynamic_filters = lines);
    }

    /// The Ballista job, if one was submitted.
    pub fn job_id(&self) -> Option<String> {
        self.with(|i| i.job_id.clone())
    }

    /// A copy of what is known now.
    pub fn info(&self) -> QueryInfo {
        self.with(|i| i.clone())
    }

    /// Why the query is being stopped, if it is.
    pub fn killed(&self) -> Option<Kill> {
        self.entry
            .killed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Resolves when the query is killed.
    pub async fn wait_killed(&self) {
        loop {
            let notified = self.entry.kill.notified();
            if self.killed().is_some() {
                return;
            }
            notified.await;
        }
    }

    fn kill(&self, kill: Kill) -> KillOutcome {
        {
            let mut killed = self.entry.killed.lock().unwrap_or_else(|e| e.into_inner());
            if self.entry.committing.load(Ordering::Acquire) {
                return KillOutcome::Committing;
            }
            *killed = Some(kill);
        }
        self.entry.kill.notify_waiters();
        KillOutcome::Killed
    }

    /// Ends the query: `error` is `(error_type, error_code, message)` when it failed.
    pub(crate) fn finish(&self, error: Option<(&str, &str, String)>) {
        let info = self.progress(|i| {
            i.end_ms = Some(now_ms());
            match error {
                None => i.state = QueryState::Finished,
                Some((error_type, code, message)) => {
                    i.state = QueryState::Failed;
                    i.error_type = Some(error_type.to_owned());
                    i.error_code = Some(code.to_owned());
                    i.error_message = Some(message);
                }
            }
            i.clone()
        });
        self.tracker.ended(info);
    }

    /// Sets the statistics and stages recorded at the end.
    pub(crate) fn set_final_stats(&self, stats: QueryInfo) {
        self.with(|i| {
            i.cpu_time_ms = stats.cpu_time_ms;
            i.peak_memory_bytes = stats.peak_memory_bytes;
            i.input_rows = stats.input_rows;
            i.input_bytes = stats.input_bytes;
            i.output_rows = stats.output_rows;
            i.output_bytes = stats.output_bytes;
            i.stages = stats.stages;
        });
    }
}

type EndedHook = Box<dyn Fn(&QueryInfo) + Send + Sync>;

/// Running and recently finished queries.
#[derive(Default)]
pub struct QueryTracker {
    running: Mutex<BTreeMap<String, Arc<QueryEntry>>>,
    recent: Mutex<VecDeque<QueryInfo>>,
    sequence: std::sync::atomic::AtomicU64,
    on_end: Mutex<Vec<EndedHook>>,
}

impl std::fmt::Debug for QueryTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryTracker").finish_non_exhaustive()
    }
}

impl QueryTracker {
    /// Registers a new query.
    pub fn begin(self: &Arc<Self>, user: &str, source: &str, sql: &str) -> QueryHandle {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        let now = chrono::Utc::now();
        let suffix: String = uuid::Uuid::new_v4().simple().to_string()[..5].to_owned();
        let query_id = format!(
            "{}_{:05}_{suffix}",
            now.format("%Y%m%d_%H%M%S"),
            n % 100_000
        );
        let created = now.timestamp_millis();
        let entry = Arc::new(QueryEntry {
            info: Mutex::new(QueryInfo {
                query_id: query_id.clone(),
                state: QueryState::Queued,
                user: user.to_owned(),
                source: source.to_owned(),
                query: sql.to_owned(),
                resource_group_id: "global".to_owned(),
                created_ms: created,
                last_heartbeat_ms: created,
                ..QueryInfo::default()
            }),
            killed: Mutex::new(None),
            committing: std::sync::atomic::AtomicBool::new(false),
            kill: tokio::sync::Notify::new(),
            planning_started: Mutex::new(None),
            job_end: Mutex::new(None),
        });
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(query_id, Arc::clone(&entry));
        QueryHandle {
            entry,
            tracker: Arc::clone(self),
        }
    }

    /// Calls `hook` with every query that ends (metrics, history).
    pub fn on_end(&self, hook: impl Fn(&QueryInfo) + Send + Sync + 'static) {
        self.on_end
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(hook));
    }

    fn ended(&self, info: QueryInfo) {
        for hook in self.on_end.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            hook(&info);
        }
        let query_id = info.query_id.clone();
        // Listed as recent before it leaves the running queries, so a concurrent listing
        // never misses it (listings drop the duplicate).
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if recent.len() >= RECENT_QUERIES {
                recent.pop_front();
            }
            recent.push_back(info);
        }
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&query_id);
    }

    /// Handles of the running queries.
    pub fn running(self: &Arc<Self>) -> Vec<QueryHandle> {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|entry| QueryHandle {
                entry: Arc::clone(entry),
                tracker: Arc::clone(self),
            })
            .collect()
    }

    /// Finished queries kept in memory, oldest first.
    pub fn recent(&self) -> Vec<QueryInfo> {
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Adds queries read from the history store (at start-up), oldest first.
    pub fn restore(&self, queries: Vec<QueryInfo>) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        for info in queries {
            if recent.len() >= RECENT_QUERIES {
                recent.pop_front();
            }
            recent.push_back(info);
        }
    }

    /// A running query by id.
    pub fn find(self: &Arc<Self>, query_id: &str) -> Option<QueryHandle> {
        let entry = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(query_id)
            .cloned()?;
        Some(QueryHandle {
            entry,
            tracker: Arc::clone(self),
        })
    }

    /// Stops a running query: its job is cancelled and it fails with `message`, as killed
    /// (`administrative`: `kill_query`) or cancelled; says whether it is, or why not.
    pub fn kill(
        self: &Arc<Self>,
        query_id: &str,
        message: &str,
        administrative: bool,
    ) -> KillOutcome {
        let Some(handle) = self.find(query_id) else {
            return KillOutcome::NotRunning;
        };
        handle.kill(Kill {
            message: message.to_owned(),
            administrative,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_connector::{point_of_no_return, within_gate};

    #[tokio::test]
    async fn a_query_past_its_point_of_no_return_refuses_kills() {
        let tracker = Arc::new(QueryTracker::default());
        let query = tracker.begin("alice", "test", "INSERT INTO t VALUES (1)");
        let committed = query.scope(async { point_of_no_return() }).await;
        assert_eq!(committed, Ok(()));
        assert_eq!(
            tracker.kill(&query.id(), "too late", true),
            KillOutcome::Committing
        );
        assert!(query.killed().is_none());
    }

    #[test]
    fn planning_ends_when_the_first_task_is_launched_not_when_the_status_loop_notices() {
        let tracker = Arc::new(QueryTracker::default());
        let query = tracker.begin("alice", "test", "SELECT 1");
        query.planning();
        query.submitted("job");
        let started = query.info().started_ms.expect("submitted");
        // The job ended before the status loop saw a task running.
        std::thread::sleep(std::time::Duration::from_millis(30));
        query.finishing();
        assert!(query.info().planning_time_ms >= 30);
        query.first_task_launched(started + 4);
        assert_eq!(query.info().planning_time_ms, 4);
    }

    #[tokio::test]
    async fn a_query_killed_before_its_point_of_no_return_cannot_pass_it() {
        let tracker = Arc::new(QueryTracker::default());
        let query = tracker.begin("alice", "test", "INSERT INTO t VALUES (1)");
        assert_eq!(
            tracker.kill(&query.id(), "stop it", true),
            KillOutcome::Killed
        );
        let gate: Arc<dyn tributary_connector::CommitGate> = Arc::new(query.clone());
        let refused = within_gate(gate, async { point_of_no_return() }).await;
        assert_eq!(refused, Err("stop it".to_owned()));
        assert_eq!(
            tracker.kill("no-such-query", "x", false),
            KillOutcome::NotRunning
        );
    }
}
