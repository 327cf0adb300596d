//! Join order by statistics: `join_reordering_strategy`, Trino's session property.
//!
//! DataFusion joins in the order a query is written (reordering only to avoid a cross join)
//! and its physical planner then picks each join's build side by size. Under AUTOMATIC (the
//! default), each region of two or more inner equi-joins (three tables or more; projections
//! between them that only pick columns are looked through) is reordered here before the plan
//! is submitted when it is a star (every condition joins the table statistics say is largest
//! to another): that table first, then the others in order of size. The fact table thus stays
//! the probe side all the way up and every dimension is joined (and usually broadcast) in
//! order of its size, the most selective first, whatever order the query names them in.
//! Chains and snowflakes stay as written: without column statistics (distinct counts) a
//! smaller table reached through a key that is not its own could multiply rows. ELIMINATE_CROSS_JOINS and NONE
//! keep the written order (DataFusion removes cross joins in both: a cross join is never
//! chosen on purpose). A region with a table whose statistics cannot tell its rows, a join
//! hint, a non-equi condition or a condition over more than two tables is left as written.
//!
//! Each reordered region is recorded with the query and shown by EXPLAIN.

use datafusion::common::tree_node::TreeNode;
use datafusion::common::{Column, JoinType, NullEquality};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, Join, LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;

use crate::estimates::estimate;
use crate::session::Session;

/// `join_reordering_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// By statistics.
    Automatic,
    /// As written, cross joins removed.
    EliminateCrossJoins,
    /// As written (cross joins are still removed: see the module's note).
    None,
}

impl Strategy {
    pub(crate) fn of(session: &Session) -> Self {
        match session.property("join_reordering_strategy").as_deref() {
            Some("NONE") => Self::None,
            Some("ELIMINATE_CROSS_JOINS") => Self::EliminateCrossJoins,
            _ => Self::Automatic,
        }
    }
}

/// `plan` with its join regions in the order statistics suggest, and one line per region
/// reordered; `None` when nothing changed (or the strategy keeps the written order).
pub(crate) async fn reorder(
    ctx: &SessionContext,
    plan: &LogicalPlan,
    strategy: Strategy,
) -> Option<(LogicalPlan, Vec<String>)> {
    if strategy != Strategy::Automatic || joins(plan) < 2 {
        return None;
    }
    let optimized = match ctx.state().optimize(plan) {
        Ok(optimized) => optimized,
        Err(e) => {
            tracing::debug!("join order as written: the plan does not optimize here: {e}");
            return None;
        }
    };
    let mut lines = Vec::new();
    match rewrite(ctx, optimized, &mut lines).await {
        Ok(reordered) if !lines.is_empty() => Some((reordered, lines)),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!("join order as written: {e}");
            None
        }
    }
}

/// The joins of `plan`, as written (cross joins included: the optimizer turns those with
/// conditions into inner joins).
fn joins(plan: &LogicalPlan) -> usize {
    let mut count = 0;
    let _ = plan.apply(|node| {
        count += usize::from(matches!(node, LogicalPlan::Join(_)));
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    count
}

/// An inner join on equal keys with no other condition: what a region is made of.
fn eligible(plan: &LogicalPlan) -> Option<&Join> {
    match plan {
        LogicalPlan::Join(join)
            if join.join_type == JoinType::Inner
                && join.filter.is_none()
                && !join.on.is_empty()
                && join.null_equality == NullEquality::NullEqualsNothing =>
        {
            Some(join)
        }
        _ => None,
    }
}

/// A region of joins flattened: its tables (any plan that is not part of the region) and
/// its conditions, each side over one table: `(table, expression)`.
#[derive(Default)]
struct Region {
    tables: Vec<LogicalPlan>,
    conditions: Vec<((usize, Expr), (usize, Expr))>,
    /// A condition no single table answers: the region is left as written.
    unsplittable: bool,
}

impl Region {
    fn add(&mut self, plan: &LogicalPlan) {
        match plan {
            LogicalPlan::Projection(projection)
                if eligible(&projection.input).is_some()
                    && projection.expr.iter().all(|e| matches!(e, Expr::Column(_))) =>
            {
                self.add(&projection.input);
            }
            _ => match eligible(plan) {
                Some(join) => {
                    self.add(&join.left);
                    self.add(&join.right);
                    for (left, right) in &join.on {
                        match (self.owner(left), self.owner(right)) {
                            (Some(l), Some(r)) if l != r => self
                                .conditions
                                .push(((l, left.clone()), (r, right.clone()))),
                            _ => self.unsplittable = true,
                        }
                    }
                }
                None => self.tables.push(plan.clone()),
            },
        }
    }

    /// The one table whose columns `expr` uses.
    fn owner(&self, expr: &Expr) -> Option<usize> {
        let columns = expr.column_refs();
        let mut owners = self.tables.iter().enumerate().filter(|(_, table)| {
            !columns.is_empty() && columns.iter().all(|c| table.schema().has_column(c))
        });
        let (owner, _) = owners.next()?;
        owners.next().is_none().then_some(owner)
    }
}

/// `plan` with every region below it reordered (regions inside a region's tables too).
fn rewrite<'a>(
    ctx: &'a SessionContext,
    plan: LogicalPlan,
    lines: &'a mut Vec<String>,
) -> BoxFuture<'a, Result<LogicalPlan>> {
    Box::pin(async move {
        if eligible(&plan).is_some() {
            let mut region = Region::default();
            region.add(&plan);
            let mut tables = Vec::with_capacity(region.tables.len());
            for table in std::mem::take(&mut region.tables) {
                tables.push(rewrite(ctx, table, lines).await?);
            }
            region.tables = tables;
            if let Some(reordered) = reordered(ctx, &plan, &region, lines).await? {
                return Ok(reordered);
            }
            // As written; the tables' own regions may have changed.
            return rebuild_region(&plan, &mut region.tables.into_iter());
        }
        let inputs: Vec<LogicalPlan> = plan.inputs().into_iter().cloned().collect();
        if inputs.is_empty() {
            return Ok(plan);
        }
        let mut rewritten = Vec::with_capacity(inputs.len());
        for input in &inputs {
            rewritten.push(rewrite(ctx, input.clone(), lines).await?);
        }
        if rewritten == inputs {
            return Ok(plan);
        }
        plan.with_new_exprs(plan.expressions(), rewritten)
    })
}

/// The region rooted at `plan` with its tables replaced, in order, by `tables`.
fn rebuild_region(
    plan: &LogicalPlan,
    tables: &mut impl Iterator<Item = LogicalPlan>,
) -> Result<LogicalPlan> {
    match plan {
        LogicalPlan::Projection(projection)
            if eligible(&projection.input).is_some()
                && projection.expr.iter().all(|e| matches!(e, Expr::Column(_))) =>
        {
            let input = rebuild_region(&projection.input, tables)?;
            plan.with_new_exprs(plan.expressions(), vec![input])
        }
        _ if eligible(plan).is_some() => {
            let inputs = plan
                .inputs()
                .into_iter()
                .map(|input| rebuild_region(input, tables))
                .collect::<Result<Vec<_>>>()?;
            plan.with_new_exprs(plan.expressions(), inputs)
        }
        _ => tables.next().ok_or_else(|| {
            datafusion::error::DataFusionError::Internal("join region lost a table".into())
        }),
    }
}

/// The region in the order statistics suggest, under a projection giving `root`'s columns;
/// `None` when it stays as written.
async fn reordered(
    ctx: &SessionContext,
    root: &LogicalPlan,
    region: &Region,
    lines: &mut Vec<String>,
) -> Result<Option<LogicalPlan>> {
    let tables = &region.tables;
    if tables.len() < 3 || region.unsplittable || tables.iter().any(crate::joins::is_hinted) {
        return Ok(None);
    }
    let mut rows = Vec::with_capacity(tables.len());
    for table in tables {
        match estimate(ctx, table).await {
            Some(e) => rows.push(e.output),
            None => return Ok(None),
        }
    }
    // The largest first, then the smallest table joined to those placed.
    let Some(first) = (0..tables.len()).max_by_key(|&i| (rows[i], std::cmp::Reverse(i))) else {
        return Ok(None);
    };
    // Only stars: every condition joins the largest table to another, so each join of the new
    // order uses exactly the conditions a written join of that table used. In a chain or a
    // snowflake a smaller table may be reachable first through a key that is not its own
    // (TPC-H Q5: customer to supplier by nation), and without column statistics nothing here
    // can tell that join would multiply rows.
    if !region
        .conditions
        .iter()
        .all(|((l, _), (r, _))| *l == first || *r == first)
    {
        return Ok(None);
    }
    let mut order = vec![first];
    while order.len() < tables.len() {
        let next = (0..tables.len())
            .filter(|i| !order.contains(i))
            .filter(|&i| {
                region.conditions.iter().any(|((l, _), (r, _))| {
                    (*l == i && order.contains(r)) || (*r == i && order.contains(l))
                })
            })
            .min_by_key(|&i| (rows[i], i));
        match next {
            Some(next) => order.push(next),
            // Only a cross join would connect the rest: as written.
            None => return Ok(None),
        }
    }
    if order.iter().copied().eq(0..tables.len()) {
        return Ok(None);
    }
    let mut builder = LogicalPlanBuilder::from(tables[order[0]].clone());
    for (placed, &next) in order.iter().enumerate().skip(1) {
        let before = &order[..placed];
        let (mut lefts, mut rights) = (Vec::new(), Vec::new());
        for ((l, left), (r, right)) in &region.conditions {
            if *r == next && before.contains(l) {
                lefts.push(left.clone());
                rights.push(right.clone());
            } else if *l == next && before.contains(r) {
                lefts.push(right.clone());
                rights.push(left.clone());
            }
        }
        builder = builder.join_with_expr_keys(
            tables[next].clone(),
            JoinType::Inner,
            (lefts, rights),
            None,
        )?;
    }
    let columns: Vec<Expr> = root
        .schema()
        .columns()
        .into_iter()
        .map(|c: Column| Expr::Column(c))
        .collect();
    let plan = builder.project(columns)?.build()?;
    lines.push(format!(
        "{} (statistics; written: {})",
        order
            .iter()
            .map(|&i| format!("{} (~{} rows)", name(&tables[i]), rows[i]))
            .collect::<Vec<_>>()
            .join(" JOIN "),
        (0..tables.len())
            .map(|i| name(&tables[i]))
            .collect::<Vec<_>>()
            .join(" JOIN "),
    ));
    Ok(Some(plan))
}

/// How a region's table is named in EXPLAIN: its alias or table name.
fn name(table: &LogicalPlan) -> String {
    match table {
        LogicalPlan::SubqueryAlias(alias) => alias.alias.to_string(),
        LogicalPlan::TableScan(scan) => scan.table_name.to_string(),
        LogicalPlan::Projection(p) => name(&p.input),
        LogicalPlan::Filter(f) => name(&f.input),
        _ => "(subquery)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn context() -> SessionContext {
        let ctx = SessionContext::new();
        for (name, rows) in [("nation", 5), ("customer", 50), ("orders", 500)] {
            let values: Vec<String> = (0..rows)
                .map(|i| format!("({i}, {}, {})", i % 5, i % 50))
                .collect();
            ctx.sql(&format!(
                "CREATE TABLE {name} (id INT, nation INT, customer INT) AS VALUES {}",
                values.join(", ")
            ))
            .await
            .expect("create table");
        }
        ctx
    }

    async fn plan(ctx: &SessionContext, sql: &str) -> LogicalPlan {
        ctx.sql(sql).await.expect("plan").into_unoptimized_plan()
    }

    /// A star around orders, written smallest first.
    const WRITTEN_SMALL_FIRST: &str = "SELECT count(*), sum(o.id) FROM nation n \
        JOIN orders o ON o.nation = n.id JOIN customer c ON o.customer = c.id";

    #[tokio::test]
    async fn a_star_runs_its_largest_table_first_then_the_others_by_size() {
        let ctx = context().await;
        let written = plan(&ctx, WRITTEN_SMALL_FIRST).await;
        let (reordered, lines) = reorder(&ctx, &written, Strategy::Automatic)
            .await
            .expect("reordered");
        assert_eq!(
            lines,
            vec![
                "o (~500 rows) JOIN n (~5 rows) JOIN c (~50 rows) \
                 (statistics; written: n JOIN o JOIN c)"
                    .to_owned()
            ]
        );
        let run = |plan: LogicalPlan| {
            let ctx = ctx.clone();
            async move {
                ctx.execute_logical_plan(plan)
                    .await
                    .expect("run")
                    .collect()
                    .await
                    .expect("collect")
            }
        };
        let expected = run(written).await;
        assert_eq!(
            datafusion::arrow::util::pretty::pretty_format_batches(&run(reordered).await)
                .expect("format")
                .to_string(),
            datafusion::arrow::util::pretty::pretty_format_batches(&expected)
                .expect("format")
                .to_string()
        );
    }

    #[tokio::test]
    async fn written_order_is_kept_when_asked_or_already_best() {
        let ctx = context().await;
        let written = plan(&ctx, WRITTEN_SMALL_FIRST).await;
        assert!(reorder(&ctx, &written, Strategy::None).await.is_none());
        assert!(
            reorder(&ctx, &written, Strategy::EliminateCrossJoins)
                .await
                .is_none()
        );
        let best = plan(
            &ctx,
            "SELECT count(*) FROM orders o JOIN nation n ON o.nation = n.id \
             JOIN customer c ON o.customer = c.id",
        )
        .await;
        assert!(reorder(&ctx, &best, Strategy::Automatic).await.is_none());
        // A chain (nation - customer - orders): as written.
        let chain = plan(
            &ctx,
            "SELECT count(*) FROM nation n JOIN customer c ON c.nation = n.id \
             JOIN orders o ON o.customer = c.id",
        )
        .await;
        assert!(reorder(&ctx, &chain, Strategy::Automatic).await.is_none());
        let two = plan(
            &ctx,
            "SELECT count(*) FROM nation n JOIN orders o ON o.nation = n.id",
        )
        .await;
        assert!(reorder(&ctx, &two, Strategy::Automatic).await.is_none());
    }
}
