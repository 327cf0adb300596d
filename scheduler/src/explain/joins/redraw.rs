//! EXPLAIN (TYPE DISTRIBUTED)'s joins drawn as the adaptive planner is expected to run them,
//! before Ballista's static planner cuts the stages.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::config::ConfigOptions;
use datafusion::physical_expr::PhysicalExprRef;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode, SortMergeJoinExec};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    ReplaceChildrenOptions,
};

use super::Expected;

/// `plan` (a physical plan before staging) with each join drawn as the adaptive planner is
/// expected to run it (`expected`, from [`super::decide`] on the same plan, in the same pre-order),
/// the smaller input first (built):
/// - BROADCAST: a hash join collecting its build side into one partition, its inputs not
///   shuffled on the join keys;
/// - PARTITIONED: a hash join of two inputs shuffled on the join keys into
///   `target_partitions` partitions (the adaptive planner shuffles both sides of a
///   partitioned join; DataFusion alone may plan a sort-merge join, or no shuffle of a side
///   it sees in one partition).
///
/// Ballista's static stage planner then cuts the stages the job will really have: a broadcast
/// build side in a stage of its own, read whole by the join's stage, and the probe side not
/// shuffled; each side of a partitioned join in its own stage.
pub(crate) fn as_expected(
    plan: Arc<dyn ExecutionPlan>,
    expected: &[Expected],
    options: &ConfigOptions,
) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    let mut next = 0;
    redraw(
        plan,
        expected,
        options.execution.target_partitions,
        &mut next,
    )
}

fn redraw(
    plan: Arc<dyn ExecutionPlan>,
    expected: &[Expected],
    partitions: usize,
    next: &mut usize,
) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    let is_join = plan.downcast_ref::<HashJoinExec>().is_some()
        || plan.downcast_ref::<SortMergeJoinExec>().is_some();
    let decision = if is_join {
        *next += 1;
        expected.get(*next - 1)
    } else {
        None
    };
    let children = plan
        .children()
        .into_iter()
        .map(|child| redraw(Arc::clone(child), expected, partitions, next))
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let plan = if children.is_empty() {
        plan
    } else {
        plan.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )?
    };
    match decision {
        Some(d) if d.distribution == "BROADCAST" => broadcast(plan, d.build_right),
        Some(d) => partitioned(plan, d.build_right, partitions),
        None => Ok(plan),
    }
}

/// A join as a hash join of its inputs without shuffles or sorts on the keys (`None`: not a
/// join).
fn unshuffled_hash_join(
    join: &Arc<dyn ExecutionPlan>,
) -> datafusion::error::Result<Option<HashJoinExec>> {
    if let Some(hash) = join.downcast_ref::<HashJoinExec>() {
        return Ok(Some(
            hash.builder()
                .reset_state()
                .with_new_children(vec![unshuffled(hash.left()), unshuffled(hash.right())])?
                .build()?,
        ));
    }
    let Some(merge) = join.downcast_ref::<SortMergeJoinExec>() else {
        return Ok(None);
    };
    Ok(Some(HashJoinExec::try_new(
        unshuffled(merge.left()),
        unshuffled(merge.right()),
        merge.on().to_vec(),
        merge.filter().clone(),
        &merge.join_type(),
        None,
        PartitionMode::Partitioned,
        merge.null_equality(),
        false,
    )?))
}

/// A join as a partitioned hash join building `build_right ? right : left`, both inputs
/// shuffled on their keys into `partitions` partitions.
fn partitioned(
    join: Arc<dyn ExecutionPlan>,
    build_right: bool,
    partitions: usize,
) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    let Some(hash) = unshuffled_hash_join(&join)? else {
        return Ok(join);
    };
    let shuffled = |input: &Arc<dyn ExecutionPlan>, keys: Vec<PhysicalExprRef>| {
        RepartitionExec::try_new(
            Arc::clone(input),
            Partitioning::Hash(keys, partitions.max(1)),
        )
        .map(|r| Arc::new(r) as Arc<dyn ExecutionPlan>)
    };
    let left = shuffled(
        hash.left(),
        hash.on().iter().map(|(l, _)| Arc::clone(l)).collect(),
    )?;
    let right = shuffled(
        hash.right(),
        hash.on().iter().map(|(_, r)| Arc::clone(r)).collect(),
    )?;
    let hash = hash
        .builder()
        .with_partition_mode(PartitionMode::Partitioned)
        .with_new_children(vec![left, right])?
        .build()?;
    if build_right {
        hash.swap_inputs(PartitionMode::Partitioned)
    } else {
        Ok(Arc::new(hash))
    }
}

/// A join as a broadcast hash join building `build_right ? right : left`.
fn broadcast(
    join: Arc<dyn ExecutionPlan>,
    build_right: bool,
) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    if join
        .downcast_ref::<HashJoinExec>()
        .is_some_and(|hash| *hash.partition_mode() == PartitionMode::CollectLeft)
    {
        return Ok(join);
    }
    let Some(hash) = unshuffled_hash_join(&join)? else {
        return Ok(join);
    };
    let collected = if build_right {
        hash.swap_inputs(PartitionMode::CollectLeft)?
    } else {
        Arc::new(
            hash.builder()
                .with_partition_mode(PartitionMode::CollectLeft)
                .build()?,
        )
    };
    // The build side in one partition (`swap_inputs` may put a projection above the join).
    collected
        .transform_down(|node| {
            let Some(hash) = node.downcast_ref::<HashJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            let left = Arc::clone(hash.left());
            let left: Arc<dyn ExecutionPlan> = if left.output_partitioning().partition_count() > 1 {
                Arc::new(CoalescePartitionsExec::new(left))
            } else {
                left
            };
            let right = Arc::clone(hash.right());
            Ok(Transformed::new(
                Arc::new(
                    hash.builder()
                        .with_new_children(vec![left, right])?
                        .build()?,
                ),
                true,
                TreeNodeRecursion::Stop,
            ))
        })
        .map(|t| t.data)
}

/// A join input without the shuffle (and, for a sort-merge join, the sort) on its keys.
fn unshuffled(input: &Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    let mut input = Arc::clone(input);
    loop {
        let below = if let Some(repartition) = input.downcast_ref::<RepartitionExec>() {
            match repartition.partitioning() {
                Partitioning::Hash(..) => Arc::clone(repartition.input()),
                _ => return input,
            }
        } else if let Some(sort) = input.downcast_ref::<SortExec>() {
            if sort.fetch().is_some() {
                // A top-N, not a sort for the join.
                return input;
            }
            Arc::clone(sort.input())
        } else {
            return input;
        };
        input = below;
    }
}
