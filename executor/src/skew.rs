//! Skewed partitions of partitioned joins, split where they run.
//!
//! A partitioned (shuffle) hash join runs one task per hash partition, so one hot key puts
//! most of a side's rows into one partition, and its task runs alone long after the others
//! finished, on one core. Before such a task joins, its executor asks whether the partition is
//! skewed: whether a side's partition holds at least `skew_join_factor` times the median
//! partition of the same shuffle and at least `skew_join_min_size` bytes. A skewed
//! partition is joined in pieces, in parallel ([`SkewJoin`]):
//!
//! - the probe (right) side skewed: its rows are dealt round-robin to `pieces` probes of one
//!   hash table built once from the build side's partition (a hash join collecting its left
//!   side, as a broadcast join does). Right for every join type: the join's build side
//!   records the rows all its probes matched, and the last probe emits the unmatched ones.
//! - the build (left) side skewed, for joins whose output depends on each build row alone
//!   (inner, left, left semi/anti/mark): its rows are dealt round-robin to `pieces` hash
//!   tables, each probed with the whole probe-side partition (read once per piece).
//!
//! The operators between the join and the stage's shuffle writer that work partition by
//! partition (projections, filters, partial aggregations: [`Above`]) run over the pieces too.
//!
//! Ballista narrows every reader of a task to the task's own partitions, so the sizes of the
//! other partitions come from this executor's own map tasks: [`WrittenSizes`] keeps, per
//! shuffle, the bytes each output partition got from the map tasks that ran here (a sample
//! of the shuffle written with the same hash), and a task compares its partition with their
//! median. An executor that ran none of a shuffle's map tasks splits nothing of it. Pieces
//! are as many as the executor's cores: the split pays off when the skewed task is the last
//! one running, with the other cores idle.
//!
//! EXPLAIN ANALYZE shows it on the join: `skewed_partitions_split` and `skew_split_pieces`
//! (and the pieces' own join metrics); executors count splits in
//! `tributary_executor_skew_splits_total`.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use ballista_core::execution_plans::ShuffleReaderExec;
use ballista_core::serde::protobuf::ShuffleWritePartition;
use datafusion::common::JoinType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning,
    PlanProperties, ReplaceChildrenOptions,
};
use tributary_telemetry::QueryTelemetry;
use tributary_telemetry::prometheus::IntCounter;

use crate::delegate::delegate_plan_to;

/// Shuffles whose partition sizes an executor keeps (the most recent ones).
const KEPT_SHUFFLES: usize = 64;

/// Bytes per output partition of the shuffles this executor's map tasks wrote.
#[derive(Debug, Default)]
pub(crate) struct WrittenSizes {
    shuffles: Mutex<VecDeque<Written>>,
}

#[derive(Debug)]
struct Written {
    job_id: String,
    stage_id: usize,
    /// Bytes per output partition, summed over the map tasks that ran here.
    bytes: Vec<u64>,
}

impl WrittenSizes {
    /// Adds what a map task of `stage_id` wrote into a shuffle of `partitions` partitions.
    pub(crate) fn record(
        &self,
        job_id: &str,
        stage_id: usize,
        partitions: usize,
        written: &[ShuffleWritePartition],
    ) {
        let mut shuffles = self.shuffles.lock().unwrap_or_else(PoisonError::into_inner);
        let at = shuffles
            .iter()
            .position(|w| w.job_id == job_id && w.stage_id == stage_id);
        let mut entry = match at.and_then(|i| shuffles.remove(i)) {
            Some(entry) => entry,
            None => Written {
                job_id: job_id.to_owned(),
                stage_id,
                bytes: vec![0; partitions],
            },
        };
        for part in written {
            if let Some(bytes) = usize::try_from(part.partition_id)
                .ok()
                .and_then(|i| entry.bytes.get_mut(i))
            {
                *bytes += part.num_bytes;
            }
        }
        shuffles.push_front(entry);
        shuffles.truncate(KEPT_SHUFFLES);
    }

    /// How many times the median partition of `stage_id`'s shuffle (as written here)
    /// `partition` holds; `None` when no map task of that shuffle ran here.
    fn ratio_to_median(&self, job_id: &str, stage_id: usize, partition: usize) -> Option<f64> {
        let shuffles = self.shuffles.lock().unwrap_or_else(PoisonError::into_inner);
        let written = shuffles
            .iter()
            .find(|w| w.job_id == job_id && w.stage_id == stage_id)?;
        let own = *written.bytes.get(partition)?;
        let mut sorted = written.bytes.clone();
        sorted.sort_unstable();
        // The lower median: of two partitions, one far above the other is skew.
        let median = sorted[(sorted.len() - 1) / 2];
        Some(own as f64 / median.max(1) as f64)
    }
}

/// What a task needs to split its skewed join partitions.
#[derive(Debug, Clone)]
pub(crate) struct SkewContext {
    pub(crate) job_id: String,
    pub(crate) enabled: bool,
    pub(crate) factor: u64,
    pub(crate) min_bytes: u64,
    /// Pieces a skewed partition is joined in.
    pub(crate) pieces: usize,
    pub(crate) sizes: Arc<WrittenSizes>,
    /// `tributary_executor_skew_splits_total`.
    pub(crate) splits: IntCounter,
}

impl SkewContext {
    /// The query's settings, as its tasks carry them.
    pub(crate) fn new(
        job_id: &str,
        settings: &QueryTelemetry,
        sizes: Arc<WrittenSizes>,
        splits: IntCounter,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            job_id: job_id.to_owned(),
            enabled: settings.skew_join_enabled,
            factor: settings.skew_join_factor.max(1),
            min_bytes: settings.skew_join_min_bytes,
            pieces: cores.clamp(2, 16),
            sizes,
            splits,
        }
    }
}

/// `plan` (a task's stage plan) with each partitioned hash join over two shuffles able to
/// split its skewed partitions.
pub(crate) fn split_skewed(
    plan: Arc<dyn ExecutionPlan>,
    context: &SkewContext,
) -> Result<Arc<dyn ExecutionPlan>> {
    if !context.enabled {
        return Ok(plan);
    }
    plan.transform_down(|node| {
        let Some(wrapped) = wrap(&node, context, true)? else {
            return Ok(Transformed::no(node));
        };
        Ok(Transformed::new(wrapped, true, TreeNodeRecursion::Jump))
    })
    .map(|t| t.data)
}

/// `node` wrapped when it is a splittable join ([`SkewJoin`]) or a partition-wise operator
/// above one ([`Above`]; `top`: the topmost of them), with what is below it down to the join.
fn wrap(
    node: &Arc<dyn ExecutionPlan>,
    context: &SkewContext,
    top: bool,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if let Some(join) = node.downcast_ref::<HashJoinExec>() {
        let splittable = *join.partition_mode() == PartitionMode::Partitioned
            && join.properties().output_ordering().is_none()
            && reader(join.left()).is_some()
            && reader(join.right()).is_some();
        return Ok(splittable.then(|| {
            Arc::new(SkewJoin::new(Arc::clone(node), context.clone())) as Arc<dyn ExecutionPlan>
        }));
    }
    if !partition_wise(node) {
        return Ok(None);
    }
    let Some(input) = node.children().into_iter().next() else {
        return Ok(None);
    };
    let Some(below) = wrap(input, context, false)? else {
        return Ok(None);
    };
    let inner = Arc::clone(node).replace_children(
        vec![below],
        ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
    )?;
    Ok(Some(Arc::new(Above::new(inner, top))))
}

/// The shuffle reader under a join input, through operators of one input that keep its
/// partitions.
fn reader(input: &Arc<dyn ExecutionPlan>) -> Option<&ShuffleReaderExec> {
    if let Some(reader) = input.downcast_ref::<ShuffleReaderExec>() {
        return (!reader.broadcast).then_some(reader);
    }
    let children = input.children();
    let [child] = children.as_slice() else {
        return None;
    };
    let keeps = input.properties().output_partitioning().partition_count()
        == child.properties().output_partitioning().partition_count();
    if keeps { reader(child) } else { None }
}

/// One side of one join partition, as the shuffle wrote it.
#[derive(Debug, Clone, Copy)]
struct SideSize {
    /// The partition's number in the shuffle (the task reads a slice of them).
    global: usize,
    bytes: u64,
    stage_id: usize,
}

fn side_size(input: &Arc<dyn ExecutionPlan>, partition: usize) -> Option<SideSize> {
    let reader = reader(input)?;
    let locations = reader.partition.get(partition)?;
    let global = locations.first()?.partition_id.partition_id;
    Some(SideSize {
        global,
        bytes: locations
            .iter()
            .filter_map(|l| l.partition_stats.num_bytes())
            .sum(),
        stage_id: reader.stage_id,
    })
}

/// Which side of a skewed partition is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    Probe,
    Build,
}

/// A partitioned hash join that joins a skewed partition in pieces; otherwise the join itself
/// (name, display, children, properties and downcasts), with the pieces' metrics added.
pub(crate) struct SkewJoin {
    join: Arc<dyn ExecutionPlan>,
    context: SkewContext,
    metrics: ExecutionPlanMetricsSet,
    /// The plans skewed partitions ran as (their joins' metrics are reported with the join's).
    pieces: Mutex<Vec<Arc<dyn ExecutionPlan>>>,
}

impl SkewJoin {
    fn new(join: Arc<dyn ExecutionPlan>, context: SkewContext) -> Self {
        Self {
            join,
            context,
            metrics: ExecutionPlanMetricsSet::new(),
            pieces: Mutex::default(),
        }
    }

    fn hash_join(&self) -> &HashJoinExec {
        self.join
            .downcast_ref::<HashJoinExec>()
            .expect("SkewJoin wraps a HashJoinExec")
    }

    /// Whether `partition` is skewed, and on which side. (A join with a row limit is left
    /// whole: each piece would apply the limit; so is a null-aware anti join, whose answer
    /// depends on every probe row.)
    fn split_of(&self, partition: usize) -> Option<(Split, SideSize, f64)> {
        let join = self.hash_join();
        if join.fetch().is_some() || join.null_aware {
            return None;
        }
        let skewed = |side: Option<SideSize>| {
            let side = side?;
            if side.bytes < self.context.min_bytes {
                return None;
            }
            let ratio = self.context.sizes.ratio_to_median(
                &self.context.job_id,
                side.stage_id,
                side.global,
            )?;
            (ratio >= self.context.factor as f64).then_some((side, ratio))
        };
        if let Some((side, ratio)) = skewed(side_size(join.right(), partition)) {
            return Some((Split::Probe, side, ratio));
        }
        let build_rows_alone = matches!(
            join.join_type(),
            JoinType::Inner
                | JoinType::Left
                | JoinType::LeftSemi
                | JoinType::LeftAnti
                | JoinType::LeftMark
        );
        if build_rows_alone {
            return skewed(side_size(join.left(), partition))
                .map(|(side, ratio)| (Split::Build, side, ratio));
        }
        None
    }

    /// The plan joining `partition` in `pieces` partitions.
    fn pieces_plan(&self, split: Split, partition: usize) -> Result<Arc<dyn ExecutionPlan>> {
        let join = self.hash_join();
        let pieces = self.context.pieces;
        let collect_left = |left: Arc<dyn ExecutionPlan>, right: Arc<dyn ExecutionPlan>| {
            join.builder()
                .reset_state()
                .with_partition_mode(PartitionMode::CollectLeft)
                .with_new_children(vec![left, right])?
                .build_exec()
        };
        let left = PartitionOf::plan(Arc::clone(join.left()), partition);
        let right = PartitionOf::plan(Arc::clone(join.right()), partition);
        // The skewed side's rows dealt round-robin to the pieces.
        let dealt = |side: &Arc<dyn ExecutionPlan>| -> Result<Arc<dyn ExecutionPlan>> {
            Ok(Arc::new(RepartitionExec::try_new(
                PartitionOf::plan(Arc::clone(side), partition),
                Partitioning::RoundRobinBatch(pieces),
            )?))
        };
        match split {
            Split::Probe => collect_left(left, dealt(join.right())?),
            Split::Build => {
                let dealt = dealt(join.left())?;
                let joins = (0..pieces)
                    .map(|piece| {
                        collect_left(
                            PartitionOf::plan(Arc::clone(&dealt), piece),
                            Arc::clone(&right),
                        )
                    })
                    .collect::<Result<Vec<_>>>()?;
                UnionExec::try_new(joins)
            }
        }
    }
}

impl fmt::Debug for SkewJoin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SkewJoin")
            .field("join", &self.join)
            .finish_non_exhaustive()
    }
}

delegate_plan_to!(SkewJoin, join);

impl ExecutionPlan for SkewJoin {
    delegate_plan_to!(join);

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let join = Arc::clone(&self.join).replace_children(children, options)?;
        Ok(Arc::new(Self::new(join, self.context.clone())))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        match self.pieces(partition)? {
            Some(plan) => CoalescePartitionsExec::new(plan).execute(0, context),
            None => self.join.execute(partition, context),
        }
    }

    fn metrics(&self) -> Option<MetricsSet> {
        let mut set = self.join.metrics().unwrap_or_default();
        for metric in self.metrics.clone_inner().iter() {
            set.push(Arc::clone(metric));
        }
        let pieces = self.pieces.lock().unwrap_or_else(PoisonError::into_inner);
        for plan in pieces.iter() {
            // The pieces' joins; the readers below them are the join's own (reported there).
            let _ = plan.apply(|node| {
                if node.downcast_ref::<PartitionOf>().is_some() {
                    return Ok(TreeNodeRecursion::Jump);
                }
                if node.downcast_ref::<HashJoinExec>().is_some()
                    && let Some(metrics) = node.metrics()
                {
                    for metric in metrics.iter() {
                        set.push(Arc::clone(metric));
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            });
        }
        Some(set)
    }
}

impl SkewJoin {
    /// When `partition` is skewed: the plan joining it in pieces, of as many partitions as
    /// pieces (counted, logged, and kept for the join's metrics).
    fn pieces(&self, partition: usize) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some((split, side, ratio)) = self.split_of(partition) else {
            return Ok(None);
        };
        let plan = self.pieces_plan(split, partition)?;
        tracing::info!(
            job_id = %self.context.job_id,
            partition = side.global,
            bytes = side.bytes,
            ratio = format!("{ratio:.1}"),
            side = ?split,
            pieces = self.context.pieces,
            "skewed join partition split"
        );
        MetricBuilder::new(&self.metrics)
            .counter("skewed_partitions_split", partition)
            .add(1);
        MetricBuilder::new(&self.metrics)
            .counter("skew_split_pieces", partition)
            .add(self.context.pieces);
        self.context.splits.inc();
        self.pieces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&plan));
        Ok(Some(plan))
    }
}

/// An operator between a [`SkewJoin`] and the stage's shuffle writer that works partition by
/// partition (a projection, a filter, a partial aggregation), so that a skewed partition's
/// pieces run through it in parallel too: the topmost ([`Above::top`]) runs a skewed
/// partition as a copy of the operators down to the join over the join's pieces, each copy
/// kept by the operator it copies for its metrics. Otherwise the operator itself.
pub(crate) struct Above {
    inner: Arc<dyn ExecutionPlan>,
    top: bool,
    /// Copies that ran a skewed partition's pieces.
    copies: Mutex<Vec<Arc<dyn ExecutionPlan>>>,
}

impl Above {
    fn new(inner: Arc<dyn ExecutionPlan>, top: bool) -> Self {
        Self {
            inner,
            top,
            copies: Mutex::default(),
        }
    }

    /// The operators from this one down to the join, and the join.
    fn chain(&self) -> Option<(Vec<&Above>, &SkewJoin)> {
        let mut levels = vec![self];
        loop {
            let below = levels.last()?.inner.children().into_iter().next()?;
            if let Some(join) = concrete::<SkewJoin>(below) {
                return Some((levels, join));
            }
            levels.push(concrete::<Above>(below)?);
        }
    }

    /// A copy of this operator over `input`, kept for the metrics.
    fn copy_over(&self, input: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        let copy = Arc::clone(&self.inner).replace_children(
            vec![input],
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )?;
        self.copies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&copy));
        Ok(copy)
    }
}

impl fmt::Debug for Above {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Above")
            .field("inner", &self.inner)
            .field("top", &self.top)
            .finish_non_exhaustive()
    }
}

delegate_plan_to!(Above, inner);

impl ExecutionPlan for Above {
    delegate_plan_to!(inner);

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let inner = Arc::clone(&self.inner).replace_children(children, options)?;
        Ok(Arc::new(Self::new(inner, self.top)))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let chain = if self.top { self.chain() } else { None };
        let Some((levels, join)) = chain else {
            return self.inner.execute(partition, context);
        };
        let Some(mut plan) = join.pieces(partition)? else {
            return self.inner.execute(partition, context);
        };
        for level in levels.iter().rev() {
            plan = level.copy_over(plan)?;
        }
        CoalescePartitionsExec::new(plan).execute(0, context)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        let mut set = self.inner.metrics()?;
        for copy in self
            .copies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            for metric in copy.metrics().iter().flat_map(|m| m.iter()) {
                set.push(Arc::clone(metric));
            }
        }
        Some(set)
    }
}

/// `plan` as the wrapper it is (`downcast_ref` looks through wrappers to what they wrap).
fn concrete<T: 'static>(plan: &Arc<dyn ExecutionPlan>) -> Option<&T> {
    (plan.as_ref() as &dyn std::any::Any).downcast_ref::<T>()
}

/// Whether `plan` works partition by partition, whatever its input's partitions hold.
fn partition_wise(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.children().len() == 1
        && (plan.downcast_ref::<ProjectionExec>().is_some()
            || plan.downcast_ref::<FilterExec>().is_some()
            || plan
                .downcast_ref::<AggregateExec>()
                .is_some_and(|a| *a.mode() == AggregateMode::Partial))
}

/// One partition of `input`, as a plan of one partition.
#[derive(Debug)]
struct PartitionOf {
    input: Arc<dyn ExecutionPlan>,
    partition: usize,
    properties: Arc<PlanProperties>,
}

impl PartitionOf {
    fn plan(input: Arc<dyn ExecutionPlan>, partition: usize) -> Arc<dyn ExecutionPlan> {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(input.schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Arc::new(Self {
            input,
            partition,
            properties,
        })
    }
}

impl DisplayAs for PartitionOf {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PartitionOf: partition={}", self.partition)
    }
}

impl ExecutionPlan for PartitionOf {
    fn name(&self) -> &str {
        "PartitionOf"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_expr::PhysicalExpr>,
        ) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match children.pop() {
            Some(input) if children.is_empty() => Ok(Self::plan(input, self.partition)),
            _ => datafusion::common::internal_err!("PartitionOf has one input"),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return datafusion::common::internal_err!(
                "PartitionOf has one partition, asked for {partition}"
            );
        }
        self.input.execute(self.partition, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::common::NullEquality;
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::physical_expr::expressions::col;
    use datafusion::physical_plan::common::collect;

    /// One partition of `(name, name_value)` rows in batches of two rows.
    fn side(name: &str, keys: &[Option<i64>]) -> Arc<dyn ExecutionPlan> {
        let schema = Arc::new(Schema::new(vec![
            Field::new(name, DataType::Int64, true),
            Field::new(format!("{name}_value"), DataType::Int64, false),
        ]));
        let batches = keys
            .chunks(2)
            .enumerate()
            .map(|(n, chunk)| {
                RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![
                        Arc::new(Int64Array::from(chunk.to_vec())),
                        Arc::new(Int64Array::from_iter_values(
                            (0..chunk.len() as i64).map(|i| n as i64 * 10 + i),
                        )),
                    ],
                )
                .expect("test batch")
            })
            .collect::<Vec<_>>();
        MemorySourceConfig::try_new_exec(&[batches], schema, None).expect("memory exec")
    }

    fn skew_join(join_type: JoinType) -> SkewJoin {
        // The build side's key 1 and the probe side's key 2 are hot; 7 and 8 match nothing.
        let left = side(
            "l",
            &[
                Some(1),
                Some(1),
                Some(1),
                Some(2),
                Some(1),
                None,
                Some(7),
                Some(1),
                Some(3),
            ],
        );
        let right = side(
            "r",
            &[
                Some(2),
                Some(2),
                Some(1),
                Some(2),
                None,
                Some(8),
                Some(2),
                Some(3),
                Some(2),
                Some(2),
            ],
        );
        let on = vec![(
            col("l", &left.schema()).expect("l"),
            col("r", &right.schema()).expect("r"),
        )];
        let join = HashJoinExec::try_new(
            left,
            right,
            on,
            None,
            &join_type,
            None,
            PartitionMode::Partitioned,
            NullEquality::NullEqualsNothing,
            false,
        )
        .expect("join");
        let context = SkewContext {
            job_id: "job".into(),
            enabled: true,
            factor: 5,
            min_bytes: 0,
            pieces: 3,
            sizes: Arc::default(),
            splits: IntCounter::new("splits", "test").expect("counter"),
        };
        SkewJoin::new(Arc::new(join), context)
    }

    async fn sorted_rows(stream: SendableRecordBatchStream) -> Vec<String> {
        let batches = collect(stream).await.expect("rows");
        let text = pretty_format_batches(&batches).expect("format").to_string();
        let mut rows: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("| ") && !l.contains("_value"))
            .map(str::to_owned)
            .collect();
        rows.sort();
        rows
    }

    #[tokio::test]
    async fn a_partition_joined_in_pieces_gives_the_join_s_rows() {
        let all = [
            JoinType::Inner,
            JoinType::Left,
            JoinType::Right,
            JoinType::Full,
            JoinType::LeftSemi,
            JoinType::LeftAnti,
            JoinType::RightSemi,
            JoinType::RightAnti,
            JoinType::LeftMark,
        ];
        let ctx = Arc::new(TaskContext::default());
        for join_type in all {
            let join = skew_join(join_type);
            let whole = sorted_rows(join.join.execute(0, Arc::clone(&ctx)).expect("join")).await;
            assert!(!whole.is_empty(), "{join_type}");
            let mut splits = vec![Split::Probe];
            if matches!(
                join_type,
                JoinType::Inner
                    | JoinType::Left
                    | JoinType::LeftSemi
                    | JoinType::LeftAnti
                    | JoinType::LeftMark
            ) {
                splits.push(Split::Build);
            }
            for split in splits {
                let plan = join.pieces_plan(split, 0).expect("pieces");
                assert_eq!(plan.properties().output_partitioning().partition_count(), 3);
                let stream = CoalescePartitionsExec::new(plan)
                    .execute(0, Arc::clone(&ctx))
                    .expect("pieces");
                let pieces = sorted_rows(stream).await;
                assert_eq!(pieces, whole, "{join_type} split on the {split:?} side");
            }
        }
    }

    #[test]
    fn a_partition_far_above_the_median_of_what_was_written_here_is_skewed() {
        let sizes = WrittenSizes::default();
        let written = |partition_id: u64, num_bytes: u64| ShuffleWritePartition {
            partition_id,
            num_bytes,
            ..Default::default()
        };
        // Two map tasks of stage 1 wrote into 4 partitions; partition 2 got the hot key.
        sizes.record(
            "job",
            1,
            4,
            &[written(0, 100), written(1, 120), written(2, 900)],
        );
        sizes.record(
            "job",
            1,
            4,
            &[written(0, 100), written(2, 700), written(3, 80)],
        );
        // Totals 200, 120, 1600, 80: lower median 120.
        let ratio = sizes.ratio_to_median("job", 1, 2).expect("recorded");
        assert!((ratio - 1600.0 / 120.0).abs() < 1e-9, "{ratio}");
        assert_eq!(sizes.ratio_to_median("job", 1, 1), Some(1.0));
        // Nothing written here of another stage or job, or past the shuffle's partitions.
        assert_eq!(sizes.ratio_to_median("job", 2, 2), None);
        assert_eq!(sizes.ratio_to_median("other", 1, 2), None);
        assert_eq!(sizes.ratio_to_median("job", 1, 9), None);
        // Only the most recent shuffles are kept.
        for stage in 10..10 + KEPT_SHUFFLES {
            sizes.record("job", stage, 4, &[written(0, 1)]);
        }
        assert_eq!(sizes.ratio_to_median("job", 1, 2), None);
        assert!(
            sizes
                .ratio_to_median("job", 10 + KEPT_SHUFFLES - 1, 0)
                .is_some()
        );
    }

    /// A partitioned join of two shuffle readers of stage 1 and 2 (no locations).
    fn join_of_readers() -> Arc<dyn ExecutionPlan> {
        let memory = skew_join(JoinType::Inner);
        let join = memory.hash_join();
        let reader = |stage: usize, side: &Arc<dyn ExecutionPlan>| {
            let schema = side.schema();
            let key = col(schema.field(0).name(), &schema).expect("key");
            Arc::new(
                ShuffleReaderExec::try_new(
                    stage,
                    vec![Vec::new(); 2],
                    schema,
                    Partitioning::Hash(vec![key], 2),
                )
                .expect("reader"),
            ) as Arc<dyn ExecutionPlan>
        };
        join.builder()
            .with_new_children(vec![reader(1, join.left()), reader(2, join.right())])
            .and_then(|b| b.build_exec())
            .expect("join")
    }

    #[test]
    fn the_operators_above_a_join_of_two_shuffles_run_its_pieces_too() {
        use datafusion::physical_expr::expressions::lit;
        let context = skew_join(JoinType::Inner).context;
        let join = join_of_readers();
        let filter: Arc<dyn ExecutionPlan> =
            Arc::new(FilterExec::try_new(lit(true), Arc::clone(&join)).expect("filter"));
        let schema = filter.schema();
        let projection: Arc<dyn ExecutionPlan> = Arc::new(
            ProjectionExec::try_new(
                vec![(col("l", &schema).expect("l"), "l".to_owned())],
                filter,
            )
            .expect("projection"),
        );
        let plan = split_skewed(Arc::clone(&projection), &context).expect("plan");
        let top = concrete::<Above>(&plan).expect("the projection runs the pieces");
        let (levels, _join) = top.chain().expect("down to the join");
        assert_eq!(levels.len(), 2, "projection and filter");
        assert!(top.top && !levels[1].top);
        // Seen through the wrappers, the plan is the same.
        assert!(plan.downcast_ref::<ProjectionExec>().is_some());
        assert_eq!(
            datafusion::physical_plan::displayable(plan.as_ref())
                .indent(true)
                .to_string(),
            datafusion::physical_plan::displayable(projection.as_ref())
                .indent(true)
                .to_string()
        );
        // A join alone is wrapped itself; off, nothing is.
        let alone = split_skewed(Arc::clone(&join), &context).expect("plan");
        assert!(concrete::<SkewJoin>(&alone).is_some());
        let off = SkewContext {
            enabled: false,
            ..context
        };
        let plan = split_skewed(Arc::clone(&projection), &off).expect("plan");
        assert!(Arc::ptr_eq(&plan, &projection));
    }

    #[test]
    fn only_partitioned_joins_over_two_shuffles_are_wrapped() {
        let context = skew_join(JoinType::Inner).context;
        // Read from memory, not from shuffles: left alone.
        let join = skew_join(JoinType::Inner).join;
        let plan = split_skewed(Arc::clone(&join), &context).expect("plan");
        assert!(Arc::ptr_eq(&plan, &join));
    }
}
