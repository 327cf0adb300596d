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

mod join;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use ballista_core::execution_plans::ShuffleReaderExec;
use ballista_core::serde::protobuf::ShuffleWritePartition;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{ChildrenPropertiesMode, ExecutionPlan, ReplaceChildrenOptions};
use tributary_telemetry::QueryTelemetry;
use tributary_telemetry::prometheus::IntCounter;

use join::{Above, SkewJoin};

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

#[cfg(test)]
mod tests {
    use super::join::Split;
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::common::JoinType;
    use datafusion::common::NullEquality;
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::execution::{SendableRecordBatchStream, TaskContext};
    use datafusion::physical_expr::expressions::col;
    use datafusion::physical_plan::Partitioning;
    use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
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
