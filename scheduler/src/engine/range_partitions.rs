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

use std::cmp::Ordering;
use std::sync::Arc;

use ballista_core::execution_plans::ShuffleWriterExec;
use datafusion::common::stats::Precision;
use datafusion::common::{JoinType, ScalarValue, SplitPoint};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{LexOrdering, Partitioning, PhysicalSortExpr, RangePartitioning};
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{ChildrenPropertiesMode, ExecutionPlan, ReplaceChildrenOptions};

/// Largest group the regrouping accepts, against an even share of the bytes over the scan's
/// partitions: a partition much larger than the others would hold the job back more than the
/// merge it saves.
const MAX_SKEW: f64 = 1.5;

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

/// `plan` over `children`, its properties computed again.
fn with_children(
    plan: &Arc<dyn ExecutionPlan>,
    children: Vec<Arc<dyn ExecutionPlan>>,
) -> Option<Arc<dyn ExecutionPlan>> {
    Arc::clone(plan)
        .replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
        .ok()
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

/// The smallest and largest value of a column in a file or group.
#[derive(Debug, Clone)]
struct Bounds {
    min: ScalarValue,
    max: ScalarValue,
}

impl Bounds {
    fn union(&self, other: &Bounds) -> Option<Bounds> {
        let min = match self.min.partial_cmp(&other.min)? {
            Ordering::Greater => other.min.clone(),
            _ => self.min.clone(),
        };
        let max = match self.max.partial_cmp(&other.max)? {
            Ordering::Less => other.max.clone(),
            _ => self.max.clone(),
        };
        Some(Bounds { min, max })
    }
}

/// Whether every value of `next` comes after every value of `previous` in the sort's order
/// (`strict`: no value in common either).
fn follows(previous: &Bounds, next: &Bounds, descending: bool, strict: bool) -> Option<bool> {
    let order = if descending {
        next.max.partial_cmp(&previous.min)?.reverse()
    } else {
        next.min.partial_cmp(&previous.max)?
    };
    Some(order == Ordering::Greater || !strict && order == Ordering::Equal)
}

/// Sorts items by where their range starts in the sort's order.
fn sort_by_bounds<T>(
    items: &mut [T],
    descending: bool,
    bounds: impl Fn(&T) -> &Bounds,
) -> Option<()> {
    let mut comparable = true;
    items.sort_by(|a, b| {
        let (a, b) = (bounds(a), bounds(b));
        let order = if descending {
            b.max.partial_cmp(&a.max)
        } else {
            a.min.partial_cmp(&b.min)
        };
        order.unwrap_or_else(|| {
            comparable = false;
            Ordering::Equal
        })
    });
    comparable.then_some(())
}

/// A file's bounds of table column `column`: from statistics that bound it (exactly or not)
/// and say it holds no null.
fn file_bounds(file: &PartitionedFile, column: usize) -> Option<Bounds> {
    let column = file.statistics.as_ref()?.column_statistics.get(column)?;
    let value = |p: &Precision<ScalarValue>| match p {
        Precision::Exact(v) | Precision::Inexact(v) if !v.is_null() => Some(v.clone()),
        _ => None,
    };
    if column.null_count != Precision::Exact(0) {
        return None;
    }
    Some(Bounds {
        min: value(&column.min_value)?,
        max: value(&column.max_value)?,
    })
}

/// The scan's files cut into groups in the order of the sort on table column `column`, only
/// where the files before and after a cut do not overlap, and where each group after the
/// first begins (its smallest value, or largest when descending); `None` when fewer than two
/// groups or too uneven ones come out.
fn range_groups(
    config: &FileScanConfig,
    column: usize,
    descending: bool,
) -> Option<(Vec<FileGroup>, Vec<ScalarValue>)> {
    let partitions = config.file_groups.len();
    if partitions < 2 {
        return None;
    }
    // Twice the scan's partitions: whole files balance worse than byte ranges, and smaller
    // partitions let Ballista give the next one to whichever executor frees a slot first
    // (the seed's query over 9 monthly files: 1.31-1.55 s against 1.50-1.64 s with 4).
    let target = partitions * 2;
    // The pieces of each file stay together.
    let mut files: Vec<(Bounds, u64, Vec<PartitionedFile>)> = Vec::new();
    for piece in config.file_groups.iter().flat_map(FileGroup::iter) {
        let bounds = file_bounds(piece, column)?;
        let len = piece.range.as_ref().map_or(piece.object_meta.size, |r| {
            u64::try_from(r.end - r.start).unwrap_or(0)
        });
        match files
            .iter_mut()
            .find(|(_, _, pieces)| pieces[0].object_meta.location == piece.object_meta.location)
        {
            Some((_, size, pieces)) => {
                *size += len;
                pieces.push(piece.clone());
            }
            None => files.push((bounds, len, vec![piece.clone()])),
        }
    }
    sort_by_bounds(&mut files, descending, |(b, _, _)| b)?;
    // Where a cut may go: before file `i` when it starts after everything before it ends.
    let mut cuts = Vec::new();
    let mut reach = files.first()?.0.clone();
    let mut before = 0u64;
    for (i, (bounds, size, _)) in files.iter().enumerate() {
        if i > 0 && follows(&reach, bounds, descending, true)? {
            cuts.push((i, before));
        }
        reach = reach.union(bounds)?;
        before += size;
    }
    let total = before;
    // The allowed cut nearest each even share's boundary.
    let mut chosen: Vec<usize> = Vec::new();
    for k in 1..target {
        let ideal = total as f64 * k as f64 / target as f64;
        let nearest = cuts
            .iter()
            .filter(|(i, _)| chosen.last().is_none_or(|last| i > last))
            .min_by(|a, b| {
                (a.1 as f64 - ideal)
                    .abs()
                    .total_cmp(&(b.1 as f64 - ideal).abs())
            });
        if let Some(&(i, _)) = nearest {
            chosen.push(i);
        }
    }
    chosen.dedup();
    if chosen.is_empty() {
        return None;
    }
    let mut groups: Vec<(u64, Vec<PartitionedFile>)> = vec![(0, Vec::new())];
    let mut splits = Vec::with_capacity(chosen.len());
    for (i, (bounds, size, pieces)) in files.into_iter().enumerate() {
        if chosen.contains(&i) {
            groups.push((0, Vec::new()));
            // Files are in the sort's order: the first after a cut begins its group.
            splits.push(if descending { bounds.max } else { bounds.min });
        }
        let group = groups.last_mut()?;
        group.0 += size;
        group.1.extend(pieces);
    }
    let largest = groups.iter().map(|(size, _)| *size).max()?;
    if largest as f64 > MAX_SKEW * total as f64 / partitions as f64 {
        return None;
    }
    Some((
        groups
            .into_iter()
            .map(|(_, files)| FileGroup::new(files))
            .collect(),
        splits,
    ))
}

/// A way from a plan down to a file scan along which every row stays in its partition, and
/// a column followed along it.
struct ScanPath {
    /// The nodes from the top down, each with the index of the child the way takes.
    nodes: Vec<(Arc<dyn ExecutionPlan>, usize)>,
    /// The scan's files.
    config: FileScanConfig,
    /// The column in the scan's table schema (file columns, then partition columns).
    column: usize,
}

impl ScanPath {
    /// The plan again with `scan` in place of the file scan.
    fn rebuild(&self, scan: Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
        let mut child = scan;
        for (node, index) in self.nodes.iter().rev() {
            let mut children: Vec<Arc<dyn ExecutionPlan>> =
                node.children().into_iter().map(Arc::clone).collect();
            *children.get_mut(*index)? = child;
            child = with_children(node, children)?;
        }
        Some(child)
    }
}

/// How sure a way down to a scan must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Every row stays in its partition: a final stage's plan as it ran.
    Strict,
    /// Where the rows of the column come from, before Ballista's adaptive planner has chosen
    /// the joins (a join whose build side turns out small becomes a broadcast that keeps its
    /// probe side's partitions): the column is followed through any operator whose output
    /// columns are its inputs' by position. A wrong guess costs only the regrouping.
    Hint,
}

/// The way from `plan` down to the file scan its output column `column` comes from, through
/// operators that keep each row in its input partition (in `Mode::Hint`, through any that
/// pass the column on); `None` at any other operator, or where the column is computed.
fn trace(plan: &Arc<dyn ExecutionPlan>, column: usize, mode: Mode) -> Option<ScanPath> {
    let mut nodes = Vec::new();
    let mut node = Arc::clone(plan);
    let mut column = column;
    loop {
        let (child, index) = if let Some(scan) = node.downcast_ref::<DataSourceExec>() {
            let config = scan.data_source().downcast_ref::<FileScanConfig>()?;
            let column = match config.file_source().projection() {
                Some(projection) => projection
                    .as_ref()
                    .get(column)?
                    .expr
                    .downcast_ref::<Column>()?
                    .index(),
                None => column,
            };
            return Some(ScanPath {
                nodes,
                config: config.clone(),
                column,
            });
        } else if let Some(projection) = node.downcast_ref::<ProjectionExec>() {
            column = projection
                .expr()
                .get(column)?
                .expr
                .downcast_ref::<Column>()?
                .index();
            (Arc::clone(projection.input()), 0)
        } else if let Some(filter) = node.downcast_ref::<FilterExec>() {
            if let Some(projection) = filter.projection() {
                column = *projection.get(column)?;
            }
            (Arc::clone(filter.input()), 0)
        } else if let Some(join) = node.downcast_ref::<HashJoinExec>() {
            if let Some(projection) = &join.projection {
                column = *projection.get(column)?;
            }
            let left = join.left().schema().fields().len();
            match (mode, join.join_type()) {
                // A build side collected whole: each output partition is the probe side's.
                (Mode::Strict, _) if *join.partition_mode() != PartitionMode::CollectLeft => {
                    return None;
                }
                (_, JoinType::Inner) if column >= left => {
                    column -= left;
                    (Arc::clone(join.right()), 1)
                }
                (_, JoinType::RightSemi | JoinType::RightAnti) => (Arc::clone(join.right()), 1),
                (Mode::Hint, JoinType::Inner) => (Arc::clone(join.left()), 0),
                (Mode::Hint, JoinType::LeftSemi | JoinType::LeftAnti) => {
                    (Arc::clone(join.left()), 0)
                }
                _ => return None,
            }
        } else if let Some(sort) = node.downcast_ref::<SortExec>() {
            if mode == Mode::Strict && !sort.preserve_partitioning() {
                return None;
            }
            (Arc::clone(sort.input()), 0)
        } else if node.is::<ShuffleWriterExec>() || node.is::<CooperativeExec>() {
            // Ballista's writer of a final stage keeps its input's partitions.
            (Arc::clone(node.children().first()?), 0)
        } else if mode == Mode::Hint {
            let (index, at) = by_position(&node, column)?;
            column = at;
            (Arc::clone(node.children()[index]), index)
        } else {
            return None;
        };
        nodes.push((node, index));
        node = child;
    }
}

/// The child and its column that output column `column` of `node` is, when `node`'s
/// columns are its children's, one after the other (a join, a shuffle) or one child's.
fn by_position(node: &Arc<dyn ExecutionPlan>, column: usize) -> Option<(usize, usize)> {
    let output = node.schema();
    let names = |fields: Vec<&arrow::datatypes::FieldRef>| -> bool {
        fields.len() == output.fields().len()
            && fields
                .iter()
                .zip(output.fields())
                .all(|(a, b)| a.name() == b.name())
    };
    let inputs: Vec<arrow::datatypes::SchemaRef> =
        node.children().iter().map(|c| c.schema()).collect();
    if names(inputs.iter().flat_map(|s| s.fields().iter()).collect()) {
        let mut start = 0;
        for (index, input) in inputs.iter().enumerate() {
            let len = input.fields().len();
            if column < start + len {
                return Some((index, column - start));
            }
            start += len;
        }
        return None;
    }
    inputs
        .iter()
        .position(|input| names(input.fields().iter().collect()))
        .map(|index| (index, column))
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

    /// The plan of a finished job's stage as it ran (`None` when the graph does not show it
    /// finished within [`GRAPH_WAIT`]: the result is merged).
    async fn stage_plan(&self, job_id: &str, stage_id: usize) -> Option<Arc<dyn ExecutionPlan>> {
        use ballista_scheduler::state::execution_stage::ExecutionStage;
        let id: ballista_core::JobId = job_id.to_owned().into();
        let successful = |stage: Option<&ExecutionStage>| match stage {
            Some(ExecutionStage::Successful(stage)) => Some(Arc::clone(&stage.plan)),
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

#[cfg(test)]
mod tests {
    use arrow::compute::SortOptions;
    use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
    use datafusion::common::{ColumnStatistics, Statistics};
    use datafusion::datasource::physical_plan::ParquetSource;
    use datafusion::execution::object_store::ObjectStoreUrl;
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{binary, col, lit};
    use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};

    use super::*;

    /// A file of `size` bytes whose column `d` holds days `lo..=hi` (`nulls` of them null).
    fn file(name: &str, size: u64, days: Option<(i32, i32)>, nulls: usize) -> PartitionedFile {
        let mut d = ColumnStatistics::new_unknown();
        d.null_count = Precision::Exact(nulls);
        if let Some((lo, hi)) = days {
            d.min_value = Precision::Exact(ScalarValue::Date32(Some(lo)));
            d.max_value = Precision::Exact(ScalarValue::Date32(Some(hi)));
        }
        PartitionedFile::new(name, size).with_statistics(Arc::new(Statistics {
            num_rows: Precision::Exact(100),
            total_byte_size: Precision::Absent,
            column_statistics: vec![ColumnStatistics::new_unknown(), d],
        }))
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("v", DataType::Int64, true),
            Field::new("d", DataType::Date32, true),
        ]))
    }

    /// `SELECT d, v FROM files WHERE v > 0` sorted per partition by `d`, over `groups`.
    fn sorted_scan(groups: Vec<Vec<PartitionedFile>>, descending: bool) -> Arc<dyn ExecutionPlan> {
        let schema = schema();
        let config = FileScanConfigBuilder::new(
            ObjectStoreUrl::local_filesystem(),
            Arc::new(ParquetSource::new(Arc::clone(&schema))),
        )
        .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
        .build();
        let scan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
        let predicate = binary(
            col("v", &schema).expect("v"),
            Operator::Gt,
            lit(0i64),
            &schema,
        )
        .expect("predicate");
        let filter = Arc::new(FilterExec::try_new(predicate, scan).expect("filter"));
        let projection = Arc::new(
            ProjectionExec::try_new(
                vec![
                    (col("d", &schema).expect("d"), "d".to_owned()),
                    (col("v", &schema).expect("v"), "v".to_owned()),
                ],
                filter,
            )
            .expect("projection"),
        );
        let ordering = LexOrdering::new(vec![PhysicalSortExpr::new(
            col("d", &projection.schema()).expect("d"),
            SortOptions {
                descending,
                nulls_first: descending,
            },
        )])
        .expect("keys");
        Arc::new(SortExec::new(ordering, projection).with_preserve_partitioning(true))
    }

    /// The file scan in `plan` (the first, depth first).
    fn scan_of(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
        let is_files = plan
            .downcast_ref::<DataSourceExec>()
            .is_some_and(|s| s.data_source().downcast_ref::<FileScanConfig>().is_some());
        if is_files {
            return Some(Arc::clone(plan));
        }
        plan.children().into_iter().find_map(scan_of)
    }

    /// The file names of each partition of the plan's scan.
    fn groups(plan: &Arc<dyn ExecutionPlan>) -> Vec<Vec<String>> {
        let scan = scan_of(plan).expect("a file scan");
        let config = scan
            .downcast_ref::<DataSourceExec>()
            .and_then(|s| s.data_source().downcast_ref::<FileScanConfig>())
            .expect("a file scan");
        config
            .file_groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|f| f.object_meta.location.to_string())
                    .collect()
            })
            .collect()
    }

    /// The partitioning the plan's scan declares.
    fn scan_partitioning(plan: &Arc<dyn ExecutionPlan>) -> String {
        let scan = scan_of(plan).expect("a file scan");
        scan.properties().output_partitioning().to_string()
    }

    fn month(m: i32) -> Option<(i32, i32)> {
        Some((m * 31, m * 31 + 27))
    }

    #[test]
    fn files_apart_are_dealt_by_range_and_their_partitions_follow_one_another() {
        // Six monthly files dealt by size into three overlapping groups.
        let files: Vec<PartitionedFile> = (0..6)
            .map(|m| file(&format!("m{m}"), 100, month(m), 0))
            .collect();
        let dealt = vec![
            vec![files[0].clone(), files[3].clone()],
            vec![files[1].clone(), files[4].clone()],
            vec![files[2].clone(), files[5].clone()],
        ];
        let plan = sorted_scan(dealt.clone(), false);
        assert_eq!(
            concatenation(&plan, 0, false, 1),
            None,
            "overlapping as dealt"
        );

        // Twice the scan's partitions: a month each.
        let ascending = regroup(Arc::clone(&plan));
        let months: Vec<Vec<String>> = (0..6).map(|m| vec![format!("m{m}")]).collect();
        assert_eq!(groups(&ascending), months);
        assert_eq!(
            ascending
                .properties()
                .output_partitioning()
                .partition_count(),
            6
        );
        assert_eq!(
            concatenation(&ascending, 0, false, 1),
            Some((0..6).collect())
        );
        // The scan declares its ranges: each partition begins at a split point.
        assert_eq!(
            scan_partitioning(&ascending),
            "Range([d@1 ASC NULLS LAST], [(1970-02-01), (1970-03-04), (1970-04-04), \
             (1970-05-05), (1970-06-05)], 6)"
        );
        // The same partitions read backwards for a descending order.
        assert_eq!(
            concatenation(&ascending, 0, true, 1),
            Some((0..6).rev().collect())
        );

        let descending = regroup(sorted_scan(dealt, true));
        assert_eq!(
            groups(&descending),
            months.into_iter().rev().collect::<Vec<_>>()
        );
        assert_eq!(
            concatenation(&descending, 0, true, 2),
            Some((0..6).collect())
        );
        assert_eq!(
            scan_partitioning(&descending),
            "Range([d@1 DESC], [(1970-06-01), (1970-05-01), (1970-03-31), (1970-02-28), \
             (1970-01-28)], 6)"
        );
        // Another column is not the one the files are apart in.
        assert_eq!(concatenation(&descending, 1, true, 1), None);
    }

    #[test]
    fn cuts_fall_only_where_the_ranges_part() {
        // a and b overlap (late rows of month 0 in a): they stay together.
        let files = [
            file("a", 100, Some((0, 40)), 0),
            file("b", 100, month(1), 0),
            file("c", 100, month(2), 0),
            file("d", 100, month(3), 0),
        ];
        let plan = sorted_scan(
            vec![
                vec![files[0].clone(), files[2].clone()],
                vec![files[1].clone(), files[3].clone()],
            ],
            false,
        );
        assert_eq!(
            groups(&regroup(plan)),
            vec![vec!["a", "b"], vec!["c"], vec!["d"]]
        );
    }

    #[test]
    fn ties_part_a_one_key_order_only() {
        let touching = vec![
            vec![file("a", 100, Some((0, 10)), 0)],
            vec![file("b", 100, Some((10, 20)), 0)],
        ];
        let plan = sorted_scan(touching, false);
        assert_eq!(concatenation(&plan, 0, false, 1), Some(vec![0, 1]));
        assert_eq!(concatenation(&plan, 0, false, 2), None);
        // Regrouping cuts strictly: these two are left as they are.
        assert_eq!(groups(&regroup(plan)), vec![vec!["a"], vec!["b"]]);
    }

    #[test]
    fn nulls_missing_statistics_or_uneven_groups_leave_the_plan_alone() {
        let dealt = |f: Vec<PartitionedFile>| {
            vec![
                vec![f[0].clone(), f[2].clone()],
                vec![f[1].clone(), f[3].clone()],
            ]
        };
        let as_dealt = vec![vec!["a", "c"], vec!["b", "d"]];
        let with = |first: PartitionedFile| {
            vec![
                first,
                file("b", 100, month(1), 0),
                file("c", 100, month(2), 0),
                file("d", 100, month(3), 0),
            ]
        };
        for first in [
            file("a", 100, month(0), 3),
            file("a", 100, None, 0),
            PartitionedFile::new("a", 100),
        ] {
            let plan = sorted_scan(dealt(with(first)), false);
            assert_eq!(groups(&regroup(Arc::clone(&plan))), as_dealt);
            assert_eq!(concatenation(&plan, 0, false, 1), None);
        }
        // A cut only after the first file: 50 bytes against 300, too uneven for two groups.
        let plan = sorted_scan(
            dealt(vec![
                file("a", 50, month(0), 0),
                file("b", 100, Some((31, 200)), 0),
                file("c", 100, month(2), 0),
                file("d", 100, month(3), 0),
            ]),
            false,
        );
        assert_eq!(groups(&regroup(plan)), as_dealt);
    }

    #[test]
    fn pieces_of_a_file_stay_in_one_partition() {
        let whole = |name: &str, m: i32| file(name, 200, month(m), 0);
        let half = |f: PartitionedFile, first: bool| {
            if first {
                f.with_range(0, 100)
            } else {
                f.with_range(100, 200)
            }
        };
        let plan = sorted_scan(
            vec![
                vec![half(whole("a", 0), true), half(whole("b", 1), false)],
                vec![half(whole("a", 0), false), half(whole("b", 1), true)],
            ],
            false,
        );
        assert_eq!(groups(&regroup(plan)), vec![vec!["a", "a"], vec!["b", "b"]]);
    }

    /// `SELECT * FROM build JOIN files ON k = v` (the files' columns after the build side's
    /// two) sorted per partition by output column `key`.
    fn sorted_join(
        groups: Vec<Vec<PartitionedFile>>,
        mode: PartitionMode,
        key: usize,
    ) -> Arc<dyn ExecutionPlan> {
        use datafusion::common::NullEquality;
        use datafusion::physical_plan::empty::EmptyExec;
        let probe = sorted_scan(groups, false).children()[0].children()[0].children()[0].clone();
        let build_schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let build: Arc<dyn ExecutionPlan> = Arc::new(EmptyExec::new(Arc::clone(&build_schema)));
        let on = vec![(
            col("k", &build_schema).expect("k"),
            col("v", &schema()).expect("v"),
        )];
        let join: Arc<dyn ExecutionPlan> = Arc::new(
            HashJoinExec::try_new(
                build,
                probe,
                on,
                None,
                &JoinType::Inner,
                None,
                mode,
                NullEquality::NullEqualsNothing,
                false,
            )
            .expect("join"),
        );
        let ordering = LexOrdering::new(vec![PhysicalSortExpr::new(
            Arc::new(Column::new(join.schema().field(key).name(), key)),
            SortOptions::default(),
        )])
        .expect("keys");
        Arc::new(SortExec::new(ordering, join).with_preserve_partitioning(true))
    }

    #[test]
    fn a_probe_sides_files_are_dealt_but_only_a_broadcast_join_keeps_them_apart() {
        let files: Vec<PartitionedFile> = (0..4)
            .map(|m| file(&format!("m{m}"), 100, month(m), 0))
            .collect();
        let dealt = vec![
            vec![files[0].clone(), files[2].clone()],
            vec![files[1].clone(), files[3].clone()],
        ];
        // Output column 3 is the probe side's `d`.
        for mode in [PartitionMode::CollectLeft, PartitionMode::Partitioned] {
            let plan = regroup(sorted_join(dealt.clone(), mode, 3));
            assert_eq!(
                groups(&plan),
                vec![vec!["m0"], vec!["m1"], vec!["m2"], vec!["m3"]]
            );
            // A partitioned join's partitions are not the scan's.
            let expected = (mode == PartitionMode::CollectLeft).then(|| vec![0, 1, 2, 3]);
            assert_eq!(concatenation(&plan, 3, false, 1), expected, "{mode:?}");
        }
        // A key of the build side: nothing to deal.
        let plan = regroup(sorted_join(dealt, PartitionMode::CollectLeft, 0));
        assert_eq!(groups(&plan), vec![vec!["m0", "m2"], vec!["m1", "m3"]]);
        assert_eq!(concatenation(&plan, 0, false, 1), None);
    }

    #[test]
    fn partitions_are_put_in_order_by_id() {
        let partition = |id: u32| tributary_proto::JobPartition {
            partition_id: id,
            ..Default::default()
        };
        let ids: Vec<u32> = reordered((0..4).map(partition).collect(), &[2, 0, 3])
            .iter()
            .map(|p| p.partition_id)
            .collect();
        assert_eq!(ids, vec![2, 0, 3, 1]);
    }
}
