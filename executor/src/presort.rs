//! Ordered results over broadcast joins, sorted before the join.
//!
//! A stage that sorts a broadcast join's output (an ORDER BY over a join, each partition
//! sorted before the result's merge) sorts the joined rows: every row already carries the build
//! side's columns (the seed's query: product names and categories gathered for 6.9 M orders,
//! then moved again by the sort). A `CollectLeft` hash join keeps its probe side's order,
//! partition by partition (inner, right, right semi/anti/mark joins; DataFusion's
//! `maintains_input_order`), so when every sort key is a probe column the probe side's
//! narrower rows can be sorted instead, below the join, and the join's output is in order.
//!
//! [`presort_below_joins`] does that in each task's plan, on the executor, where the join is
//! what Ballista's adaptive planner chose from measured sizes: the sort goes under the deepest
//! broadcast join its keys pass (through projections, filters and further joins' probe sides),
//! and is kept only when DataFusion's equivalence properties of the rewritten plan show the
//! original ordering. The stage's plan on the scheduler, its output ordering, partitioning and
//! shuffle are unchanged: only what the task does to reach the same sorted partitions differs.
//! (Placing the sort at planning time, on the scheduler, was tried: the join there is not
//! chosen yet, and a sorted input under an exchange makes Ballista's adaptive planner read
//! that shuffle with an ordered merge that assumed sorted runs a task's output does not have.)
//!
//! The scheduler lines a task's operator metrics up with its own plan by position (pre-order,
//! operators with metrics). The rewrite moves one operator, so [`Moved`] records where the sort
//! runs and where the scheduler expects it, and the task reports its metrics in the
//! scheduler's order: EXPLAIN ANALYZE shows the sort where the plan has it, its rows the
//! probe rows it sorted, and [`PRESORTED_ROWS`] says it ran below the join.
//!
//! Left alone: a sort with a fetch (a top-k keeps few rows; sorting every probe row first would
//! cost more), a sort merging partitions into one, keys that are not plain columns, keys from
//! a build side, partitioned joins. A join that drops most probe rows makes the presort sort
//! rows the join then drops; broadcast joins are mostly joins of facts to their dimensions,
//! which keep them.

use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{JoinSide, Result};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::utils::build_join_schema;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::metrics::{Count, Metric, MetricValue, MetricsSet};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, ExecutionPlan, ExecutionPlanProperties, ReplaceChildrenOptions,
};

/// The metric a sort moved below a join adds to its metrics: the probe rows it sorted.
pub(crate) const PRESORTED_ROWS: &str = "presorted_probe_rows";

/// A sort key: a column of the plan it is followed through, and its direction.
type Key = (usize, SortOptions);

/// One sort the rewrite moved: its position among the task plan's operators with metrics
/// (pre-order, as Ballista collects them) where it runs, and where the scheduler's plan has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Moved {
    runs_at: usize,
    planned_at: usize,
}

/// `plan` (a task's stage plan) with each sort of a broadcast join's output moved below the
/// join, onto its probe side, where that keeps the sort's order; the moves made.
pub(crate) fn presort_below_joins(
    plan: Arc<dyn ExecutionPlan>,
) -> Result<(Arc<dyn ExecutionPlan>, Vec<Moved>)> {
    let mut placed = Vec::new();
    let plan = plan
        .transform_down(|node| {
            let Some(sort) = node.downcast_ref::<SortExec>() else {
                return Ok(Transformed::no(node));
            };
            match below_join(sort)? {
                Some(found) => {
                    let input = Arc::clone(&found.input);
                    placed.push(found);
                    Ok(Transformed::new(input, true, TreeNodeRecursion::Jump))
                }
                None => Ok(Transformed::no(node)),
            }
        })?
        .data;
    // Positions in the final plan (an earlier move's ancestors were rebuilt by later ones).
    let moves = placed
        .iter()
        .filter_map(|found| {
            Some(Moved {
                runs_at: position(&plan, &found.sort)?,
                planned_at: position(&plan, &found.input)?,
            })
        })
        .collect();
    Ok((plan, moves))
}

/// `metrics` (a task's, in the order of its plan) in the order of the plan before `moves`, the
/// moved sorts' sets marked with [`PRESORTED_ROWS`].
pub(crate) fn planned_order(mut metrics: Vec<MetricsSet>, moves: &[Moved]) -> Vec<MetricsSet> {
    // The moves were made top down; undo them bottom up.
    for moved in moves.iter().rev() {
        if moved.runs_at >= metrics.len() || moved.planned_at > moved.runs_at {
            continue;
        }
        let mut set = metrics.remove(moved.runs_at);
        let count = Count::new();
        count.add(set.output_rows().unwrap_or(0));
        set.push(Arc::new(Metric::new(
            MetricValue::Count {
                name: PRESORTED_ROWS.into(),
                count,
            },
            None,
        )));
        metrics.insert(moved.planned_at, set);
    }
    metrics
}

/// A sort placed below a join: the plan that replaces the sort, and the sort inside it.
struct Placed {
    input: Arc<dyn ExecutionPlan>,
    sort: Arc<dyn ExecutionPlan>,
}

/// The plan that replaces `sort`, its rows sorted below a broadcast join; `None` when the way
/// down meets no such join, or the rewritten plan would not keep the order.
fn below_join(sort: &SortExec) -> Result<Option<Placed>> {
    let merges =
        !sort.preserve_partitioning() && sort.input().output_partitioning().partition_count() > 1;
    if merges || sort.fetch().is_some() {
        return Ok(None);
    }
    let Some(keys) = sort
        .expr()
        .iter()
        .map(|key| Some((key.expr.downcast_ref::<Column>()?.index(), key.options)))
        .collect::<Option<Vec<Key>>>()
    else {
        return Ok(None);
    };
    let Some(placed) = below(sort.input(), &keys)? else {
        return Ok(None);
    };
    let keeps_order = placed
        .input
        .equivalence_properties()
        .ordering_satisfy(sort.expr().iter().cloned())?;
    Ok(keeps_order.then_some(placed))
}

/// `plan` with its rows sorted by `keys` (its columns) right above the probe input of the
/// deepest broadcast join the keys pass on the way down; `None` when they pass none.
fn below(plan: &Arc<dyn ExecutionPlan>, keys: &[Key]) -> Result<Option<Placed>> {
    let followed = if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
        keys.iter()
            .map(|(column, options)| {
                let expr = &projection.expr().get(*column)?.expr;
                Some((expr.downcast_ref::<Column>()?.index(), *options))
            })
            .collect::<Option<Vec<Key>>>()
    } else if let Some(filter) = plan.downcast_ref::<FilterExec>() {
        match filter.projection() {
            Some(projection) => keys
                .iter()
                .map(|(column, options)| Some((*projection.get(*column)?, *options)))
                .collect(),
            None => Some(keys.to_vec()),
        }
    } else if plan.is::<CooperativeExec>() {
        Some(keys.to_vec())
    } else if let Some(join) = plan.downcast_ref::<HashJoinExec>() {
        return below_probe(plan, join, keys);
    } else {
        None
    };
    let children = plan.children();
    let (Some(keys), [child]) = (followed, children.as_slice()) else {
        return Ok(None);
    };
    let Some(placed) = below(child, &keys)? else {
        return Ok(None);
    };
    Ok(Some(Placed {
        input: with_children(plan, vec![placed.input])?,
        sort: placed.sort,
    }))
}

/// `plan` (the broadcast join `join`) with its probe rows sorted by `keys` (its output
/// columns): below a deeper broadcast join they pass, or right above its probe input.
fn below_probe(
    plan: &Arc<dyn ExecutionPlan>,
    join: &HashJoinExec,
    keys: &[Key],
) -> Result<Option<Placed>> {
    let keeps_probe_order = plan.maintains_input_order().get(1).copied() == Some(true);
    if join.mode != PartitionMode::CollectLeft || !keeps_probe_order {
        return Ok(None);
    }
    let (_, sides) = build_join_schema(
        &join.left().schema(),
        &join.right().schema(),
        join.join_type(),
    );
    let Some(probe_keys) = keys
        .iter()
        .map(|(column, options)| {
            let unprojected = match &join.projection {
                Some(projection) => *projection.get(*column)?,
                None => *column,
            };
            let side = sides.get(unprojected)?;
            (side.side == JoinSide::Right).then_some((side.index, *options))
        })
        .collect::<Option<Vec<Key>>>()
    else {
        return Ok(None);
    };
    let probe = join.right();
    let Some(placed) = below(probe, &probe_keys)?.or_else(|| sorted(probe, &probe_keys)) else {
        return Ok(None);
    };
    Ok(Some(Placed {
        input: with_children(plan, vec![Arc::clone(join.left()), placed.input])?,
        sort: placed.sort,
    }))
}

/// `plan` sorted by `keys` (its columns), partition by partition.
fn sorted(plan: &Arc<dyn ExecutionPlan>, keys: &[Key]) -> Option<Placed> {
    let schema = plan.schema();
    let ordering = LexOrdering::new(keys.iter().map(|(index, options)| PhysicalSortExpr {
        expr: Arc::new(Column::new(schema.field(*index).name(), *index)),
        options: *options,
    }))?;
    let sort: Arc<dyn ExecutionPlan> =
        Arc::new(SortExec::new(ordering, Arc::clone(plan)).with_preserve_partitioning(true));
    Some(Placed {
        input: Arc::clone(&sort),
        sort,
    })
}

/// `plan` with `children`, its properties recomputed.
fn with_children(
    plan: &Arc<dyn ExecutionPlan>,
    children: Vec<Arc<dyn ExecutionPlan>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    Arc::clone(plan).replace_children(
        children,
        ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
    )
}

/// The position of `node` among `plan`'s operators with metrics, in pre-order (where the
/// scheduler expects its metrics): the number of such operators before it.
fn position(plan: &Arc<dyn ExecutionPlan>, node: &Arc<dyn ExecutionPlan>) -> Option<usize> {
    fn walk(
        plan: &Arc<dyn ExecutionPlan>,
        node: &Arc<dyn ExecutionPlan>,
        seen: &mut usize,
    ) -> bool {
        if std::ptr::addr_eq(Arc::as_ptr(plan), Arc::as_ptr(node)) {
            return true;
        }
        if plan.metrics().is_some() {
            *seen += 1;
        }
        plan.children()
            .into_iter()
            .any(|child| walk(child, node, seen))
    }
    let mut seen = 0;
    walk(plan, node, &mut seen).then_some(seen)
}

#[cfg(test)]
mod tests;
