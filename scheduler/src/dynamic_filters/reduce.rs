//! Joins that keep one side whole — semi, anti and outer joins, the kept side being the one
//! whose rows they return — cannot broadcast that side (each executor would decide its rows
//! from its own share of the other side), so when it is small and the other side large, both
//! are shuffled: TPC-H SF1 Q4 shuffles 3.8 M lineitems to keep 57 K orders, Q22 1.5 M orders
//! to keep 19 K customers. The kept side's keys are too many to list as a dynamic filter
//! (`dynamic_filtering_max_distinct_values`), so they are joined in the job instead: the large
//! side becomes `keys(kept side) RIGHT SEMI JOIN large side`, whose build side — a copy of the
//! kept side's keys, run again in the job beside the original — is small enough to be
//! broadcast. Only the large side's rows whose keys the kept side holds are shuffled; the
//! others could not have matched, so the answer is the same (the semi join matches equal,
//! non-NULL keys, as the reduced join does).
//!
//! Chosen by statistics: the kept side has a predicate (else its keys are likely every key),
//! holds at most a quarter of the other side's rows, reads no more rows than the other side
//! and at most `dynamic_filtering_max_build_rows` (it runs twice), and the other side holds at
//! least [`Settings::min_reduced_rows`] rows (fewer shuffle quickly). A kept side with a limit
//! or a volatile function is left alone: its second run could return other rows. So is a side
//! a list of values already filters (a dynamic filter's keys, or the query's own `IN`).

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, JoinType, NullEquality};
use datafusion::logical_expr::{Expr, Join, JoinConstraint, LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::SessionContext;

use super::Settings;
use super::candidates::has_predicate;
use crate::estimates::estimate;

/// How many times the kept side's rows the other side must hold.
const REDUCE_FACTOR: usize = 4;

/// `plan` with the large sides of its joins that keep a small side whole reduced to the rows
/// whose keys that side holds, and one line per reduced join; `None` when no join qualifies.
pub(super) async fn reduce(
    ctx: &SessionContext,
    plan: &LogicalPlan,
    settings: &Settings,
) -> Option<(LogicalPlan, Vec<String>)> {
    let mut joins = Vec::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::Join(join) = node {
            joins.push(join.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    let mut chosen = Vec::new();
    let mut lines = Vec::new();
    for (index, join) in joins.iter().enumerate() {
        let Some(kept_is_left) = kept_side(join) else {
            continue;
        };
        let (kept, other) = if kept_is_left {
            (&join.left, &join.right)
        } else {
            (&join.right, &join.left)
        };
        let (kept_keys, other_keys) = keys(join, kept_is_left);
        if !has_predicate(kept) || !repeatable(kept) || filtered_by_a_list(other) {
            continue;
        }
        let (Some(k), Some(o)) = (estimate(ctx, kept).await, estimate(ctx, other).await) else {
            continue;
        };
        if o.output < settings.min_reduced_rows
            || o.output < k.output.saturating_mul(REDUCE_FACTOR)
            || k.sources > o.sources
            || k.sources > settings.max_build_rows
        {
            continue;
        }
        lines.push(format!(
            "{} reduced by the {} side's {}: only its rows whose keys that side holds are \
             shuffled ({} join keeps ~{} rows of its {} side whole; the other side ~{} rows, \
             by statistics)",
            list(&other_keys),
            if kept_is_left { "left" } else { "right" },
            list(&kept_keys),
            join.join_type,
            k.output,
            if kept_is_left { "left" } else { "right" },
            o.output,
        ));
        chosen.push((index, kept_is_left));
    }
    if chosen.is_empty() {
        return None;
    }
    let mut index = 0;
    match rewrite(plan.clone(), &chosen, &mut index) {
        Ok(reduced) => Some((reduced, lines)),
        Err(e) => {
            tracing::debug!("joins not reduced: {e}");
            None
        }
    }
}

/// Which side a join keeps whole (`true`: the left), when it can be reduced: equal keys that
/// match no NULL, and not a null-aware anti join (`NOT IN`: a NULL key on the other side
/// empties the answer, and the reduction drops NULL keys).
fn kept_side(join: &Join) -> Option<bool> {
    if join.on.is_empty()
        || join.null_equality != NullEquality::NullEqualsNothing
        || join.null_aware
    {
        return None;
    }
    match join.join_type {
        JoinType::LeftSemi | JoinType::LeftAnti | JoinType::Left => Some(true),
        JoinType::RightSemi | JoinType::RightAnti | JoinType::Right => Some(false),
        _ => None,
    }
}

/// Whether a side returns the same rows when run again in the job: no limit (which rows it
/// keeps is not fixed) and no volatile function (`random()`).
fn repeatable(plan: &LogicalPlan) -> bool {
    !plan
        .exists(|node| {
            let volatile = node.expressions().iter().any(|e| e.is_volatile());
            Ok(volatile || matches!(node, LogicalPlan::Limit(_)))
        })
        .unwrap_or(true)
}

/// Whether a side is already filtered by a list of values (a dynamic filter's keys, TPC-H
/// Q20's aggregate of lineitems carried its parts' keys; or the query's own `IN (…)`):
/// reducing it again would run the kept side twice for little, and estimating it (planning
/// its lists) costs more than it would save.
fn filtered_by_a_list(side: &LogicalPlan) -> bool {
    side.exists(|node| match node {
        LogicalPlan::Filter(filter) => filter
            .predicate
            .exists(|e| Ok(matches!(e, Expr::InList(_)))),
        _ => Ok(false),
    })
    .unwrap_or(false)
}

/// The join's keys on its kept side and on the other side.
fn keys(join: &Join, kept_is_left: bool) -> (Vec<Expr>, Vec<Expr>) {
    let (left, right): (Vec<Expr>, Vec<Expr>) = join.on.iter().cloned().unzip();
    if kept_is_left {
        (left, right)
    } else {
        (right, left)
    }
}

fn list(keys: &[Expr]) -> String {
    keys.iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `plan` with the other side of each chosen join (`(pre-order index, kept_is_left)`)
/// reduced; joins are numbered before their inputs are rewritten, as they were found.
fn rewrite(
    plan: LogicalPlan,
    chosen: &[(usize, bool)],
    index: &mut usize,
) -> datafusion::error::Result<LogicalPlan> {
    let LogicalPlan::Join(join) = plan else {
        return Ok(plan
            .map_children(|child| rewrite(child, chosen, index).map(Transformed::yes))?
            .data);
    };
    let this = *index;
    *index += 1;
    let left = Arc::new(rewrite(Arc::unwrap_or_clone(join.left), chosen, index)?);
    let right = Arc::new(rewrite(Arc::unwrap_or_clone(join.right), chosen, index)?);
    let mut join = Join {
        left,
        right,
        ..join
    };
    if let Some((_, kept_is_left)) = chosen.iter().find(|(i, _)| *i == this) {
        let (kept_keys, other_keys) = keys(&join, *kept_is_left);
        if *kept_is_left {
            join.right = Arc::new(reduced(&join.left, &kept_keys, &join.right, &other_keys)?);
        } else {
            join.left = Arc::new(reduced(&join.right, &kept_keys, &join.left, &other_keys)?);
        }
    }
    Ok(LogicalPlan::Join(join))
}

/// `keys(kept) RIGHT SEMI JOIN other`: the rows of `other` whose keys `kept` holds, in
/// `other`'s schema.
fn reduced(
    kept: &Arc<LogicalPlan>,
    kept_keys: &[Expr],
    other: &Arc<LogicalPlan>,
    other_keys: &[Expr],
) -> datafusion::error::Result<LogicalPlan> {
    let names: Vec<String> = (0..kept_keys.len())
        .map(|i| format!("__reduce_key_{i}"))
        .collect();
    let keys = LogicalPlanBuilder::from(kept.as_ref().clone())
        .project(
            kept_keys
                .iter()
                .zip(&names)
                .map(|(key, name)| key.clone().alias(name)),
        )?
        .build()?;
    let on = names
        .iter()
        .zip(other_keys)
        .map(|(name, key)| (Expr::Column(Column::new_unqualified(name)), key.clone()))
        .collect();
    Ok(LogicalPlan::Join(Join::try_new(
        Arc::new(keys),
        Arc::clone(other),
        on,
        None,
        JoinType::RightSemi,
        JoinConstraint::On,
        NullEquality::NullEqualsNothing,
        false,
    )?))
}
