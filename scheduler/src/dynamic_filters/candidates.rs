//! Which joins a dynamic filter can serve, and which of their sides builds: decided by the
//! joins' types and keys and by their sides' statistics.

use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{JoinType, NullEquality};
use datafusion::logical_expr::{Expr, Join, LogicalPlan};
use datafusion::prelude::SessionContext;

use super::Settings;
use super::probe::reaches_an_aggregate;
use crate::estimates::{Estimate, estimate};

/// How many times fewer rows than its probe side a build side must read to be run whatever
/// its estimated output.
const CHEAP_BUILD_FACTOR: usize = 4;

/// A join that can take a dynamic filter: which side builds, and its keys on each side.
#[derive(Debug)]
pub(super) struct Candidate {
    /// Position of the join in a pre-order walk of the plan.
    pub(super) index: usize,
    pub(super) build_is_left: bool,
    pub(super) build: Arc<LogicalPlan>,
    pub(super) build_keys: Vec<Expr>,
    pub(super) probe_keys: Vec<Expr>,
    /// Whether the collected keys can stand in for the build side in the job: a semi join
    /// on plain columns with no other condition, whose build side only decides which probe
    /// rows are kept.
    pub(super) reusable: bool,
    /// Whether keys past `max_distinct` are collected as ranges (a second run of the build
    /// side): not for one collected only to stand in for its build side.
    pub(super) ranges: bool,
}

/// The joins of `plan` that a dynamic filter can serve: inner joins and semi joins on equal
/// keys (NULL matching nothing). A semi join's build side is the side that only decides which
/// rows of the other are kept; an inner join's is decided by [`orient`].
pub(super) fn candidates(plan: &LogicalPlan) -> Vec<(usize, Join)> {
    let mut found = Vec::new();
    let mut index = 0;
    let _ = plan.apply(|node| {
        if let LogicalPlan::Join(join) = node {
            if !join.on.is_empty()
                && join.null_equality == NullEquality::NullEqualsNothing
                && matches!(
                    join.join_type,
                    JoinType::Inner | JoinType::LeftSemi | JoinType::RightSemi
                )
            {
                found.push((index, join.clone()));
            }
            index += 1;
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// A join's build side, when one suits a dynamic filter, by statistics: it has a predicate
/// (else its keys are likely every key of its table); it is the smaller side of an inner join;
/// it is expected to hold few enough keys to list (at most `max_distinct` rows: a range alone
/// seldom prunes much), or it reads at most a quarter of the probe side's rows and its keys
/// would also filter another join's aggregating side; its sources hold at most
/// `max_build_rows` rows and fewer than the probe side's (collecting reads them: it must cost
/// less than what it may save); the probe side's sources hold at least a batch of rows
/// (`min_probe_rows`). A semi join's aggregate
/// filtered by a predicate (`HAVING`) whose keys can stand in for it is judged by its sources
/// alone (`max_reused_build_rows`): its output cannot be estimated, and it does not run twice.
pub(super) async fn orient(
    ctx: &SessionContext,
    plan: &LogicalPlan,
    index: usize,
    join: &Join,
    settings: &Settings,
) -> Option<Candidate> {
    let reusable = reusable(join);
    let small =
        |e: &Estimate| e.output <= settings.max_distinct && e.sources <= settings.max_build_rows;
    // The HAVING subquery of a semi join, for which statistics say nothing.
    let having = |side: &LogicalPlan| reusable && filters_an_aggregate(side);
    let fits = |side: &LogicalPlan, e: &Estimate| {
        small(e) || (having(side) && e.sources <= settings.max_reused_build_rows)
    };
    // The sides that may build: a side with a predicate. Where only one may, it is
    // estimated first, and most joins stop there (planning a side to estimate it costs
    // milliseconds).
    let (left_may, right_may) = match join.join_type {
        JoinType::LeftSemi => (false, has_predicate(&join.right)),
        JoinType::RightSemi => (has_predicate(&join.left), false),
        JoinType::Inner => (has_predicate(&join.left), has_predicate(&join.right)),
        _ => (false, false),
    };
    let (left_keys, right_keys): (Vec<Expr>, Vec<Expr>) = join.on.iter().cloned().unzip();
    // Whether the keys, built on that side, would reach an aggregating side: a dry run of the
    // rewrite, done once per side (the early check and the final one ask the same).
    let reached = std::sync::Mutex::new(None::<(bool, bool)>);
    let reaches = |build_is_left: bool| {
        // Copied out first: the lock is not held while the rewrite runs.
        let known = *reached.lock().unwrap_or_else(|e| e.into_inner());
        match known {
            Some((side, reaches)) if side == build_is_left => reaches,
            _ => {
                let (build_keys, probe_keys) = if build_is_left {
                    (&left_keys, &right_keys)
                } else {
                    (&right_keys, &left_keys)
                };
                let reaches =
                    reaches_an_aggregate(plan, index, build_is_left, build_keys, probe_keys);
                *reached.lock().unwrap_or_else(|e| e.into_inner()) = Some((build_is_left, reaches));
                reaches
            }
        }
    };
    let may_be_cheap = |build_is_left: bool, e: &Estimate| {
        e.sources <= settings.max_build_rows && reaches(build_is_left)
    };
    let (left_estimate, right_estimate) = match (left_may, right_may) {
        (false, false) => return None,
        (true, true) => (
            estimate(ctx, &join.left).await?,
            estimate(ctx, &join.right).await?,
        ),
        (only_left, _) => {
            let (side, other) = if only_left {
                (&join.left, &join.right)
            } else {
                (&join.right, &join.left)
            };
            let build = estimate(ctx, side).await?;
            if !(fits(side, &build) || may_be_cheap(only_left, &build)) {
                return None;
            }
            let other = estimate(ctx, other).await?;
            if only_left {
                (build, other)
            } else {
                (other, build)
            }
        }
    };
    let build_is_left = match join.join_type {
        JoinType::LeftSemi => false,
        JoinType::RightSemi => true,
        _ => left_estimate.output < right_estimate.output,
    };
    let (side, build, probe) = if build_is_left {
        (&join.left, left_estimate, right_estimate)
    } else {
        (&join.right, right_estimate, left_estimate)
    };
    // A build side expected to hold more keys than are listed is still run when it reads
    // far fewer rows than its probe side: its estimate may be a guess (DataFusion's default
    // 20% for `p_brand = 'Brand#23' AND p_container = 'MED BOX'`: 40,000 of TPC-H SF1's
    // 200,000 parts, where 204 match), and running it costs little beside what its keys may
    // save, if they would also be carried into an aggregating side of another join (TPC-H
    // Q17, Q20, Q2; a build side whose keys only filter its own probe side saves little
    // beside its broadcast join).
    let cheap = || {
        build.sources.saturating_mul(CHEAP_BUILD_FACTOR) <= probe.sources
            && may_be_cheap(build_is_left, &build)
    };
    // A probe side that reads less than one batch from its sources reads as fast as its
    // filter is collected (TPC-H's 25 nations filtered by their region's key).
    if !has_predicate(side)
        || !(fits(side, &build) || cheap())
        || (!having(side) && build.sources >= probe.sources)
        || probe.sources < settings.min_probe_rows
    {
        return None;
    }
    let (build_keys, probe_keys) = if build_is_left {
        (left_keys, right_keys)
    } else {
        (right_keys, left_keys)
    };
    Some(Candidate {
        index,
        build_is_left,
        build: Arc::clone(side),
        build_keys,
        probe_keys,
        reusable,
        ranges: small(&build),
    })
}

/// Whether a join's collected build keys can replace its build side: a semi join (the build
/// side only decides which probe rows are kept) on plain columns, with no other condition.
fn reusable(join: &Join) -> bool {
    let build_keys = || -> Vec<&Expr> {
        match join.join_type {
            JoinType::LeftSemi => join.on.iter().map(|(_, right)| right).collect(),
            _ => join.on.iter().map(|(left, _)| left).collect(),
        }
    };
    matches!(join.join_type, JoinType::LeftSemi | JoinType::RightSemi)
        && join.filter.is_none()
        && build_keys()
            .iter()
            .all(|key| matches!(key, Expr::Column(_)))
}

/// Whether a side filters the output of an aggregate (`GROUP BY … HAVING …`).
fn filters_an_aggregate(plan: &LogicalPlan) -> bool {
    plan.exists(|node| {
        Ok(matches!(node, LogicalPlan::Filter(filter)
            if matches!(filter.input.as_ref(), LogicalPlan::Aggregate(_))))
    })
    .unwrap_or(false)
}

/// Whether a side filters its rows (a `WHERE`, or one pushed into its scan).
pub(super) fn has_predicate(plan: &LogicalPlan) -> bool {
    plan.exists(|node| {
        Ok(match node {
            LogicalPlan::Filter(_) => true,
            LogicalPlan::TableScan(scan) => !scan.filters.is_empty(),
            _ => false,
        })
    })
    .unwrap_or(false)
}

pub(super) fn describe(candidate: &Candidate) -> String {
    let list = |keys: &[Expr]| {
        keys.iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{} from the {} side's {}",
        list(&candidate.probe_keys),
        if candidate.build_is_left {
            "left"
        } else {
            "right"
        },
        list(&candidate.build_keys),
    )
}
