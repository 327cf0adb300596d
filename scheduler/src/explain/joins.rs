//! The join lines of `EXPLAIN`: for each join, its distribution (BROADCAST: the build side
//! sent whole to every task; PARTITIONED: both sides shuffled on the keys), the build side,
//! the estimated sizes and the reason (hint, session property, statistics, run time).
//!
//! Ballista's adaptive planner decides joins while the job runs, so `EXPLAIN (TYPE
//! DISTRIBUTED)` shows what it is expected to choose from the same statistics and thresholds
//! ([`expected`]), and `EXPLAIN ANALYZE` what the finished job ran ([`chosen`]).

mod redraw;

use std::sync::Arc;

use ballista_core::config::BallistaConfig;
use datafusion::common::JoinType;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::physical_expr::PhysicalExprRef;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode, SortMergeJoinExec};
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use tributary_connector::EstimateExec;
use tributary_telemetry::data_size;

pub(crate) use redraw::as_expected;

/// One join of a plan.
struct JoinNode<'a> {
    join_type: JoinType,
    on: String,
    left: &'a Arc<dyn ExecutionPlan>,
    right: &'a Arc<dyn ExecutionPlan>,
    /// See [`signature`].
    signature: String,
    /// How it runs, when already decided (a final plan): BROADCAST or PARTITIONED, and how.
    ran_as: (&'static str, &'static str),
}

fn joins(plan: &Arc<dyn ExecutionPlan>) -> Vec<JoinNode<'_>> {
    let mut found = Vec::new();
    collect(plan, &mut found);
    found
}

/// `l = r AND …` of a join's key pairs.
fn keys(on: &[(PhysicalExprRef, PhysicalExprRef)]) -> String {
    on.iter()
        .map(|(l, r)| format!("{l} = {r}"))
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn collect<'a>(plan: &'a Arc<dyn ExecutionPlan>, found: &mut Vec<JoinNode<'a>>) {
    if let Some(hash) = plan.downcast_ref::<HashJoinExec>() {
        found.push(JoinNode {
            join_type: *hash.join_type(),
            on: keys(hash.on()),
            signature: signature(hash.on()),
            left: hash.left(),
            right: hash.right(),
            ran_as: match hash.partition_mode() {
                PartitionMode::CollectLeft => ("BROADCAST", "hash join, build side collected once"),
                _ => ("PARTITIONED", "hash join"),
            },
        });
    } else if let Some(merge) = plan.downcast_ref::<SortMergeJoinExec>() {
        found.push(JoinNode {
            join_type: merge.join_type(),
            on: keys(merge.on()),
            signature: signature(merge.on()),
            left: merge.left(),
            right: merge.right(),
            ran_as: ("PARTITIONED", "sort-merge join"),
        });
    }
    for child in plan.children() {
        collect(child, found);
    }
}

/// The hint placed on a join input, if any (looked for down to the next join).
fn hint(side: &Arc<dyn ExecutionPlan>) -> Option<String> {
    if let Some(estimate) = side.downcast_ref::<EstimateExec>() {
        return Some(estimate.reason().to_owned());
    }
    if side.downcast_ref::<HashJoinExec>().is_some()
        || side.downcast_ref::<SortMergeJoinExec>().is_some()
    {
        return None;
    }
    side.children().into_iter().find_map(hint)
}

/// A size as the statistics give it: `~1.2 MB, ~25 rows` (`~` for estimates).
fn size(stats: Sizes) -> String {
    let mark = |p: &Precision<usize>| if p.is_exact() == Some(true) { "" } else { "~" };
    let bytes = match stats.0.get_value() {
        Some(b) => format!("{}{}", mark(&stats.0), data_size(*b)),
        None => "size unknown".to_owned(),
    };
    match stats.1.get_value() {
        Some(r) => format!("{bytes}, {}{r} rows", mark(&stats.1)),
        None => bytes,
    }
}

type Sizes = (Precision<usize>, Precision<usize>);

/// The statistics Ballista decides from: (bytes, rows), hinted sizes included. Without a
/// byte size, bytes are estimated from the rows as Ballista does: each column's byte size
/// when known, else rows x its width (20 bytes for variable-width values, 100 for binary).
fn statistics(plan: &Arc<dyn ExecutionPlan>) -> Sizes {
    estimated_statistics(plan).0
}

/// [`statistics`], and whether the bytes were estimated from the rows (Ballista then also
/// holds the rows to `broadcast_join_threshold_rows`).
fn estimated_statistics(plan: &Arc<dyn ExecutionPlan>) -> (Sizes, bool) {
    let Ok(stats) = StatisticsContext::new().compute(plan.as_ref(), &StatisticsArgs::new()) else {
        return ((Precision::Absent, Precision::Absent), false);
    };
    if stats.total_byte_size.get_value().is_some() {
        return ((stats.total_byte_size, stats.num_rows), false);
    }
    let Some(rows) = stats.num_rows.get_value().copied() else {
        return ((Precision::Absent, Precision::Absent), false);
    };
    let schema = plan.schema();
    let estimated = schema
        .fields()
        .iter()
        .enumerate()
        .try_fold(0usize, |total, (i, field)| {
            let column =
                match stats
                    .column_statistics
                    .get(i)
                    .and_then(|c| c.byte_size.get_value().copied())
                {
                    Some(bytes) => bytes,
                    None => {
                        let width = field.data_type().primitive_width().unwrap_or(
                            match field.data_type() {
                                arrow::datatypes::DataType::Boolean => 1,
                                arrow::datatypes::DataType::Binary
                                | arrow::datatypes::DataType::LargeBinary
                                | arrow::datatypes::DataType::BinaryView
                                | arrow::datatypes::DataType::FixedSizeBinary(_) => 100,
                                _ => 20,
                            },
                        );
                        rows.checked_mul(width)?
                    }
                };
            total.checked_add(column)
        });
    match estimated {
        Some(bytes) => ((Precision::Inexact(bytes), stats.num_rows), true),
        None => ((Precision::Absent, stats.num_rows), false),
    }
}

/// The statistics of `plan` as its sources give them (the sizes hints report left out).
fn source_statistics(plan: &Arc<dyn ExecutionPlan>) -> Sizes {
    let real = Arc::clone(plan)
        .transform_up(|node| {
            Ok(match node.downcast_ref::<EstimateExec>() {
                Some(estimate) => Transformed::yes(Arc::clone(estimate.input())),
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
        .unwrap_or_else(|_| Arc::clone(plan));
    statistics(&real)
}

impl JoinNode<'_> {
    /// The reason when the join's distribution was asked for: its hint, else the session's
    /// `join_distribution_type` unless AUTOMATIC. `None`: statistics decide.
    fn chosen_for(&self, distribution_type: &str) -> Option<String> {
        hint(self.left)
            .or_else(|| hint(self.right))
            .map(|h| format!("hint {h}"))
            .or_else(|| {
                (distribution_type != "AUTOMATIC").then(|| {
                    format!("session property join_distribution_type = '{distribution_type}'")
                })
            })
    }
}

/// What the adaptive planner is expected to choose for one join.
pub(crate) struct Expected {
    /// The join's key columns (see [`signature`]).
    signature: String,
    /// BROADCAST or PARTITIONED.
    distribution: &'static str,
    /// The right input is the smaller one, built when broadcast.
    build_right: bool,
    /// As EXPLAIN shows it: the distribution Ballista's adaptive planner is expected to
    /// choose, with the sizes and thresholds it decides from.
    pub(super) line: String,
}

/// A join's keys without column positions, each pair and the pairs sorted: the same join in
/// the plan before staging and in the adaptive planner's final plan (which may have swapped
/// its inputs).
fn signature(on: &[(PhysicalExprRef, PhysicalExprRef)]) -> String {
    let name = |e: &PhysicalExprRef| {
        let text = e.to_string();
        text.split('@').next().unwrap_or_default().to_owned()
    };
    let mut pairs: Vec<String> = on
        .iter()
        .map(|(l, r)| {
            let mut pair = [name(l), name(r)];
            pair.sort();
            pair.join("=")
        })
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// The expected choice for every join of `plan`.
pub(crate) fn decide(
    plan: &Arc<dyn ExecutionPlan>,
    options: &ConfigOptions,
    distribution_type: &str,
) -> Vec<Expected> {
    let ballista = options
        .extensions
        .get::<BallistaConfig>()
        .cloned()
        .unwrap_or_default();
    let max_bytes = ballista.broadcast_join_threshold_bytes();
    let max_rows = ballista.broadcast_join_threshold_rows();
    joins(plan)
        .into_iter()
        .enumerate()
        .map(|(i, join)| {
            let ((left, left_estimated), (right, right_estimated)) = (
                estimated_statistics(join.left),
                estimated_statistics(join.right),
            );
            // The smaller side is built (Ballista swaps the inputs to put it first).
            let smaller = |l: &Precision<usize>, r: &Precision<usize>| match (l.get_value(), r.get_value()) {
                (Some(l), Some(r)) => Some(r < l),
                _ => None,
            };
            let build_right = smaller(&left.0, &right.0)
                .or_else(|| smaller(&left.1, &right.1))
                .unwrap_or(false);
            let (build, from_rows) = if build_right {
                (right, right_estimated)
            } else {
                (left, left_estimated)
            };
            // A byte size of the sources, or one estimated from rows (then the row threshold
            // holds too), must be under the threshold.
            let fits = max_bytes != 0
                && match build.0.get_value() {
                    Some(bytes) => {
                        *bytes != 0
                            && *bytes < max_bytes
                            && (!from_rows
                                || build.1.get_value().is_some_and(|rows| *rows < max_rows))
                    }
                    None => false,
                };
            let safe = crate::joins::broadcast_safe(join.join_type, build_right);
            let distribution = if fits && safe { "BROADCAST" } else { "PARTITIONED" };
            let reason = join
                .chosen_for(distribution_type)
                .unwrap_or_else(|| {
                    let measured = if build.0.is_exact() == Some(true) {
                        ""
                    } else {
                        "; re-decided at run time from the sizes measured when the inputs' stages finish"
                    };
                    format!(
                        "statistics: build side {} vs join_max_broadcast_table_size {}{measured}",
                        size(build),
                        data_size(max_bytes)
                    )
                });
            let unsafe_note = if fits && !safe {
                format!(
                    " (a {} join cannot broadcast its {} side)",
                    join.join_type,
                    if build_right { "right" } else { "left" }
                )
            } else {
                String::new()
            };
            // Shown: the sources' sizes (a hint's reported size is not one).
            let (build_side, probe_side) = if build_right {
                (join.right, join.left)
            } else {
                (join.left, join.right)
            };
            let line = format!(
                "Join {}: {} join on {}: {distribution}{unsafe_note}, build side {} ({}), probe side {} | reason: {reason}",
                i + 1,
                join.join_type,
                join.on,
                if build_right { "right" } else { "left" },
                size(source_statistics(build_side)),
                size(source_statistics(probe_side)),
            );
            Expected {
                signature: join.signature.clone(),
                distribution,
                build_right,
                line,
            }
        })
        .collect()
}

/// One line per join of a finished job's final plan: how it ran and why. `expected` is what
/// statistics predicted before the job ran: a join that ran otherwise was switched by the
/// adaptive planner from sizes measured when its inputs' stages finished.
pub(crate) fn chosen(
    plan: &Arc<dyn ExecutionPlan>,
    distribution_type: &str,
    expected: &[Expected],
    mut measured: Vec<Measured>,
) -> Vec<String> {
    joins(plan)
        .into_iter()
        .enumerate()
        .map(|(i, join)| {
            let (distribution, how) = join.ran_as;
            let sizes = measured
                .iter()
                .position(|m| m.signature == join.signature)
                .map(|at| {
                    let m = measured.remove(at);
                    format!(
                        " | measured: build side {} rows read, probe side {} rows",
                        m.build_rows, m.probe_rows
                    )
                })
                .unwrap_or_default();
            let predicted = expected.iter().find(|e| e.signature == join.signature);
            let reason = join
                .chosen_for(distribution_type)
                .unwrap_or_else(|| match predicted {
                    Some(p) if p.distribution != distribution => format!(
                        "adaptive switch: statistics expected {}, the sizes measured when \
                         its inputs' stages finished decided {distribution}",
                        p.distribution
                    ),
                    Some(_) => "statistics, as expected before the run".to_owned(),
                    None => "statistics and the sizes measured at run time".to_owned(),
                });
            format!(
                "Join {}: {} join on {}: {distribution} ({how}), build side left{sizes} | reason: {reason}",
                i + 1,
                join.join_type,
                join.on,
            )
        })
        .collect()
}

/// The rows a finished hash join read: what its build side fed into hash tables (a broadcast
/// build side once per executor holding it) and what it probed, summed over its tasks.
pub(crate) struct Measured {
    signature: String,
    build_rows: usize,
    probe_rows: usize,
}

/// Adds the hash joins of a finished stage (`plan` with the metrics its tasks reported, one
/// set per operator that has metrics, in pre-order as Ballista collects them) to `found`.
pub(crate) fn measure(
    plan: &Arc<dyn ExecutionPlan>,
    metrics: &[MetricsSet],
    found: &mut Vec<Measured>,
) {
    fn with_metrics(plan: &Arc<dyn ExecutionPlan>) -> usize {
        usize::from(plan.metrics().is_some())
            + plan.children().into_iter().map(with_metrics).sum::<usize>()
    }
    fn walk(
        plan: &Arc<dyn ExecutionPlan>,
        metrics: &[MetricsSet],
        at: &mut usize,
        found: &mut Vec<Measured>,
    ) {
        let own = if plan.metrics().is_some() {
            *at += 1;
            metrics.get(*at - 1)
        } else {
            None
        };
        if let (Some(hash), Some(own)) = (plan.downcast_ref::<HashJoinExec>(), own) {
            let sum = |name: &str| own.sum_by_name(name).map_or(0, |v| v.as_usize());
            found.push(Measured {
                signature: signature(hash.on()),
                build_rows: sum("build_input_rows"),
                probe_rows: sum("input_rows"),
            });
        }
        for child in plan.children() {
            walk(child, metrics, at, found);
        }
    }
    // Aligned as Ballista aligns them for display; otherwise nothing is measured.
    if with_metrics(plan) == metrics.len() {
        walk(plan, metrics, &mut 0, found);
    }
}
