//! `EXPLAIN (TYPE DISTRIBUTED)`: the stages Ballista cuts a plan into; `EXPLAIN ANALYZE`:
//! the stages of a finished job with the metrics their tasks reported (rows, time, and for
//! file scans the bytes read and the files, row groups and pages pruned; connector scans show
//! their remote SQL or offset ranges), each stage headed by its tasks' spread (input rows and
//! time per task, min / median / max) with skew flagged. Both end with the join order chosen
//! by statistics (`crate::join_order`) and one line per join: its distribution and why
//! ([`joins`]); EXPLAIN ANALYZE then with the dynamic filters the query's probe sides got
//! (`crate::dynamic_filters`).

pub(crate) mod joins;

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use ballista_scheduler::cluster::JobState;
use ballista_scheduler::display::format_stage_metrics;
use ballista_scheduler::planner::{DefaultDistributedPlanner, DistributedPlanner};
use ballista_scheduler::state::execution_stage::ExecutionStage;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, displayable};
use datafusion::prelude::SessionContext;

use crate::error::{Result, SchedulerError};
use crate::monitor::{StageInfo, TaskRecord, TaskTracker, job_stages};

/// One row per stage: (`Stage N`, the stage's plan with its exchanges and partitions).
pub(crate) async fn distributed(
    ctx: &SessionContext,
    plan: &LogicalPlan,
    distribution_type: &str,
    join_order: &[String],
    result_merge: Option<&str>,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let (state, physical) = physical_plan(ctx, plan).await?;
    let expected = joins::decide(&physical, state.config().options(), distribution_type);
    let physical = joins::as_expected(physical, &expected, state.config().options())?;
    let join_lines: Vec<String> = expected.into_iter().map(|e| e.line).collect();
    let job_id = format!("explain-{}", uuid::Uuid::new_v4());
    let stages = DefaultDistributedPlanner::new().plan_query_stages(
        &job_id.into(),
        physical,
        state.config().options(),
    )?;
    let mut names = Vec::new();
    let mut plans = Vec::new();
    for stage in &stages {
        let stage: Arc<dyn ExecutionPlan> = Arc::clone(stage) as Arc<dyn ExecutionPlan>;
        let partitions = stage.properties().output_partitioning().partition_count();
        names.push(format!(
            "Stage {} ({partitions} output partitions)",
            names.len() + 1
        ));
        plans.push(displayable(stage.as_ref()).indent(true).to_string());
    }
    if !join_order.is_empty() {
        names.push("Join order".to_owned());
        plans.push(join_order.join("\n"));
    }
    if !join_lines.is_empty() {
        names.push("Joins (expected; decided at run time)".to_owned());
        plans.push(join_lines.join("\n"));
    }
    if let Some(merge) = result_merge {
        names.push("Result".to_owned());
        plans.push(merge.to_owned());
    }
    crate::local::table(&["plan_type", "plan"], vec![names, plans])
}

/// `plan` planned here as a job of it would be (the query's hinted thresholds applied), with
/// the state that planned it.
async fn physical_plan(
    ctx: &SessionContext,
    plan: &LogicalPlan,
) -> Result<(SessionState, Arc<dyn ExecutionPlan>)> {
    let mut state = ctx.state();
    crate::joins::configure(state.config_mut().options_mut(), plan)?;
    let physical = state.create_physical_plan(plan).await?;
    Ok((state, physical))
}

/// What statistics predict for each join of `plan` before it runs (for EXPLAIN ANALYZE to
/// tell a join the adaptive planner switched).
pub(crate) async fn expected_joins(
    ctx: &SessionContext,
    plan: &LogicalPlan,
    distribution_type: &str,
) -> Result<Vec<joins::Expected>> {
    let (state, physical) = physical_plan(ctx, plan).await?;
    Ok(joins::decide(
        &physical,
        state.config().options(),
        distribution_type,
    ))
}

/// How long EXPLAIN ANALYZE waits for a finished job's graph, and how often it looks.
const GRAPH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
const GRAPH_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// What EXPLAIN ANALYZE shows after the stages, besides the joins: what the query decided
/// before its job was submitted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AnalyzeNotes<'a> {
    /// The join order chosen by statistics.
    pub join_order: &'a [String],
    /// The dynamic filters the probe sides got.
    pub dynamic_filters: &'a [String],
    /// How the scheduler merged an ordered result.
    pub result_merge: Option<&'a str>,
}

/// One row per stage of a finished job: (`Stage N`, its plan with the summed metrics of its
/// tasks).
pub(crate) async fn analyze(
    jobs: &Arc<dyn JobState>,
    tasks: &TaskTracker,
    job_id: &str,
    distribution_type: &str,
    expected: &[joins::Expected],
    notes: &AnalyzeNotes<'_>,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let AnalyzeNotes {
        join_order,
        dynamic_filters,
        result_merge,
    } = *notes;
    // Ballista reports a job's success before it moves the finished graph into its job store:
    // wait for it briefly.
    let id = job_id.to_owned().into();
    let mut waited = std::time::Duration::ZERO;
    let graph = loop {
        if let Some(graph) = jobs.get_execution_graph(&id).await? {
            break graph;
        }
        if waited >= GRAPH_WAIT {
            return Err(SchedulerError::Engine(format!(
                "job {job_id} has no execution graph"
            )));
        }
        tokio::time::sleep(GRAPH_POLL).await;
        waited += GRAPH_POLL;
    };
    let records = tasks.of_job(job_id);
    let infos = job_stages(graph.as_ref(), &records);
    let mut stages: Vec<_> = graph.stages().iter().collect();
    stages.sort_by_key(|(id, _)| **id);
    let mut names = Vec::new();
    let mut plans = Vec::new();
    let mut measured = Vec::new();
    for (id, stage) in stages {
        let (plan, metrics, tasks) = match stage {
            ExecutionStage::Successful(s) => {
                (&s.plan, s.stage_metrics.as_slice(), s.task_infos.len())
            }
            _ => continue,
        };
        joins::measure(plan, metrics, &mut measured);
        let partitions = plan.properties().output_partitioning().partition_count();
        names.push(format!(
            "Stage {id} ({tasks} tasks, {partitions} output partitions)"
        ));
        let header = infos
            .iter()
            .find(|s| s.stage_id == *id)
            .map(|info| spread_header(info, &records))
            .unwrap_or_default();
        plans.push(format!(
            "{header}{}",
            format_stage_metrics(plan.as_ref(), metrics)
        ));
    }
    let join_lines = joins::chosen(
        &graph.physical_plan(),
        distribution_type,
        expected,
        measured,
    );
    if !join_order.is_empty() {
        names.push("Join order".to_owned());
        plans.push(join_order.join("\n"));
    }
    if !join_lines.is_empty() {
        names.push("Joins".to_owned());
        plans.push(join_lines.join("\n"));
    }
    if !dynamic_filters.is_empty() {
        names.push("Dynamic filters".to_owned());
        plans.push(dynamic_filters.join("\n"));
    }
    if let Some(merge) = result_merge {
        names.push("Result".to_owned());
        plans.push(merge.to_owned());
    }
    crate::local::table(&["plan_type", "plan"], vec![names, plans])
}

/// Lines above a stage's plan: its tasks' spread, output, memory, spill, and skew (and the
/// skewed join partitions its tasks split).
fn spread_header(info: &StageInfo, tasks: &[TaskRecord]) -> String {
    let mine: Vec<&TaskRecord> = tasks
        .iter()
        .filter(|t| t.stage_id == info.stage_id && t.state == "FINISHED")
        .collect();
    if mine.is_empty() {
        return String::new();
    }
    let sum = |f: fn(&TaskRecord) -> i64| mine.iter().map(|t| f(t)).sum::<i64>();
    let peak = mine.iter().map(|t| t.peak_memory_bytes).max().unwrap_or(0);
    let mut out = format!(
        "tasks: {} | input rows per task min/median/max: {}/{}/{} | time per task: {}/{}/{} ms\n\
         input: {} rows, {} bytes from sources, {} rows in all | output: {} rows, {} bytes | \
         cpu: {} ms | peak task memory: {} bytes | spilled: {} bytes\n",
        mine.len(),
        info.rows.min,
        info.rows.median,
        info.rows.max,
        info.time_ms.min,
        info.time_ms.median,
        info.time_ms.max,
        sum(|t| t.raw_input_rows),
        sum(|t| t.raw_input_bytes),
        sum(|t| t.processed_input_rows),
        sum(|t| t.output_rows),
        sum(|t| t.output_bytes),
        sum(|t| t.cpu_time_ms),
        peak,
        sum(|t| t.spilled_bytes),
    );
    if info.skewed {
        out.push_str(&format!(
            "SKEW: the largest task reads {} rows, {:.1}x the median task ({} rows)\n",
            info.rows.max,
            info.rows.max as f64 / info.rows.median.max(1) as f64,
            info.rows.median
        ));
    }
    if info.skew_split > 0 {
        out.push_str(&format!(
            "SKEW HANDLED: {} skewed join partition(s) joined in {} pieces in parallel \
             (skew_join_enabled)\n",
            info.skew_split, info.skew_pieces
        ));
    }
    out
}
