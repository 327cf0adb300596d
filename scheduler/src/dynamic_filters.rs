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
//! Collected keys also filter the other joins they reach through equal keys
//! (`probe.rs`, `Rewrite::carry_across`): below a join that applied a filter, both its sides'
//! keys are among the collected ones, and that holds up the plan through projections, aliases,
//! filters, an aggregate's group-by columns and the sides of joins that keep them; a join
//! whose one side's key is so restricted filters its other side by the same keys wherever
//! rows outside them cannot change its output (inner and semi joins; the non-preserved side of
//! an outer or anti join). That is how DataFusion's in-process dynamic filters pass through an
//! aggregate: TPC-H Q17's `avg(l_quantity) GROUP BY l_partkey`, joined on the part key, gets
//! the 204 parts' keys, which the optimizer pushes below the aggregate into its scan. A build
//! side estimated to hold more keys than `dynamic_filtering_max_distinct_values` is still run
//! when it reads at most a quarter of its probe side's rows and its keys would be carried into
//! another join's aggregating side: such estimates are often DataFusion's default selectivity
//! (20% of TPC-H's parts for Q17's `p_brand = … AND p_container = …`, where 0.1% match).
//!
//! Where a join keeps a small side whole (semi, anti, outer joins) and its keys are too many
//! to list, the large side is reduced in the job instead (`reduce.rs`): joined first with a
//! broadcast copy of the kept side's keys, so only its rows that can match are shuffled.
//!
//! What was applied is recorded with the query (`QueryInfo::dynamic_filters`) and shown by
//! EXPLAIN ANALYZE, whose stage metrics show what the scans pruned.

use std::time::{Duration, Instant};

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use tributary_connector::QueryScope;

mod candidates;
mod collect;
mod probe;
mod reduce;

use candidates::{candidates, describe, orient};
use collect::{collect, stand_in};
use probe::{Applied, predicate, with_filters};

use crate::session::{Session, parse_duration};

/// Fewest rows a join's large side must hold (by statistics) to be reduced in the job.
const MIN_REDUCED_ROWS: usize = 1_000_000;

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
    /// Fewest rows (by statistics) a join's large side must hold to be reduced to the keys
    /// of the small side the join keeps whole (`reduce.rs`).
    min_reduced_rows: usize,
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
            min_reduced_rows: MIN_REDUCED_ROWS,
        }
    }
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
    let mut filters: Vec<Applied> = Vec::new();
    let mut stand_ins: Vec<(usize, LogicalPlan)> = Vec::new();
    let mut lines = Vec::new();
    for (index, join) in candidates(&optimized) {
        let Some(candidate) = orient(&local, &optimized, index, &join, settings).await else {
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
                filters.push(Applied {
                    index: candidate.index,
                    build_is_left: candidate.build_is_left,
                    predicate,
                    build_keys: candidate.build_keys,
                    probe_keys: candidate.probe_keys,
                    keys: collected.keys,
                    described,
                });
            }
            Ok(Err(e)) => lines.push(format!("{described}: not applied ({e})")),
            Err(_) => lines.push(format!(
                "{described}: not applied (its keys took longer than \
                 dynamic_filtering_wait_timeout {:?})",
                settings.wait
            )),
        }
    }
    let (mut result, mut changed) = if filters.is_empty() {
        (optimized, false)
    } else {
        match with_filters(optimized, &filters, stand_ins) {
            Ok((filtered, carried)) => {
                lines.extend(carried);
                (filtered, true)
            }
            Err(e) => {
                tracing::warn!("dynamic filters not applied: {e}");
                return None;
            }
        }
    };
    // The large sides of joins that keep a small side whole, reduced in the job to the rows
    // whose keys that side holds.
    if let Some((reduced, reductions)) = reduce::reduce(&local, &result, settings).await {
        result = reduced;
        lines.extend(reductions);
        changed = true;
    }
    if changed {
        Some((result, lines))
    } else {
        (!lines.is_empty()).then_some((plan.clone(), lines))
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
            min_reduced_rows: 0,
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
        assert_eq!(run(&ctx, with).await.len(), 2);
    }

    #[tokio::test]
    async fn collected_keys_are_carried_through_equal_keys_to_other_joins() {
        let ctx = context().await;
        // TPC-H Q17's shape: the correlated aggregate is joined on the key the selective
        // build side was collected for, so its input is filtered by the same keys.
        let sql = "SELECT f.amount FROM fact f JOIN dim d ON f.dim_id = d.id \
                   WHERE d.name IN ('a', 'c') AND f.amount >= \
                   (SELECT avg(f2.amount) FROM fact f2 WHERE f2.dim_id = d.id)";
        let (shown, lines) = filtered(&ctx, sql, 100).await;
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[1].starts_with("__scalar_sq_1.dim_id IN (2 values, 1 to 3): carried through")
                && lines[1].ends_with(&format!(
                    "from {}",
                    lines[0].split(':').next().unwrap_or_default()
                )),
            "{lines:?}"
        );
        assert!(
            shown.contains("Filter: __scalar_sq_1.dim_id >= Int32(1) AND __scalar_sq_1.dim_id <= Int32(3) AND __scalar_sq_1.dim_id IN ([Int32(1), Int32(3)])"),
            "{shown}"
        );
        let plan = ctx.sql(sql).await.expect("plan").into_unoptimized_plan();
        let (with, _) = apply(&ctx, &plan, &settings(100))
            .await
            .expect("a dynamic filter");
        assert_eq!(run(&ctx, with).await, vec![10, 30]);
        assert_eq!(run(&ctx, plan).await, vec![10, 30]);
    }

    #[tokio::test]
    async fn keys_are_not_carried_to_the_side_an_outer_or_anti_join_keeps() {
        let ctx = context().await;
        // `pairs` keeps every row of the LEFT JOIN and of the NOT EXISTS: filtering it by the
        // dims' keys would lose the rows without a match.
        for sql in [
            "SELECT p.id, f.amount FROM pairs p LEFT JOIN \
             (SELECT f.dim_id, f.amount FROM fact f JOIN dim d ON f.dim_id = d.id WHERE d.name = 'a') f \
             ON p.id = f.dim_id",
            "SELECT p.id FROM pairs p WHERE NOT EXISTS \
             (SELECT 1 FROM fact f JOIN dim d ON f.dim_id = d.id WHERE d.name = 'a' AND f.dim_id = p.id)",
        ] {
            let (shown, lines) = filtered(&ctx, sql, 100).await;
            assert_eq!(lines.len(), 1, "{lines:?}\n{shown}");
            assert!(!shown.contains("p.id IN"), "{shown}");
            let plan = ctx.sql(sql).await.expect("plan").into_unoptimized_plan();
            let (with, _) = apply(&ctx, &plan, &settings(100))
                .await
                .expect("a dynamic filter");
            assert_eq!(run(&ctx, with).await, run(&ctx, plan).await, "{sql}");
        }
    }

    #[tokio::test]
    async fn a_large_side_is_reduced_to_the_keys_of_the_small_side_a_join_keeps() {
        let ctx = context().await;
        ctx.sql(
            "CREATE TABLE big (dim_id INT, amount INT) AS VALUES (1, 1), (2, 2), (3, 3), \
                 (3, 4), (40, 5), (50, 6), (NULL, 7), (60, 8), (70, 9), (80, 10), (90, 11), \
                 (100, 12), (110, 13), (120, 14), (130, 15), (140, 16), (150, 17), (160, 18), \
                 (170, 19), (180, 20)",
        )
        .await
        .expect("create big");
        // No more than 0 keys are listed: no dynamic filter, only the reduction.
        let none_listed = Settings {
            max_distinct: 0,
            ..settings(100)
        };
        for (sql, expected) in [
            // TPC-H Q4's shape: the kept pairs' keys reduce `big` before the semi join.
            (
                "SELECT p.amount FROM pairs p WHERE p.name = 'a' AND EXISTS \
                 (SELECT 1 FROM big b WHERE b.dim_id = p.id)",
                vec![10, 20, 30],
            ),
            // Q22's: the anti join keeps the pairs without a match.
            (
                "SELECT p.amount FROM pairs p WHERE p.name = 'a' AND NOT EXISTS \
                 (SELECT 1 FROM big b WHERE b.dim_id = p.id AND b.amount > 3)",
                vec![20, 30],
            ),
            (
                "SELECT p.amount FROM pairs p LEFT JOIN big b ON p.id = b.dim_id WHERE p.name = 'a'",
                vec![10, 10, 20, 30],
            ),
        ] {
            let plan = ctx.sql(sql).await.expect("plan").into_unoptimized_plan();
            let (with, lines) = apply(&ctx, &plan, &none_listed).await.expect("a reduction");
            let shown = with.display_indent().to_string();
            assert!(
                shown.contains("RightSemi Join: __reduce_key_0 = "),
                "{sql}\n{shown}"
            );
            assert!(
                lines.iter().any(|l| l.contains(
                    "dim_id reduced by the left side's p.id: only its rows whose keys that \
                     side holds are shuffled"
                )),
                "{lines:?}"
            );
            assert_eq!(run(&ctx, with).await, expected, "{sql}");
            assert_eq!(run(&ctx, plan).await, expected, "{sql}");
        }
        // NOT IN: a NULL in `big` empties the answer, which the reduction (dropping NULL
        // keys) would change; and a kept side with a limit could keep other rows when run again.
        for sql in [
            "SELECT p.amount FROM pairs p WHERE p.name = 'a' AND p.id NOT IN (SELECT dim_id FROM big)",
            "SELECT p.amount FROM (SELECT * FROM pairs WHERE name = 'a' LIMIT 2) p \
             WHERE EXISTS (SELECT 1 FROM big b WHERE b.dim_id = p.id)",
        ] {
            let plan = ctx.sql(sql).await.expect("plan").into_unoptimized_plan();
            assert!(apply(&ctx, &plan, &none_listed).await.is_none(), "{sql}");
        }
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
