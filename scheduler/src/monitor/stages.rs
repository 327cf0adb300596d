//! The stages of a job and their tasks, from Ballista's execution graph: live while the job
//! runs (its running-job cache), or from its job store once it has ended.

use ballista_core::serde::protobuf::task_status;
use ballista_scheduler::display::format_stage_metrics;
use ballista_scheduler::state::execution_graph::ExecutionGraph;
use ballista_scheduler::state::execution_stage::{ExecutionStage, TaskInfo};
use datafusion::physical_plan::displayable;
use datafusion::physical_plan::metrics::MetricsSet;
use serde::{Deserialize, Serialize};

use super::now_ms;
use super::tasks::TaskRecord;

/// A stage whose largest task reads more than this many times the rows of its (lower) median
/// task, and at least `SKEW_MIN_ROWS`, is flagged as skewed.
pub const SKEW_RATIO: f64 = 2.0;
/// Fewest input rows a task must read to be called skewed.
pub const SKEW_MIN_ROWS: i64 = 1000;

/// Min, median and max over a stage's tasks.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Spread {
    /// Smallest.
    pub min: i64,
    /// Median (the lower one for an even count).
    pub median: i64,
    /// Largest.
    pub max: i64,
}

impl Spread {
    fn of(mut values: Vec<i64>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_unstable();
        Self {
            min: values[0],
            // The lower median: with two tasks, one far above the other is skew.
            median: values[(values.len() - 1) / 2],
            max: values[values.len() - 1],
        }
    }

    fn skewed(&self, minimum: i64) -> bool {
        self.max >= minimum && self.max as f64 > SKEW_RATIO * self.median.max(1) as f64
    }
}

/// One stage of a job (web UI, EXPLAIN ANALYZE, history).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageInfo {
    /// Stage id.
    pub stage_id: usize,
    /// UNRESOLVED, RESOLVED, RUNNING, FINISHED or FAILED.
    pub state: String,
    /// Tasks launched (all attempts of the current stage attempt).
    pub tasks: usize,
    /// Tasks finished.
    pub tasks_finished: usize,
    /// Output partitions.
    pub partitions: usize,
    /// Stages it reads.
    pub inputs: Vec<usize>,
    /// Stages reading it.
    pub output_links: Vec<usize>,
    /// First task start.
    pub start_ms: Option<i64>,
    /// Last task end (finished stages).
    pub end_ms: Option<i64>,
    /// The stage plan, with its tasks' summed metrics once known.
    pub plan: String,
    /// Input rows per task.
    pub rows: Spread,
    /// Execution time per task (ms).
    pub time_ms: Spread,
    /// Whether a task reads far more rows than the median task.
    pub skewed: bool,
    /// Skewed join partitions its tasks joined in pieces (`executor/src/skew.rs`).
    #[serde(default)]
    pub skew_split: usize,
    /// The pieces they were joined in.
    #[serde(default)]
    pub skew_pieces: usize,
    /// Why it failed.
    pub error: Option<String>,
}

/// The stages of a job, in id order, with their tasks' spread from `tasks`.
pub fn job_stages(graph: &dyn ExecutionGraph, tasks: &[TaskRecord]) -> Vec<StageInfo> {
    let mut ids: Vec<&usize> = graph.stages().keys().collect();
    ids.sort();
    let mut stages: Vec<StageInfo> = ids
        .into_iter()
        .filter_map(|id| graph.stages().get(id).map(|s| stage_info(s, tasks)))
        .collect();
    // Finished stages forget their readers: derive them from the readers' inputs.
    let links: Vec<(usize, usize)> = stages
        .iter()
        .flat_map(|s| s.inputs.iter().map(move |i| (*i, s.stage_id)))
        .collect();
    for stage in &mut stages {
        let mut readers: Vec<usize> = links
            .iter()
            .filter(|(input, _)| *input == stage.stage_id)
            .map(|(_, reader)| *reader)
            .collect();
        readers.sort_unstable();
        readers.dedup();
        if !readers.is_empty() {
            stage.output_links = readers;
        }
    }
    stages
}

fn stage_info(stage: &ExecutionStage, tasks: &[TaskRecord]) -> StageInfo {
    let (stage_id, state, plan, infos, metrics, partitions, output_links, inputs, error) =
        match stage {
            ExecutionStage::UnResolved(s) => (
                s.stage_id,
                "UNRESOLVED",
                &s.plan,
                &[][..],
                None,
                0,
                s.output_links.clone(),
                s.inputs.keys().copied().collect::<Vec<_>>(),
                None,
            ),
            ExecutionStage::Resolved(s) => (
                s.stage_id,
                "RESOLVED",
                &s.plan,
                &[][..],
                None,
                s.partitions,
                s.output_links.clone(),
                s.inputs.keys().copied().collect(),
                None,
            ),
            ExecutionStage::Running(s) => (
                s.stage_id,
                "RUNNING",
                &s.plan,
                s.task_infos.as_slice(),
                s.stage_metrics.as_deref(),
                s.partitions,
                s.output_links.clone(),
                s.inputs.keys().copied().collect(),
                None,
            ),
            ExecutionStage::Successful(s) => (
                s.stage_id,
                "FINISHED",
                &s.plan,
                s.task_infos.as_slice(),
                Some(s.stage_metrics.as_slice()),
                s.partitions,
                s.output_links.clone(),
                s.inputs.keys().copied().collect(),
                None,
            ),
            ExecutionStage::Failed(s) => (
                s.stage_id,
                "FAILED",
                &s.plan,
                s.task_infos.as_slice(),
                s.stage_metrics.as_deref(),
                s.partitions,
                s.output_links.clone(),
                vec![],
                Some(s.error_message.clone()),
            ),
        };
    let (skew_split, skew_pieces) = skew_splits(metrics.unwrap_or_default());
    let plan_text = match metrics {
        Some(m) if !m.is_empty() => format_stage_metrics(plan.as_ref(), m),
        _ => displayable(plan.as_ref()).indent(true).to_string(),
    };
    let finished: Vec<&TaskRecord> = tasks
        .iter()
        .filter(|t| t.stage_id == stage_id && t.state == "FINISHED")
        .collect();
    let rows = Spread::of(finished.iter().map(|t| t.processed_input_rows).collect());
    let time_ms = Spread::of(finished.iter().map(|t| t.scheduled_time_ms).collect());
    let start_ms = infos
        .iter()
        .map(|t| t.start_exec_time.max(t.launch_time) as i64)
        .filter(|t| *t > 0)
        .min();
    let end_ms = (state == "FINISHED")
        .then(|| infos.iter().map(|t| t.end_exec_time as i64).max())
        .flatten();
    let mut inputs = inputs;
    inputs.sort_unstable();
    StageInfo {
        stage_id,
        state: state.to_owned(),
        tasks: infos.len(),
        tasks_finished: infos
            .iter()
            .filter(|t| matches!(t.task_status, task_status::Status::Successful(_)))
            .count(),
        partitions,
        inputs,
        output_links,
        start_ms,
        end_ms,
        plan: plan_text,
        rows,
        time_ms,
        // Data skew only: uneven times alone mostly mean tasks shared cores with others.
        skewed: finished.len() > 1 && rows.skewed(SKEW_MIN_ROWS),
        skew_split,
        skew_pieces,
        error,
    }
}

/// Join partitions a stage's tasks split as skewed, and the pieces they were joined in (the
/// joins' `skewed_partitions_split` and `skew_split_pieces`).
fn skew_splits(metrics: &[MetricsSet]) -> (usize, usize) {
    let count = |name: &str| {
        metrics
            .iter()
            .filter_map(|set| set.sum_by_name(name))
            .map(|v| v.as_usize())
            .sum::<usize>()
    };
    (count("skewed_partitions_split"), count("skew_split_pieces"))
}

/// Tasks running now in a job's running stages (their metrics arrive when they end), except
/// those `recorded` already has (reported, not yet applied to the graph).
pub(super) fn running_tasks(
    graph: &dyn ExecutionGraph,
    recorded: &[TaskRecord],
) -> Vec<TaskRecord> {
    let now = now_ms();
    let mut out = Vec::new();
    for stage in graph.stages().values() {
        let ExecutionStage::Running(s) = stage else {
            continue;
        };
        for info in &s.task_infos {
            let known = recorded.iter().any(|t| {
                t.stage_id == s.stage_id
                    && t.task_id == info.task_id
                    && t.attempt == s.stage_attempt_num
            });
            if known {
                continue;
            }
            if let Some(task) = running_task(graph, s.stage_id, s.stage_attempt_num, info, now) {
                out.push(task);
            }
        }
    }
    out
}

/// Whether any task of the job runs (the query is RUNNING, not just STARTING).
pub(crate) fn has_running_task(graph: &dyn ExecutionGraph) -> bool {
    graph.stages().values().any(|stage| match stage {
        ExecutionStage::Running(s) => s
            .task_infos
            .iter()
            .any(|t| matches!(t.task_status, task_status::Status::Running(_))),
        ExecutionStage::Successful(_) => true,
        _ => false,
    })
}

fn running_task(
    graph: &dyn ExecutionGraph,
    stage_id: usize,
    attempt: usize,
    info: &TaskInfo,
    now: i64,
) -> Option<TaskRecord> {
    let task_status::Status::Running(running) = &info.task_status else {
        return None;
    };
    let start = info.start_exec_time.max(info.launch_time) as i64;
    let start = if start > 0 {
        start
    } else {
        info.scheduled_time as i64
    };
    let elapsed = (now - start).max(0);
    Some(TaskRecord {
        job_id: graph.job_id().to_string(),
        stage_id,
        task_id: info.task_id,
        attempt,
        node_id: running.executor_id.clone(),
        state: "RUNNING".to_owned(),
        splits: info.global_input_partition_ids.len(),
        created_ms: info.launch_time as i64,
        start_ms: Some(start),
        // A running task occupies its slot: count its time so far as compute.
        cpu_time_ms: elapsed,
        scheduled_time_ms: elapsed,
        ..TaskRecord::default()
    })
}
