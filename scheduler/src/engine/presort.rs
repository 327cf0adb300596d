//! Ordered results over broadcast joins, sorted before the join. A result's partition sort
//! (`result_order`) sorts the join's output: every row already carries the build side's
//! columns (the seed's query: product names and categories, gathered for 6.9 M rows and then
//! moved again by the sort). A broadcast (`CollectLeft`) inner hash join keeps its probe
//! side's order, partition by partition, so when every sort key comes from the probe side
//! the probe side's narrower rows can be sorted instead, below the join.
//!
//! [`presort`] places a `SortExec` keeping partitions under a `SortedInputExec` (connectors/spi)
//! as the probe input of the deepest such join the keys pass (through projections, filters
//! and further joins' probe sides). The node requires that order, so DataFusion's sort
//! enforcement (`EnsureRequirements`) keeps the sort. Jobs' joins are planned before
//! Ballista's adaptive planner chooses them from measured sizes (as its stand-in,
//! [`UNCHOSEN_JOIN`], or as DataFusion's partitioned joins): the sort goes under a join only
//! where statistics expect a broadcast of its other side (`explain::joins::expected_broadcast`,
//! what EXPLAIN shows; hints and `join_distribution_type` included), below the repartition and
//! sort the join was planned with. Once the adaptive planner has chosen the broadcast and
//! optimizes the final stage again, the join's output satisfies the result's sort, which sort
//! enforcement removes. If it partitions the join after all, the sorted rows go through
//! Ballista's order-keeping shuffle and the answer is the same.
//!
//! Left alone: a sort with a fetch (a TopK keeps few rows; sorting every probe row first
//! would cost more), keys that are not plain columns, keys from a build side.

use std::sync::Arc;

use arrow::compute::SortOptions;
use datafusion::common::JoinType;
use datafusion::config::ConfigOptions;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode, SortMergeJoinExec};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{ExecutionPlan, displayable};
use tributary_connector::{EstimateExec, SortedInputExec};

use super::range_partitions::{by_position, with_children};
use crate::explain::joins::expected_broadcast;

/// A sort key: a column of the plan it is followed through, and its direction.
type Key = (usize, SortOptions);

/// The name of Ballista's adaptive planner's stand-in for a join it chooses once its inputs'
/// sizes are measured (the type is not public). Its children are the join's inputs, unsorted
/// and not yet repartitioned; sessions plan a job's joins as such.
const UNCHOSEN_JOIN: &str = "DynamicJoinSelectionExec";

/// `plan` with its result sort's rows sorted below the broadcast joins they pass, when all
/// its keys come from their probe sides; `plan` unchanged otherwise. `options`: the session's
/// (the broadcast thresholds).
pub(crate) fn presort(
    plan: Arc<dyn ExecutionPlan>,
    options: &ConfigOptions,
) -> Arc<dyn ExecutionPlan> {
    Presort { options }.result(&plan).unwrap_or(plan)
}

struct Presort<'a> {
    options: &'a ConfigOptions,
}

impl Presort<'_> {
    fn result(&self, plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
        // The result sort, under the projections that cast the result to the client's types.
        if let Some(sort) = plan.downcast_ref::<SortExec>() {
            if !sort.preserve_partitioning() || sort.fetch().is_some() {
                return None;
            }
            let keys = sort
                .expr()
                .iter()
                .map(|key| Some((key.expr.downcast_ref::<Column>()?.index(), key.options)))
                .collect::<Option<Vec<Key>>>()?;
            let input = self.below_joins(sort.input(), &keys)?;
            return with_children(plan, vec![input]);
        }
        let projection = plan.downcast_ref::<ProjectionExec>()?;
        let input = self.result(projection.input())?;
        with_children(plan, vec![input])
    }

    /// `plan` with its rows sorted by `keys` (its columns) under the deepest broadcast join
    /// on the way down; `None` when the way meets no such join, or ends first.
    fn below_joins(
        &self,
        plan: &Arc<dyn ExecutionPlan>,
        keys: &[Key],
    ) -> Option<Arc<dyn ExecutionPlan>> {
        let (child, keys): (Arc<dyn ExecutionPlan>, Vec<Key>) =
            if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
                let keys = keys
                    .iter()
                    .map(|(column, options)| {
                        let expr = &projection.expr().get(*column)?.expr;
                        Some((expr.downcast_ref::<Column>()?.index(), *options))
                    })
                    .collect::<Option<_>>()?;
                (Arc::clone(projection.input()), keys)
            } else if let Some(filter) = plan.downcast_ref::<FilterExec>() {
                let keys = match filter.projection() {
                    Some(projection) => keys
                        .iter()
                        .map(|(column, options)| Some((*projection.get(*column)?, *options)))
                        .collect::<Option<_>>()?,
                    None => keys.to_vec(),
                };
                (Arc::clone(filter.input()), keys)
            } else if plan.is::<EstimateExec>() || plan.is::<CooperativeExec>() {
                (Arc::clone(plan.children().first()?), keys.to_vec())
            } else if plan.is::<HashJoinExec>() || plan.is::<SortMergeJoinExec>() {
                return self.below_join(plan, keys);
            } else if plan.name() == UNCHOSEN_JOIN {
                return self.below_unchosen_join(plan, keys);
            } else {
                return None;
            };
        let input = self.below_joins(&child, &keys)?;
        with_children(plan, vec![input])
    }

    /// `plan`, an inner join planned by DataFusion, with the side every key comes from (the
    /// join's output columns) sorted by them; `None` for other joins, keys from both sides,
    /// or a side not expected to be the probe side of a broadcast.
    fn below_join(
        &self,
        plan: &Arc<dyn ExecutionPlan>,
        keys: &[Key],
    ) -> Option<Arc<dyn ExecutionPlan>> {
        let (join_type, projection, broadcast) =
            if let Some(join) = plan.downcast_ref::<HashJoinExec>() {
                (
                    *join.join_type(),
                    join.projection.as_deref(),
                    *join.partition_mode() == PartitionMode::CollectLeft,
                )
            } else {
                let join = plan.downcast_ref::<SortMergeJoinExec>()?;
                (join.join_type(), None, false)
            };
        if join_type != JoinType::Inner {
            return None;
        }
        let children = plan.children();
        let [left, _] = children.as_slice() else {
            return None;
        };
        let left = left.schema().fields().len();
        let at = keys
            .iter()
            .map(|(column, _)| {
                let column = match projection {
                    Some(projection) => *projection.get(*column)?,
                    None => *column,
                };
                Some(if column < left {
                    (0, column)
                } else {
                    (1, column - left)
                })
            })
            .collect::<Option<Vec<(usize, usize)>>>()?;
        // A broadcast builds its left side (a partitioned join is yet to be chosen).
        if broadcast && at.iter().any(|(side, _)| *side == 0) {
            return None;
        }
        self.below_side(plan, keys, &at, !broadcast)
    }

    /// `plan`, a join not chosen yet ([`UNCHOSEN_JOIN`]), with the side every key comes from
    /// sorted by them; `None` unless it is an inner join whose output columns are its
    /// inputs', one after the other (the stand-in of a sort-merge join; one with a
    /// projection of its own is left alone: the projection cannot be read), and the other
    /// side is expected to be broadcast.
    fn below_unchosen_join(
        &self,
        plan: &Arc<dyn ExecutionPlan>,
        keys: &[Key],
    ) -> Option<Arc<dyn ExecutionPlan>> {
        // Its join type only shows in its display.
        let shown = displayable(plan.as_ref()).one_line().to_string();
        if !shown.contains("join_type=Inner,") {
            return None;
        }
        let at = keys
            .iter()
            .map(|(column, _)| by_position(plan, *column))
            .collect::<Option<Vec<(usize, usize)>>>()?;
        self.below_side(plan, keys, &at, true)
    }

    /// `join` with its input `at` names (every key's side and column there; one side for
    /// all) sorted by the keys, when that side is the probe side of an expected broadcast
    /// (checked by statistics when `estimate`, else known).
    fn below_side(
        &self,
        join: &Arc<dyn ExecutionPlan>,
        keys: &[Key],
        at: &[(usize, usize)],
        estimate: bool,
    ) -> Option<Arc<dyn ExecutionPlan>> {
        let side = at.first()?.0;
        if at.iter().any(|(s, _)| *s != side) {
            return None;
        }
        let mut children: Vec<Arc<dyn ExecutionPlan>> =
            join.children().into_iter().map(Arc::clone).collect();
        let probe = children.get(side)?;
        let build = children.get(1 - side)?;
        if estimate && !expected_broadcast(build, probe, self.options) {
            return None;
        }
        let keys: Vec<Key> = at
            .iter()
            .zip(keys)
            .map(|((_, column), (_, options))| (*column, *options))
            .collect();
        let sorted = self.sort_below(probe, &keys)?;
        *children.get_mut(side)? = sorted;
        with_children(join, children)
    }

    /// A join's input sorted by `keys` (its columns): below the repartition and sort the
    /// join was planned with (gone when it becomes a broadcast), below a further broadcast
    /// join, or else right here.
    fn sort_below(
        &self,
        input: &Arc<dyn ExecutionPlan>,
        keys: &[Key],
    ) -> Option<Arc<dyn ExecutionPlan>> {
        let planned_for_join = input.is::<RepartitionExec>()
            || input
                .downcast_ref::<SortExec>()
                .is_some_and(|s| s.preserve_partitioning() && s.fetch().is_none());
        if planned_for_join {
            let child = self.sort_below(input.children().first()?, keys)?;
            return with_children(input, vec![child]);
        }
        self.below_joins(input, keys)
            .or_else(|| sorted_input(input, keys))
    }
}

/// `input` sorted by `keys`, partition by partition, and required so.
fn sorted_input(input: &Arc<dyn ExecutionPlan>, keys: &[Key]) -> Option<Arc<dyn ExecutionPlan>> {
    let schema = input.schema();
    let keys = keys
        .iter()
        .map(|(column, options)| {
            let name = schema.fields().get(*column)?.name();
            Some(PhysicalSortExpr::new(
                Arc::new(Column::new(name, *column)),
                *options,
            ))
        })
        .collect::<Option<Vec<_>>>()?;
    let ordering = LexOrdering::new(keys)?;
    let sort = SortExec::new(ordering.clone(), Arc::clone(input)).with_preserve_partitioning(true);
    Some(Arc::new(SortedInputExec::new(Arc::new(sort), ordering)))
}

#[cfg(test)]
mod tests;
