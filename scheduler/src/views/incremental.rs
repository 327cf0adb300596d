//! When a refresh may read only new rows. If the one source that changed only had rows
//! appended, and the view's query is made of scans, filters, projections and inner joins
//! (each row of the result comes from one row of that source), then the query over the new
//! rows gives exactly the new result rows: they are appended to the storage. If the query
//! ends in an aggregation of `count`, `sum`, `min` and `max` (no DISTINCT, no FILTER), the
//! new rows' groups are merged into the stored groups with `sum`, `min` and `max`.

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan};

/// How a view's stored rows take new rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Appended.
    Append,
    /// Merged, per output column (in the view's column order).
    Merge(Vec<Merge>),
}

/// How one column of an aggregating view is merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Merge {
    /// A group key.
    Key,
    /// Summed (`count`, `sum`).
    Sum,
    /// Smallest.
    Min,
    /// Largest.
    Max,
}

/// How `plan` (a view's query with names resolved) can take the rows appended to the source
/// `changed` (`catalog.schema.table`), or `None` when it must be recomputed.
pub(crate) fn shape(plan: &LogicalPlan, changed: &str) -> Option<Shape> {
    if scans_of(plan, changed) != 1 {
        return None;
    }
    let LogicalPlan::Projection(projection) = plan else {
        return None;
    };
    let LogicalPlan::Aggregate(aggregate) = projection.input.as_ref() else {
        return linear(plan).then_some(Shape::Append);
    };
    if !linear(&aggregate.input) {
        return None;
    }
    // Grouping sets regroup the rows several ways: recomputed.
    if aggregate
        .group_expr
        .iter()
        .any(|e| matches!(e, Expr::GroupingSet(_)))
    {
        return None;
    }
    let groups = aggregate.group_expr.len();
    let output = aggregate.schema.as_ref();
    let mut merges = Vec::with_capacity(projection.expr.len());
    for expr in &projection.expr {
        let Expr::Column(column) = unalias(expr) else {
            return None;
        };
        let index = output.index_of_column(column).ok()?;
        if index < groups {
            merges.push(Merge::Key);
            continue;
        }
        let Expr::AggregateFunction(function) = unalias(aggregate.aggr_expr.get(index - groups)?)
        else {
            return None;
        };
        let params = &function.params;
        if params.distinct || params.filter.is_some() || !params.order_by.is_empty() {
            return None;
        }
        merges.push(match function.func.name() {
            "count" | "sum" => Merge::Sum,
            "min" => Merge::Min,
            "max" => Merge::Max,
            _ => return None,
        });
    }
    // Every group key must be a column of the view, once: else stored groups cannot be told
    // apart when merging.
    let keys: Vec<usize> = projection
        .expr
        .iter()
        .filter_map(|e| match unalias(e) {
            Expr::Column(c) => output.index_of_column(c).ok().filter(|i| *i < groups),
            _ => None,
        })
        .collect();
    let distinct: std::collections::BTreeSet<usize> = keys.iter().copied().collect();
    if distinct.len() != groups || keys.len() != groups {
        return None;
    }
    Some(Shape::Merge(merges))
}

fn unalias(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => unalias(&alias.expr),
        other => other,
    }
}

/// How many scans of `source` the plan has.
fn scans_of(plan: &LogicalPlan, source: &str) -> usize {
    let mut count = 0;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && super::source_key(&scan.table_name).as_deref() == Some(source)
        {
            count += 1;
        }
        Ok(TreeNodeRecursion::Continue)
    });
    count
}

/// Only scans, filters, projections, aliases and inner joins, without subqueries.
fn linear(plan: &LogicalPlan) -> bool {
    let mut ok = true;
    let _ = plan.apply_with_subqueries(|node| {
        ok &= match node {
            LogicalPlan::TableScan(_)
            | LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::SubqueryAlias(_) => true,
            LogicalPlan::Join(join) => join.join_type == JoinType::Inner,
            _ => false,
        };
        Ok(if ok {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    ok
}
