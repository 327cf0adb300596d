//! Dynamic filtering, as Trino does it: the keys a join's build side actually holds, known
//! only once it has run, filter its probe side at the source, so a Parquet scan skips row
//! groups and partitions outside them and MySQL/PostgreSQL receive them in the remote SQL.
//!
//! Trino collects the keys while the build side runs and hands them to probe scans that wait
//! for them. Ballista runs a query's stages as separate tasks whose plans are fixed when the
//! job is submitted, and it turns off DataFusion's own dynamic filters (they live in one
//! process), so Tributary collects the keys just before submitting the job: for each join
//! whose build side is selective (it has a predicate) and small by statistics, it runs the
//! build side's distinct keys here, bounded in rows and in time
//! (`dynamic_filtering_max_build_rows`, `dynamic_filtering_wait_timeout`), and adds to the
//! probe side `key BETWEEN min AND max AND key IN (…)` (only the range when there are more
//! than `dynamic_filtering_max_distinct_values` keys); DataFusion's optimizer then pushes that
//! predicate into the probe side's scan as any other. The build side runs twice, the second
//! time in the job; that is why only selective, small build sides are collected, and only for
//! probe sides that read at least a batch of rows (8192; smaller ones read as fast as the keys
//! are collected). Keys that are every integer of their range become the range alone (a list
//! would say nothing more and cost a lookup per probe row: TPC-H Q15's 10,000 suppliers).
//!
//! A semi join's build side (`x IN (SELECT k …)`, `EXISTS (…)`) only decides which probe rows
//! are kept; when its collected keys are listed whole, they stand in for it in the job (a
//! `VALUES` list of the distinct key tuples), so such a build side runs once, here, not twice.
//! That makes it worth collecting where statistics cannot tell its output: a subquery
//! filtering an aggregate (`GROUP BY k HAVING sum(q) > 300`, TPC-H Q18: 57 of 1.5 M orders),
//! whose output has no estimate (no distinct counts, no selectivity for a predicate on an
//! aggregate), is collected while its sources hold at most
//! `dynamic_filtering_max_reused_build_rows` rows. When it holds more than
//! `dynamic_filtering_max_distinct_values` keys that run was spent in vain, and it runs in the
//! job unfiltered (a range would cost a third run). Other semi joins are judged as inner
//! joins are: when every one whose keys could stand in for it was collected by its sources,
//! TPC-H Q2 (an aggregate of 100 K keys), Q4 and Q20 lost more than Q18 won (those three
//! together 0.63 → 0.89 s).
//!
//! What was applied is recorded with the query (`QueryInfo::dynamic_filters`) and shown by
//! EXPLAIN ANALYZE, whose stage metrics show what the scans pruned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::Array;
use arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, JoinType, NullEquality, ScalarValue, plan_err};
use datafusion::functions_aggregate::expr_fn::{max, min};
use datafusion::logical_expr::{EmptyRelation, Expr, Join, LogicalPlan, LogicalPlanBuilder, lit};
use datafusion::prelude::SessionContext;
use tributary_connector::QueryScope;

mod probe;

use probe::{Keys, predicate, with_filters};

use crate::estimates::{Estimate, estimate};
use crate::session::{Session, parse_duration};

/// The session's dynamic filtering settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    enabled: bool,
    wait: Duration,
    max_distinct: usize,
    max_build_rows: usize,
    /// Most rows the sources of a semi join's `HAVING` subquery may hold for its keys to be
    /// collected to stand in for it (statistics cannot tell its output).
    max_reused_build_rows: usize,
    /// Probe sides reading fewer rows get no filter: the session's batch size.
    min_probe_rows: usize,
}

impl Settings {
    pub(crate) fn of(session: &Session) -> Self {
        let number = |name: &str, default: usize| {
            session
                .property(name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        Self {
            enabled: session
                .property("enable_dynamic_filtering")
                .is_none_or(|v| v == "true"),
            wait: session
                .property("dynamic_filtering_wait_timeout")
                .and_then(|v| parse_duration(&v))
                .unwrap_or(Duration::from_secs(10)),
            max_distinct: number("dynamic_filtering_max_distinct_values", 10_000),
            max_build_rows: number("dynamic_filtering_max_build_rows", 5_000_000),
            max_reused_build_rows: number("dynamic_filtering_max_reused_build_rows", 20_000_000),
            min_probe_rows: number("datafusion.execution.batch_size", 8192),
        }
    }
}

/// A join that can take a dynamic filter: which side builds, and its keys on each side.
#[derive(Debug)]
struct Candidate {
    /// Position of the join in a pre-order walk of the plan.
    index: usize,
    build_is_left: bool,
    build: Arc<LogicalPlan>,
    build_keys: Vec<Expr>,
    probe_keys: Vec<Expr>,
    /// Whether the collected keys can stand in for the build side in the job: a semi join
    /// on plain columns with no other condition, whose build side only decides which probe
    /// rows are kept.
    reusable: bool,
    /// Whether keys past `max_distinct` are collected as ranges (a second run of the build
    /// side): not for one collected only to stand in for its build side.
    ranges: bool,
}

/// `plan` (optimized) with the dynamic filters its joins' build sides allow, and one line per
/// filter for the query's record. A filter that cannot be collected (an error, the wait
/// timeout) is left out and said so in its line: the query runs as it would without it.
pub(crate) async fn apply(
    ctx: &SessionContext,
    plan: &LogicalPlan,
    settings: &Settings,
) -> Option<(LogicalPlan, Vec<String>)> {
    if !settings.enabled || !has_join(plan) {
        return None;
    }
    // Resources connectors hold while planning and reading (PostgreSQL's snapshot) live as
    // long as the collection.
    let (scope, _close) = QueryScope::open();
    let mut state = ctx.state();
    state.config_mut().set_extension(scope);
    let optimized = match state.optimize(plan) {
        Ok(optimized) => optimized,
        Err(e) => {
            tracing::debug!("no dynamic filters: the plan does not optimize here: {e}");
            return None;
        }
    };
    let local = SessionContext::new_with_state(state);
    let mut filters: Vec<(usize, bool, Expr)> = Vec::new();
    let mut stand_ins: Vec<(usize, LogicalPlan)> = Vec::new();
    let mut lines = Vec::new();
    for (index, join) in candidates(&optimized) {
        let Some(candidate) = orient(&local, index, &join, settings).await else {
            continue;
        };
        let described = describe(&candidate);
        let started = Instant::now();
        match tokio::time::timeout(settings.wait, collect(&local, &candidate, settings)).await {
            Ok(Ok(None)) => lines.push(format!(
                "{described}: not applied (more than {} distinct keys: the build side runs in \
                 the query)",
                settings.max_distinct
            )),
            Ok(Ok(Some(collected))) => {
                let ms = started.elapsed().as_millis();
                let (predicate, shown) = predicate(&candidate.probe_keys, &collected.keys);
                let mut line = format!("{described}: {shown} (collected in {ms} ms)");
                if let Some(rows) = collected.rows {
                    let count = rows.len();
                    match stand_in(&candidate, rows) {
                        Ok(plan) => {
                            line.push_str(&format!(
                                "; its {count} distinct keys stand in for the build side"
                            ));
                            stand_ins.push((candidate.index, plan));
                        }
                        Err(e) => tracing::debug!("build side kept: {e}"),
                    }
                }
                lines.push(line);
                filters.push((candidate.index, candidate.build_is_left, predicate));
            }
            Ok(Err(e)) => lines.push(format!("{described}: not applied ({e})")),
            Err(_) => lines.push(format!(
                "{described}: not applied (its keys took longer than \
                 dynamic_filtering_wait_timeout {:?})",
                settings.wait
            )),
        }
    }
    if filters.is_empty() {
        return (!lines.is_empty()).then_some((plan.clone(), lines));
    }
    match with_filters(optimized, &filters, stand_ins) {
        Ok(filtered) => Some((filtered, lines)),
        Err(e) => {
            tracing::warn!("dynamic filters not applied: {e}");
            None
        }
    }
}

/// Whether `plan` joins, or has a subquery the optimizer may turn into a (semi) join.
fn has_join(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        found = matches!(node, LogicalPlan::Join(_) | LogicalPlan::Subquery(_));
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// The joins of `plan` that a dynamic filter can serve: inner joins and semi joins on equal
/// keys (NULL matching nothing). A semi join's build side is the side that only decides which
/// rows of the other are kept; an inner join's is decided by [`orient`].
fn candidates(plan: &LogicalPlan) -> Vec<(usize, Join)> {
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
/// seldom prunes much); its sources hold at most `max_build_rows` rows and fewer than the
/// probe side's (collecting reads them: it must cost less than what it may save); the probe
/// side's sources hold at least a batch of rows (`min_probe_rows`). A semi join's aggregate
/// filtered by a predicate (`HAVING`) whose keys can stand in for it is judged by its sources
/// alone (`max_reused_build_rows`): its output cannot be estimated, and it does not run twice.
async fn orient(
    ctx: &SessionContext,
    index: usize,
    join: &Join,
    settings: &Settings,
) -> Option<Candidate> {
    let (left, right) = (join.left.as_ref(), join.right.as_ref());
    let reusable = reusable(join);
    let small =
        |e: &Estimate| e.output <= settings.max_distinct && e.sources <= settings.max_build_rows;
    // The HAVING subquery of a semi join, for which statistics say nothing.
    let having = |side: &LogicalPlan| reusable && filters_an_aggregate(side);
    let fits = |side: &LogicalPlan, e: &Estimate| {
        small(e) || (having(side) && e.sources <= settings.max_reused_build_rows)
    };
    // The sides that may build, each estimated (planned) only when it still can: a side
    // with a predicate, expected small.
    let (left_estimate, right_estimate) = match join.join_type {
        JoinType::LeftSemi if has_predicate(right) => {
            let build = estimate(ctx, right).await.filter(|e| fits(right, e))?;
            (estimate(ctx, left).await?, build)
        }
        JoinType::RightSemi if has_predicate(left) => {
            let build = estimate(ctx, left).await.filter(|e| fits(left, e))?;
            (build, estimate(ctx, right).await?)
        }
        JoinType::Inner => match (has_predicate(left), has_predicate(right)) {
            (true, false) => {
                let build = estimate(ctx, left).await.filter(|e| fits(left, e))?;
                (build, estimate(ctx, right).await?)
            }
            (false, true) => {
                let build = estimate(ctx, right).await.filter(|e| fits(right, e))?;
                (estimate(ctx, left).await?, build)
            }
            (true, true) => (estimate(ctx, left).await?, estimate(ctx, right).await?),
            (false, false) => return None,
        },
        _ => return None,
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
    // A probe side that reads less than one batch from its sources reads as fast as its
    // filter is collected (TPC-H's 25 nations filtered by their region's key).
    if !has_predicate(side)
        || !fits(side, &build)
        || (!having(side) && build.sources >= probe.sources)
        || probe.sources < settings.min_probe_rows
    {
        return None;
    }
    let (left_keys, right_keys): (Vec<Expr>, Vec<Expr>) = join.on.iter().cloned().unzip();
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
fn has_predicate(plan: &LogicalPlan) -> bool {
    plan.exists(|node| {
        Ok(match node {
            LogicalPlan::Filter(_) => true,
            LogicalPlan::TableScan(scan) => !scan.filters.is_empty(),
            _ => false,
        })
    })
    .unwrap_or(false)
}

fn describe(candidate: &Candidate) -> String {
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

/// What a build side's collection found: the keys for the probe side and, for a reusable
/// build side whose keys were all listed, its distinct key tuples (in the order of its keys).
struct Collected {
    keys: Keys,
    rows: Option<Vec<Vec<ScalarValue>>>,
}

/// Runs the build side's distinct keys (and, past `max_distinct`, their ranges) here; `None`
/// when there are more keys than that and the candidate takes no ranges.
async fn collect(
    ctx: &SessionContext,
    candidate: &Candidate,
    settings: &Settings,
) -> datafusion::error::Result<Option<Collected>> {
    let names: Vec<String> = (0..candidate.build_keys.len())
        .map(|i| format!("__dynamic_key_{i}"))
        .collect();
    let keys: Vec<Expr> = candidate
        .build_keys
        .iter()
        .zip(&names)
        .map(|(k, name)| k.clone().alias(name))
        .collect();
    let distinct = LogicalPlanBuilder::from(candidate.build.as_ref().clone())
        .aggregate(keys.clone(), Vec::<Expr>::new())?
        .limit(0, Some(settings.max_distinct + 1))?
        .build()?;
    let batches = ctx.execute_logical_plan(distinct).await?.collect().await?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let listed = |keys: Keys| -> datafusion::error::Result<Option<Collected>> {
        let rows = if candidate.reusable {
            let mut tuples = Vec::with_capacity(rows);
            for batch in &batches {
                for row in 0..batch.num_rows() {
                    tuples.push(
                        batch
                            .columns()
                            .iter()
                            .map(|column| ScalarValue::try_from_array(column, row))
                            .collect::<datafusion::error::Result<Vec<_>>>()?,
                    );
                }
            }
            Some(tuples)
        } else {
            None
        };
        Ok(Some(Collected { keys, rows }))
    };
    if rows == 0 {
        return listed(Keys::None);
    }
    if rows <= settings.max_distinct {
        let mut per_key = Vec::new();
        for column in 0..names.len() {
            let mut values = Vec::new();
            for batch in &batches {
                let array = batch.column(column);
                for row in 0..array.len() {
                    if array.is_valid(row) {
                        values.push(ScalarValue::try_from_array(array, row)?);
                    }
                }
            }
            values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            values.dedup();
            let (Some(low), Some(high)) = (values.first().cloned(), values.last().cloned()) else {
                // Every key NULL: nothing can match.
                return listed(Keys::None);
            };
            per_key.push((values, low, high));
        }
        return listed(Keys::Values(per_key));
    }
    if !candidate.ranges {
        return Ok(None);
    }
    let aggregates: Vec<Expr> = keys
        .iter()
        .zip(&names)
        .flat_map(|(_, name)| {
            let column = Expr::Column(Column::new_unqualified(name));
            [
                min(column.clone()).alias(format!("{name}_min")),
                max(column).alias(format!("{name}_max")),
            ]
        })
        .collect();
    let ranges = LogicalPlanBuilder::from(candidate.build.as_ref().clone())
        .project(keys)?
        .aggregate(Vec::<Expr>::new(), aggregates)?
        .build()?;
    let batches = ctx.execute_logical_plan(ranges).await?.collect().await?;
    let none = Collected {
        keys: Keys::None,
        rows: None,
    };
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(Some(none));
    };
    let mut per_key = Vec::new();
    for i in 0..names.len() {
        let low = ScalarValue::try_from_array(batch.column(2 * i), 0)?;
        let high = ScalarValue::try_from_array(batch.column(2 * i + 1), 0)?;
        if low.is_null() || high.is_null() {
            return Ok(Some(none));
        }
        per_key.push((low, high));
    }
    Ok(Some(Collected {
        keys: Keys::Ranges(per_key),
        rows: None,
    }))
}

/// The plan standing in for a reusable build side: its distinct key tuples as a `VALUES`
/// list under the build side's key columns (each once), or an empty relation.
fn stand_in(
    candidate: &Candidate,
    rows: Vec<Vec<ScalarValue>>,
) -> datafusion::error::Result<LogicalPlan> {
    let mut columns: Vec<(usize, Column)> = Vec::new();
    for (position, key) in candidate.build_keys.iter().enumerate() {
        let Expr::Column(column) = key else {
            return plan_err!("build key {key} is not a column");
        };
        if !columns.iter().any(|(_, seen)| seen == column) {
            columns.push((position, column.clone()));
        }
    }
    let keys = LogicalPlanBuilder::from(candidate.build.as_ref().clone())
        .project(columns.iter().map(|(_, c)| Expr::Column(c.clone())))?
        .build()?;
    if rows.is_empty() {
        return Ok(LogicalPlan::EmptyRelation(EmptyRelation {
            produce_one_row: false,
            schema: Arc::clone(keys.schema()),
        }));
    }
    let values = rows
        .into_iter()
        .map(|row| columns.iter().map(|(i, _)| lit(row[*i].clone())).collect())
        .collect();
    LogicalPlanBuilder::values_with_schema(values, keys.schema())?
        .project(columns.iter().enumerate().map(|(j, (_, column))| {
            Expr::Column(Column::new_unqualified(format!("column{}", j + 1)))
                .alias_qualified(column.relation.clone(), column.name.clone())
        }))?
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn context() -> SessionContext {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE dim (id INT, name VARCHAR) AS VALUES (1, 'a'), (2, 'b'), (3, 'c'), (40, 'd')")
            .await
            .expect("create dim");
        ctx.sql("CREATE TABLE fact (dim_id INT, amount INT) AS VALUES (1, 10), (2, 20), (3, 30), (40, 40), (50, 50)")
            .await
            .expect("create fact");
        ctx.sql("CREATE TABLE pairs (id INT, amount INT, name VARCHAR) AS VALUES (1, 30, 'a'), (3, 10, 'a'), (2, 20, 'a'), (2, 21, 'b')")
            .await
            .expect("create pairs");
        ctx
    }

    async fn run(ctx: &SessionContext, plan: LogicalPlan) -> Vec<i32> {
        let batches = ctx
            .execute_logical_plan(plan)
            .await
            .expect("run")
            .collect()
            .await
            .expect("collect");
        let mut values: Vec<i32> = batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::Int32Array>()
                    .expect("int column")
                    .iter()
                    .flatten()
                    .collect::<Vec<_>>()
            })
            .collect();
        values.sort_unstable();
        values
    }

    fn settings(max_distinct: usize) -> Settings {
        Settings {
            enabled: true,
            wait: Duration::from_secs(10),
            max_distinct,
            max_build_rows: 1_000_000,
            max_reused_build_rows: 1_000_000,
            min_probe_rows: 0,
        }
    }

    async fn filtered(
        ctx: &SessionContext,
        sql: &str,
        max_distinct: usize,
    ) -> (String, Vec<String>) {
        let plan = ctx.sql(sql).await.expect("plan").into_unoptimized_plan();
        let (plan, lines) = apply(ctx, &plan, &settings(max_distinct))
            .await
            .expect("a dynamic filter");
        (plan.display_indent().to_string(), lines)
    }

    #[tokio::test]
    async fn a_selective_build_side_filters_the_probe_side_by_its_keys() {
        let ctx = context().await;
        let sql =
            "SELECT f.amount FROM fact f JOIN dim d ON f.dim_id = d.id WHERE d.name IN ('a', 'c')";
        let (plan, lines) = filtered(&ctx, sql, 100).await;
        assert!(plan.contains("f.dim_id >= Int32(1) AND f.dim_id <= Int32(3) AND f.dim_id IN ([Int32(1), Int32(3)])"), "{plan}");
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0]
                .starts_with("f.dim_id from the right side's d.id: f.dim_id IN (2 values, 1 to 3)"),
            "{}",
            lines[0]
        );
        // Same answer as without.
        let plan = ctx.sql(sql).await.expect("plan").into_unoptimized_plan();
        let (with, _) = apply(&ctx, &plan, &settings(100))
            .await
            .expect("a dynamic filter");
        let rows = ctx
            .execute_logical_plan(with)
            .await
            .expect("run")
            .collect()
            .await
            .expect("collect");
        let total: usize = rows.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(total, 2);
    }

    #[tokio::test]
    async fn a_semi_joins_having_subquery_runs_once_its_keys_standing_in_for_it() {
        let ctx = context().await;
        let sql = "SELECT f.amount FROM fact f WHERE f.dim_id IN \
                   (SELECT dim_id FROM fact GROUP BY dim_id HAVING sum(amount) > 35)";
        // Not small by statistics (no build side is, here): collected to stand in for it.
        let reused = Settings {
            max_build_rows: 0,
            ..settings(100)
        };
        let plan = ctx.sql(sql).await.expect("plan").into_unoptimized_plan();
        let (with, lines) = apply(&ctx, &plan, &reused).await.expect("a dynamic filter");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("f.dim_id IN (2 values, 40 to 50)")
                && lines[0].ends_with("its 2 distinct keys stand in for the build side"),
            "{}",
            lines[0]
        );
        let shown = with.display_indent().to_string();
        assert!(!shown.contains("Aggregate"), "{shown}");
        assert!(
            shown.contains("Values: (Int32(")
                && shown.contains("(Int32(40))")
                && shown.contains("(Int32(50))"),
            "{shown}"
        );
        assert_eq!(run(&ctx, with).await, vec![40, 50]);
        assert_eq!(run(&ctx, plan.clone()).await, vec![40, 50]);
        // Past its bound, such a build side is left alone.
        let bounded = Settings {
            max_reused_build_rows: 4,
            ..reused.clone()
        };
        assert!(apply(&ctx, &plan, &bounded).await.is_none());
        // More keys than are listed: no range is collected for it (that would run it again),
        // and it runs in the query.
        let listed = Settings {
            max_distinct: 1,
            ..reused
        };
        let (kept, lines) = apply(&ctx, &plan, &listed).await.expect("a line");
        assert!(
            lines[0].ends_with(
                "not applied (more than 1 distinct keys: the build side runs in the query)"
            ),
            "{lines:?}"
        );
        assert_eq!(kept, plan);
    }

    #[tokio::test]
    async fn keys_standing_in_for_a_build_side_keep_their_tuples() {
        let ctx = context().await;
        // Each key's list alone lets (1, 10) and (3, 30) through: only the tuples of the
        // stand-in keep the answer exact.
        let sql = "SELECT f.amount FROM fact f WHERE EXISTS (SELECT 1 FROM pairs p \
                   WHERE p.id = f.dim_id AND p.amount = f.amount AND p.name = 'a')";
        let (plan, lines) = filtered(&ctx, sql, 100).await;
        assert!(
            lines[0].ends_with("its 3 distinct keys stand in for the build side"),
            "{lines:?}"
        );
        assert!(plan.contains("Values: "), "{plan}");
        let unoptimized = ctx.sql(sql).await.expect("plan").into_unoptimized_plan();
        let (with, _) = apply(&ctx, &unoptimized, &settings(100))
            .await
            .expect("a dynamic filter");
        assert_eq!(run(&ctx, with).await, vec![20]);
        assert_eq!(run(&ctx, unoptimized).await, vec![20]);
    }

    #[tokio::test]
    async fn many_keys_become_a_range_and_no_keys_an_empty_probe() {
        let ctx = context().await;
        let (plan, lines) = filtered(
            &ctx,
            "SELECT f.amount FROM fact f JOIN dim d ON f.dim_id = d.id WHERE d.name <> 'x'",
            2,
        )
        .await;
        assert!(
            plan.contains("f.dim_id >= Int32(1) AND f.dim_id <= Int32(40)"),
            "{plan}"
        );
        assert!(!plan.contains("IN (["), "{plan}");
        assert!(
            lines[0].contains("f.dim_id BETWEEN 1 AND 40"),
            "{}",
            lines[0]
        );
        let (plan, lines) = filtered(&ctx, "SELECT f.amount FROM fact f WHERE f.dim_id IN (SELECT id FROM dim WHERE name = 'none')", 2).await;
        assert!(lines[0].contains("no build keys"), "{lines:?}\n{plan}");
    }

    #[tokio::test]
    async fn every_integer_of_a_range_is_the_range_alone() {
        let ctx = context().await;
        let (plan, lines) = filtered(
            &ctx,
            "SELECT f.amount FROM fact f JOIN dim d ON f.dim_id = d.id WHERE d.id < 10",
            100,
        )
        .await;
        assert!(
            plan.contains("f.dim_id >= Int32(1) AND f.dim_id <= Int32(3)"),
            "{plan}"
        );
        assert!(!plan.contains("IN (["), "{plan}");
        assert!(
            lines[0].contains("f.dim_id BETWEEN 1 AND 3 (all 3 values of the range)"),
            "{}",
            lines[0]
        );
    }

    #[tokio::test]
    async fn a_probe_side_smaller_than_a_batch_gets_no_filter() {
        let ctx = context().await;
        let plan = ctx
            .sql("SELECT f.amount FROM fact f JOIN dim d ON f.dim_id = d.id WHERE d.name = 'a'")
            .await
            .expect("plan")
            .into_unoptimized_plan();
        let batch = Settings {
            min_probe_rows: 8192,
            ..settings(100)
        };
        assert!(apply(&ctx, &plan, &batch).await.is_none());
        assert!(apply(&ctx, &plan, &settings(100)).await.is_some());
    }

    #[tokio::test]
    async fn unfiltered_and_outer_joins_get_no_filter() {
        let ctx = context().await;
        let plan = ctx
            .sql("SELECT f.amount FROM fact f JOIN dim d ON f.dim_id = d.id")
            .await
            .expect("plan")
            .into_unoptimized_plan();
        assert!(apply(&ctx, &plan, &settings(100)).await.is_none());
        let plan = ctx
            .sql("SELECT f.amount FROM fact f LEFT JOIN dim d ON f.dim_id = d.id AND d.name = 'a'")
            .await
            .expect("plan")
            .into_unoptimized_plan();
        assert!(apply(&ctx, &plan, &settings(100)).await.is_none());
        let off = Settings {
            enabled: false,
            ..settings(100)
        };
        let plan = ctx
            .sql("SELECT f.amount FROM fact f JOIN dim d ON f.dim_id = d.id WHERE d.name = 'a'")
            .await
            .expect("plan")
            .into_unoptimized_plan();
        assert!(apply(&ctx, &plan, &off).await.is_none());
    }
}
