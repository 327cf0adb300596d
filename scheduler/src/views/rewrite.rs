//! Answering a query from a materialized view it does not name. A view `SELECT e1 AS c1, …
//! FROM <X>` answers any part of a query shaped `SELECT f(…) FROM <X> [WHERE p(…)]` in which
//! `<X>` is the same join/aggregate/filter over the same tables (aliases may differ) and
//! every expression `f` and `p` uses over `<X>` is one of the view's `e`s or is built from
//! them: the part becomes `SELECT f'(c…) FROM view [WHERE p'(c…)]`. The plans are compared
//! in a canonical text where every column is named by the table it comes from, not by the
//! alias the query gave it.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, TableReference};
use datafusion::logical_expr::{Expr, Filter, LogicalPlan, Projection};

/// A materialized view prepared for matching.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// `catalog.schema.view`.
    pub name: String,
    /// Canonical text of the part under the view's projection.
    body: String,
    /// Canonical text of each projected expression → the view's column name.
    columns: HashMap<String, String>,
}

impl Candidate {
    /// Prepares a view's planned query (names resolved); `None` if it has no shape a query
    /// could match (its top is not a projection, or it reads something without a name).
    pub(crate) fn new(name: &str, plan: &LogicalPlan) -> Option<Self> {
        let LogicalPlan::Projection(projection) = plan else {
            return None;
        };
        let (body, aliases) = canonical(&projection.input)?;
        let mut columns = HashMap::new();
        for (expr, field) in projection.expr.iter().zip(plan.schema().fields()) {
            let inner = match expr {
                Expr::Alias(alias) => alias.expr.as_ref(),
                other => other,
            };
            // The same expression twice under two names: either name answers it.
            columns
                .entry(canonical_expr(inner, &aliases))
                .or_insert_with(|| field.name().clone());
        }
        Some(Self {
            name: name.to_owned(),
            body,
            columns,
        })
    }
}

/// Rewrites the first part of `plan` that `candidate` answers; `view` is the plan reading the
/// view's rows (with the view's columns). `None` if no part matches.
pub(crate) fn rewrite(
    plan: &LogicalPlan,
    candidate: &Candidate,
    view: &LogicalPlan,
) -> Option<LogicalPlan> {
    let mut done = false;
    let rewritten = plan
        .clone()
        .transform_down_with_subqueries(|node| {
            if done {
                return Ok(Transformed::new(node, false, TreeNodeRecursion::Jump));
            }
            match rewrite_projection(&node, candidate, view) {
                Some(new) => {
                    done = true;
                    Ok(Transformed::new(new, true, TreeNodeRecursion::Jump))
                }
                None => Ok(Transformed::no(node)),
            }
        })
        .ok()?;
    done.then_some(rewritten.data)
}

/// `Projection(exprs, [Filter(p,)] X)` with X the view's body → the same over the view.
fn rewrite_projection(
    node: &LogicalPlan,
    candidate: &Candidate,
    view: &LogicalPlan,
) -> Option<LogicalPlan> {
    let LogicalPlan::Projection(projection) = node else {
        return None;
    };
    // The part under the projection is the view's body…
    if let Some((text, aliases)) = canonical(&projection.input)
        && text == candidate.body
    {
        return project_over_view(projection, None, &aliases, candidate, view);
    }
    // …or the view's body under one more filter.
    let LogicalPlan::Filter(filter) = projection.input.as_ref() else {
        return None;
    };
    let (text, aliases) = canonical(&filter.input)?;
    if text != candidate.body {
        return None;
    }
    project_over_view(
        projection,
        Some(&filter.predicate),
        &aliases,
        candidate,
        view,
    )
}

fn project_over_view(
    projection: &Projection,
    filter: Option<&Expr>,
    aliases: &HashMap<String, String>,
    candidate: &Candidate,
    view: &LogicalPlan,
) -> Option<LogicalPlan> {
    let qualifier = TableReference::parse_str(&candidate.name);
    let over = |expr: &Expr| -> Option<Expr> { replace(expr, aliases, candidate, &qualifier) };
    let view = LogicalPlan::SubqueryAlias(
        datafusion::logical_expr::SubqueryAlias::try_new(Arc::new(view.clone()), qualifier.clone())
            .ok()?,
    );
    let input = match filter {
        Some(predicate) => {
            LogicalPlan::Filter(Filter::try_new(over(predicate)?, Arc::new(view)).ok()?)
        }
        None => view,
    };
    let mut exprs = Vec::with_capacity(projection.expr.len());
    for (expr, (field_qualifier, field)) in projection.expr.iter().zip(projection.schema.iter()) {
        let inner = match expr {
            Expr::Alias(alias) => alias.expr.as_ref(),
            other => other,
        };
        exprs.push(over(inner)?.alias_qualified(field_qualifier.cloned(), field.name()));
    }
    Projection::try_new(exprs, Arc::new(input))
        .ok()
        .map(LogicalPlan::Projection)
}

/// `expr` over the view's columns: every part that is one of the view's expressions becomes
/// that column; a column left over means the view cannot answer it.
fn replace(
    expr: &Expr,
    aliases: &HashMap<String, String>,
    candidate: &Candidate,
    qualifier: &TableReference,
) -> Option<Expr> {
    let mut missing = false;
    let replaced = expr
        .clone()
        .transform_down(|e| {
            if let Some(name) = candidate.columns.get(&canonical_expr(&e, aliases)) {
                let column = Expr::Column(Column::new(Some(qualifier.clone()), name));
                return Ok(Transformed::new(column, true, TreeNodeRecursion::Jump));
            }
            if matches!(e, Expr::Column(_)) {
                missing = true;
            }
            Ok(Transformed::no(e))
        })
        .ok()?;
    (!missing).then_some(replaced.data)
}

/// The canonical text of a plan and, for each qualifier its output uses, the table (or
/// canonical subquery) it stands for. `None` for plans that cannot be compared.
fn canonical(plan: &LogicalPlan) -> Option<(String, HashMap<String, String>)> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            if !scan.filters.is_empty() || scan.fetch.is_some() {
                return None;
            }
            let name = super::source_key(&scan.table_name)?;
            let mut aliases = HashMap::new();
            aliases.insert(scan.table_name.to_string(), name.clone());
            Some((format!("Scan({name})"), aliases))
        }
        LogicalPlan::SubqueryAlias(alias) => {
            let (text, inner) = canonical(&alias.input)?;
            let stands_for = match alias.input.as_ref() {
                LogicalPlan::TableScan(_) | LogicalPlan::SubqueryAlias(_) if inner.len() == 1 => {
                    inner.values().next()?.clone()
                }
                _ => format!("({text})"),
            };
            let mut aliases = HashMap::new();
            aliases.insert(alias.alias.to_string(), stands_for);
            Some((text, aliases))
        }
        LogicalPlan::Projection(projection) => {
            let (text, aliases) = canonical(&projection.input)?;
            let exprs: Vec<String> = projection
                .expr
                .iter()
                .zip(projection.schema.fields())
                .map(|(e, f)| format!("{} AS {}", canonical_expr(e, &aliases), f.name()))
                .collect();
            Some((format!("Projection[{}]({text})", exprs.join(", ")), aliases))
        }
        LogicalPlan::Filter(filter) => {
            let (text, aliases) = canonical(&filter.input)?;
            let predicate = canonical_expr(&filter.predicate, &aliases);
            Some((format!("Filter[{predicate}]({text})"), aliases))
        }
        LogicalPlan::Join(join) => {
            let (left, mut aliases) = canonical(&join.left)?;
            let (right, right_aliases) = canonical(&join.right)?;
            // A table on both sides (a self-join) would make its columns ambiguous here.
            if right_aliases
                .values()
                .any(|table| aliases.values().any(|t| t == table))
            {
                return None;
            }
            aliases.extend(right_aliases);
            let on: Vec<String> = join
                .on
                .iter()
                .map(|(l, r)| {
                    format!(
                        "{}={}",
                        canonical_expr(l, &aliases),
                        canonical_expr(r, &aliases)
                    )
                })
                .collect();
            let filter = join
                .filter
                .as_ref()
                .map(|f| canonical_expr(f, &aliases))
                .unwrap_or_default();
            Some((
                format!(
                    "Join[{}; {}; {filter}; {:?}]({left}, {right})",
                    join.join_type,
                    on.join(", "),
                    join.null_equality
                ),
                aliases,
            ))
        }
        LogicalPlan::Aggregate(aggregate) => {
            let (text, aliases) = canonical(&aggregate.input)?;
            let groups: Vec<String> = aggregate
                .group_expr
                .iter()
                .map(|e| canonical_expr(e, &aliases))
                .collect();
            let aggregates: Vec<String> = aggregate
                .aggr_expr
                .iter()
                .map(|e| canonical_expr(e, &aliases))
                .collect();
            Some((
                format!(
                    "Aggregate[{}; {}]({text})",
                    groups.join(", "),
                    aggregates.join(", ")
                ),
                aliases,
            ))
        }
        _ => None,
    }
}

/// An expression's text with every column named by the table its qualifier stands for.
fn canonical_expr(expr: &Expr, aliases: &HashMap<String, String>) -> String {
    let renamed = expr.clone().transform_up(|e| match e {
        Expr::Column(c) => {
            let table = c
                .relation
                .as_ref()
                .and_then(|r| aliases.get(&r.to_string()))
                .cloned()
                .unwrap_or_else(|| {
                    c.relation
                        .as_ref()
                        .map(|r| r.to_string())
                        .unwrap_or_default()
                });
            Ok(Transformed::yes(Expr::Column(Column::new(
                Some(TableReference::bare(table)),
                c.name,
            ))))
        }
        Expr::Alias(alias) => Ok(Transformed::yes(*alias.expr)),
        other => Ok(Transformed::no(other)),
    });
    match renamed {
        Ok(t) => t.data.to_string(),
        Err(_) => expr.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::logical_expr::LogicalPlan;
    use datafusion::prelude::SessionContext;

    use super::{Candidate, rewrite};
    use crate::views::expand::resolve_names;
    use crate::views::incremental::{Merge, Shape, shape};

    fn ctx() -> SessionContext {
        let ctx = SessionContext::new();
        let table = |fields: Vec<Field>| {
            Arc::new(MemTable::try_new(Arc::new(Schema::new(fields)), vec![vec![]]).expect("table"))
        };
        ctx.register_table(
            "orders",
            table(vec![
                Field::new("order_id", DataType::Int64, true),
                Field::new("product_id", DataType::Int64, true),
                Field::new("quantity", DataType::Int64, true),
                Field::new("order_date", DataType::Date32, true),
            ]),
        )
        .expect("orders");
        ctx.register_table(
            "products",
            table(vec![
                Field::new("product_id", DataType::Int64, true),
                Field::new("price", DataType::Int64, true),
            ]),
        )
        .expect("products");
        ctx
    }

    async fn plan(ctx: &SessionContext, sql: &str) -> LogicalPlan {
        let state = ctx.state();
        resolve_names(state.create_logical_plan(sql).await.expect(sql), &state).expect("resolve")
    }

    const VIEW: &str = "SELECT o.order_id, o.order_date, o.quantity * p.price AS total_value \
                        FROM orders o JOIN products p ON o.product_id = p.product_id";

    #[tokio::test]
    async fn rewrites_a_query_containing_the_view() {
        let ctx = ctx();
        let candidate =
            Candidate::new("datafusion.public.mv", &plan(&ctx, VIEW).await).expect("candidate");
        // The view's rows (its columns, from any table: only the schema matters here).
        let view = plan(
            &ctx,
            "SELECT order_id, order_date, quantity AS total_value FROM orders",
        )
        .await;
        // Other aliases, an extra filter, an expression of the view's columns, ORDER BY.
        let query = plan(
            &ctx,
            "SELECT x.order_id, x.quantity * y.price * 2 AS doubled FROM orders x \
             JOIN products y ON x.product_id = y.product_id \
             WHERE x.order_date > DATE '2025-01-01' ORDER BY doubled",
        )
        .await;
        let rewritten = rewrite(&query, &candidate, &view).expect("rewritten");
        let text = rewritten.display_indent().to_string();
        assert!(text.contains("datafusion.public.mv.total_value"), "{text}");
        assert_eq!(
            rewritten.schema().as_arrow().fields(),
            query.schema().as_arrow().fields()
        );
        // A column the view does not keep, another join condition: not answered by the view.
        for other in [
            "SELECT o.product_id FROM orders o JOIN products p ON o.product_id = p.product_id",
            "SELECT o.order_id FROM orders o JOIN products p ON o.order_id = p.product_id",
        ] {
            assert!(
                rewrite(&plan(&ctx, other).await, &candidate, &view).is_none(),
                "{other}"
            );
        }
    }

    #[tokio::test]
    async fn finds_what_can_be_refreshed_incrementally() {
        let ctx = ctx();
        let orders = "datafusion.public.orders";
        let aggregate = plan(
            &ctx,
            "SELECT product_id, count(*) AS n, sum(quantity) AS q, min(order_date) AS first \
             FROM orders GROUP BY product_id",
        )
        .await;
        assert_eq!(
            shape(&aggregate, orders),
            Some(Shape::Merge(vec![
                Merge::Key,
                Merge::Sum,
                Merge::Sum,
                Merge::Min
            ]))
        );
        assert_eq!(shape(&plan(&ctx, VIEW).await, orders), Some(Shape::Append));
        for not_incremental in [
            "SELECT o.order_id FROM orders o LEFT JOIN products p ON o.product_id = p.product_id",
            "SELECT product_id, avg(quantity) AS a FROM orders GROUP BY product_id",
            "SELECT count(DISTINCT product_id) AS n FROM orders",
            "SELECT a.order_id FROM orders a JOIN orders b ON a.order_id = b.order_id",
            "SELECT order_id FROM orders ORDER BY order_id LIMIT 3",
            "SELECT count(*) AS n FROM orders GROUP BY product_id",
            "SELECT o.order_id FROM orders o JOIN products p ON o.product_id = p.product_id \
             JOIN orders o2 ON o2.order_id = o.order_id",
        ] {
            assert_eq!(
                shape(&plan(&ctx, not_incremental).await, orders),
                None,
                "{not_incremental}"
            );
        }
    }
}
