//! Ordered results whose partitions need no merge. An ordered result's final partitions are
//! each sorted by the executors (`result_order`) and merged by the scheduler while it streams
//! them: one endpoint, and the scheduler's CPU spent comparing and copying every row (a third
//! of the fetch of the seed's 6.9 M rows). When the files of the scan under the sort are
//! dealt into partitions by ranges of the sort's first key, no two partitions overlap: the
//! result is the partitions one after the other, each an endpoint of its own that clients
//! read as it was written, in parallel.
//!
//! Two halves:
//! - [`regroup`], in the planner: under the result's partition sort, the key followed down
//!   through projections, filters and joins (Ballista's adaptive planner chooses the joins
//!   later: a broadcast join keeps its probe side's partitions) to a file scan whose files
//!   have statistics for it (Parquet footers, partition values): the files sorted by their
//!   bounds and cut into twice as many groups as the scan had, only where the bounds of what
//!   comes before and after do not overlap, of about equal size (a scan that already
//!   declares a partitioning is left alone); the scan declares the ranges as its partitioning
//!   (DataFusion's `Partitioning::Range`), which keeps DataFusion from cutting its files
//!   into even byte ranges again or letting partitions steal each other's files.
//! - [`concatenation`], after the job: the same path through the final stage as it ran,
//!   whatever planned it; each partition's bounds from its files' statistics; the partitions'
//!   order when their ranges follow one another. Only then does the scheduler send them one
//!   after the other instead of merging them.
//!
//! Files whose statistics are missing, or whose key column holds nulls, leave the plan alone.

mod bounds;
mod path;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use datafusion::common::SplitPoint;
use datafusion::datasource::physical_plan::FileScanConfigBuilder;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{LexOrdering, Partitioning, PhysicalSortExpr, RangePartitioning};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort::SortExec;

use bounds::{Bounds, file_bounds, follows, range_groups, sort_by_bounds};
use path::{Mode, trace, with_children};

/// `plan` with the file scan under its result sort dealt into partitions by ranges of the
/// sort's first key, when the files' statistics allow it; `plan` unchanged otherwise.
pub(crate) fn regroup(plan: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    regrouped(&plan).unwrap_or(plan)
}

fn regrouped(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    // The result sort, under the projections that cast the result to the client's types.
    if let Some(sort) = plan.downcast_ref::<SortExec>() {
        if !sort.preserve_partitioning() {
            return None;
        }
        let first = sort.expr().first();
        let column = first.expr.downcast_ref::<Column>()?.index();
        let descending = first.options.descending;
        let input = Arc::clone(sort.input());
        let path = trace(&input, column, Mode::Hint)?;
        if path.config.output_partitioning.is_some() {
            return None;
        }
        let (groups, splits) = range_groups(&path.config, path.column, descending)?;
        // Declared, the ranges stay as dealt: DataFusion neither cuts a scan with a declared
        // partitioning into even byte ranges again (Ballista's adaptive planner optimizes the
        // plan again as stages finish) nor lets a task's partitions steal each other's files.
        let key = path
            .config
            .file_source()
            .table_schema()
            .table_schema()
            .field(path.column)
            .name()
            .clone();
        let ordering = LexOrdering::new(vec![PhysicalSortExpr::new(
            Arc::new(Column::new(&key, path.column)),
            first.options,
        )])?;
        let declared = RangePartitioning::try_new(
            ordering,
            splits
                .into_iter()
                .map(|v| SplitPoint::new(vec![v]))
                .collect(),
        )
        .ok()?;
        let scan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(
            FileScanConfigBuilder::from(path.config.clone())
                .with_file_groups(groups)
                .with_output_partitioning(Some(Partitioning::Range(declared)))
                .build(),
        );
        let input = path.rebuild(scan)?;
        return with_children(plan, vec![input]);
    }
    let projection = plan.downcast_ref::<ProjectionExec>()?;
    let input = regrouped(projection.input())?;
    with_children(plan, vec![input])
}

/// The order in which the final partitions of a finished job (its last stage's plan, `stage`)
/// make its result, sorted by result column `column` (descending or not, the first of
/// `keys` sort keys): partition ids, when each partition's range of the column, from the
/// statistics of the files it read, follows the previous one's. `None` when that is not
/// known.
pub(crate) fn concatenation(
    stage: &Arc<dyn ExecutionPlan>,
    column: usize,
    descending: bool,
    keys: usize,
) -> Option<Vec<usize>> {
    let path = trace(stage, column, Mode::Strict)?;
    let mut ranges = Vec::with_capacity(path.config.file_groups.len());
    let mut empty = Vec::new();
    for (partition, group) in path.config.file_groups.iter().enumerate() {
        if group.files().is_empty() {
            empty.push(partition);
            continue;
        }
        let mut range: Option<Bounds> = None;
        for file in group.files() {
            let bounds = file_bounds(file, path.column)?;
            range = Some(match range {
                None => bounds,
                Some(r) => r.union(&bounds)?,
            });
        }
        ranges.push((partition, range?));
    }
    sort_by_bounds(&mut ranges, descending, |(_, b)| b)?;
    // Ties between partitions keep the order of a one-key sort; of more keys, they may not.
    let strict = keys > 1;
    for pair in ranges.windows(2) {
        if !follows(&pair[0].1, &pair[1].1, descending, strict)? {
            return None;
        }
    }
    Some(ranges.into_iter().map(|(p, _)| p).chain(empty).collect())
}

/// How long the engine waits for a finished job's final stage to show as such in its graph
/// (Ballista reports the job's success first).
const GRAPH_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

impl super::Engine {
    /// The order in which the final partitions of finished job `job` make its result
    /// ordered by `order`, when they can be sent one after the other (see [`concatenation`]);
    /// `None`: they are merged. An OFFSET or LIMIT is left to the merge (partitions of a
    /// TopK are small).
    pub(super) async fn partition_order(
        &self,
        job: &super::JobResult,
        order: &super::ResultOrder,
    ) -> Option<Vec<usize>> {
        if order.skip > 0 || order.fetch.is_some() {
            return None;
        }
        let key = order.keys.first()?;
        // The stage the result partitions were written by.
        let stage_id = usize::try_from(job.partitions.first()?.stage_id).ok()?;
        let stage = self.stage_plan(&job.job_id, stage_id).await?;
        concatenation(
            &stage,
            usize::try_from(key.column).ok()?,
            key.descending,
            order.keys.len(),
        )
    }

    /// The plan of a finished job's stage as it ran, or of a running one as it runs (`None`
    /// when the graph does not show it within [`GRAPH_WAIT`]: the result is merged).
    async fn stage_plan(&self, job_id: &str, stage_id: usize) -> Option<Arc<dyn ExecutionPlan>> {
        use ballista_scheduler::state::execution_stage::ExecutionStage;
        let id: ballista_core::JobId = job_id.to_owned().into();
        // (A result announced while its job runs: its final stage's plan as it runs.)
        let successful = |stage: Option<&ExecutionStage>| match stage {
            Some(ExecutionStage::Successful(stage)) => Some(Arc::clone(&stage.plan)),
            Some(ExecutionStage::Running(stage)) => Some(Arc::clone(&stage.plan)),
            _ => None,
        };
        let mut waited = std::time::Duration::ZERO;
        loop {
            // The job's graph stays in the running cache until Ballista files it.
            let running = self.scheduler.state.task_manager.get_running_job_cache();
            let found = match running.get(&id) {
                Some(job) => successful(job.execution_graph.read().await.stages().get(&stage_id)),
                None => match self.jobs.get_execution_graph(&id).await {
                    Ok(Some(graph)) => successful(graph.stages().get(&stage_id)),
                    _ => None,
                },
            };
            if found.is_some() || waited >= GRAPH_WAIT {
                if found.is_none() {
                    tracing::debug!(
                        job_id,
                        stage_id,
                        "final stage not found: the result is merged"
                    );
                }
                return found;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            waited += std::time::Duration::from_millis(10);
        }
    }
}

/// `partitions` in the order of partition ids `order` (any it does not name after them).
pub(super) fn reordered(
    mut partitions: Vec<tributary_proto::JobPartition>,
    order: &[usize],
) -> Vec<tributary_proto::JobPartition> {
    let mut sorted = Vec::with_capacity(partitions.len());
    for &id in order {
        if let Some(i) = partitions
            .iter()
            .position(|p| usize::try_from(p.partition_id).ok() == Some(id))
        {
            sorted.push(partitions.remove(i));
        }
    }
    sorted.extend(partitions);
    sorted
}
