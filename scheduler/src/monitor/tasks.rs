//! Tasks as their executors report them: one [`TaskRecord`] per finished (or failed) task
//! attempt, with the metrics of its operators summed into Trino's task columns.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Jobs whose task records are kept (the most recent ones).
const KEPT_JOBS: usize = 500;

/// One task attempt (`system.runtime.tasks`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRecord {
    /// Ballista job.
    pub job_id: String,
    /// Stage of the job.
    pub stage_id: usize,
    /// Task within its stage (Ballista's task id).
    pub task_id: usize,
    /// Attempt of its stage.
    pub attempt: usize,
    /// Executor that ran it.
    pub node_id: String,
    /// PLANNED, RUNNING, FINISHED or FAILED.
    pub state: String,
    /// Input partitions (splits) it processed.
    pub splits: usize,
    /// When it was launched (ms since the epoch).
    pub created_ms: i64,
    /// When it started executing.
    pub start_ms: Option<i64>,
    /// When it ended.
    pub end_ms: Option<i64>,
    /// Compute time (ms): the operators' `elapsed_compute`. Work a connector does on its own
    /// blocking threads (TPC-H generation, Kafka decoding) is not in it.
    pub cpu_time_ms: i64,
    /// Execution wall time (ms).
    pub scheduled_time_ms: i64,
    /// Wall time not spent computing (waiting for input, I/O) (ms).
    pub blocked_time_ms: i64,
    /// Rows read from sources (connector and file scans).
    pub raw_input_rows: i64,
    /// Bytes read from sources.
    pub raw_input_bytes: i64,
    /// Rows entering the stage: from sources and from earlier stages (shuffle reads).
    pub processed_input_rows: i64,
    /// Bytes entering the stage.
    pub processed_input_bytes: i64,
    /// Rows written (shuffle or result partitions).
    pub output_rows: i64,
    /// Bytes written.
    pub output_bytes: i64,
    /// Sum of its operators' peak memory (bytes).
    pub peak_memory_bytes: i64,
    /// Bytes spilled to disk.
    pub spilled_bytes: i64,
    /// Rows and bytes read per catalog.
    #[serde(default)]
    pub input_by_catalog: Vec<(String, i64, i64)>,
    /// Why it failed.
    pub error: Option<String>,
}

/// Tasks by job, and jobs in the order they were first seen.
type Jobs = (HashMap<String, Vec<TaskRecord>>, VecDeque<String>);

/// Task records of recent jobs.
#[derive(Debug, Default)]
pub struct TaskTracker {
    jobs: Mutex<Jobs>,
}

impl TaskTracker {
    /// Records a task attempt that ended.
    pub fn record(&self, task: TaskRecord) {
        let mut guard = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let (jobs, order) = &mut *guard;
        if !jobs.contains_key(&task.job_id) {
            order.push_back(task.job_id.clone());
            if order.len() > KEPT_JOBS
                && let Some(old) = order.pop_front()
            {
                jobs.remove(&old);
            }
        }
        let tasks = jobs.entry(task.job_id.clone()).or_default();
        tasks.retain(|t| {
            !(t.stage_id == task.stage_id && t.task_id == task.task_id && t.attempt == task.attempt)
        });
        tasks.push(task);
    }

    /// The recorded tasks of a job.
    pub fn of_job(&self, job_id: &str) -> Vec<TaskRecord> {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .get(job_id)
            .cloned()
            .unwrap_or_default()
    }
}
