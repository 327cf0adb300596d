//! An ordered result without a single-task merge stage. DataFusion plans `ORDER BY` as a sort
//! per partition under a `SortPreservingMergeExec`, which Ballista runs as one more stage: one
//! task reads every sorted partition, merges them and writes the whole result to disk again
//! before the client can read a row (6.9 M rows of the seed's query: the longest task of the
//! job). Here the query's top `Sort` (under a projection that keeps its keys, under a `LIMIT`)
//! becomes a [`PartitionSortNode`]: each final partition sorted by the executors' tasks (a
//! TopK with `LIMIT`), and the scheduler merges the partitions while it streams them to the
//! client ([`ResultOrder`], `flight_sql::results`): one endpoint, in order, with the `LIMIT`
//! and `OFFSET` applied there.

use std::fmt;
use std::sync::Arc;

use arrow::compute::SortOptions;
use async_trait::async_trait;
use datafusion::common::{Column, DFSchemaRef, Result as DfResult};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::logical_plan::{FetchType, SkipType};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, SortExpr, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use tributary_proto::ResultSortKey;

/// How the scheduler merges a job's final partitions: each is sorted by `keys` (columns of
/// the result); rows `skip..skip + fetch` of the merge are the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultOrder {
    /// Sort keys, most significant first.
    pub keys: Vec<ResultSortKey>,
    /// Rows of the merge skipped (`OFFSET`).
    pub skip: usize,
    /// Rows returned after the skipped ones (`LIMIT`), or all.
    pub fetch: Option<usize>,
}

impl ResultOrder {
    /// The result's row count, given the rows of all partitions.
    pub fn rows(&self, total: i64) -> i64 {
        if total < 0 {
            return total;
        }
        let after_skip = (total as u64).saturating_sub(self.skip as u64);
        let rows = match self.fetch {
            Some(fetch) => after_skip.min(fetch as u64),
            None => after_skip,
        };
        i64::try_from(rows).unwrap_or(i64::MAX)
    }

    /// The sort keys as written (`order_date DESC NULLS FIRST, …`), for EXPLAIN.
    pub fn describe(&self, names: &[String]) -> String {
        let mut keys: Vec<String> = self
            .keys
            .iter()
            .map(|k| {
                let name = names
                    .get(k.column as usize)
                    .map_or_else(|| format!("#{}", k.column), Clone::clone);
                format!(
                    "{name} {} NULLS {}",
                    if k.descending { "DESC" } else { "ASC" },
                    if k.nulls_first { "FIRST" } else { "LAST" }
                )
            })
            .collect();
        if self.skip > 0 {
            keys.push(format!("offset {}", self.skip));
        }
        if let Some(fetch) = self.fetch {
            keys.push(format!("limit {fetch}"));
        }
        keys.join(", ")
    }
}

/// `plan` with its top `Sort` sorting each partition instead, and how the scheduler merges
/// the partitions; `None` when the plan's root is not such a sort, or a sort key is not a
/// column of the result (the scheduler merges result rows by their columns).
pub(crate) fn split(plan: &LogicalPlan) -> Option<(LogicalPlan, ResultOrder)> {
    // LIMIT/OFFSET above the rest: applied by the merge.
    let (skip, limit, below_limit) = match plan {
        LogicalPlan::Limit(limit) => {
            let SkipType::Literal(skip) = limit.get_skip_type().ok()? else {
                return None;
            };
            let FetchType::Literal(fetch) = limit.get_fetch_type().ok()? else {
                return None;
            };
            (skip, fetch, limit.input.as_ref())
        }
        other => (0, None, other),
    };
    // A projection keeping the sort keys as columns (aliased or not).
    let (projection, sort) = match below_limit {
        LogicalPlan::Projection(projection) => match projection.input.as_ref() {
            LogicalPlan::Sort(sort) => (Some(projection), sort),
            _ => return None,
        },
        LogicalPlan::Sort(sort) => (None, sort),
        _ => return None,
    };
    let mut keys = Vec::with_capacity(sort.expr.len());
    for sort_expr in &sort.expr {
        let Expr::Column(column) = &sort_expr.expr else {
            return None;
        };
        let index = match projection {
            Some(projection) => projection.expr.iter().position(|e| projects(e, column))?,
            None => sort.input.schema().index_of_column(column).ok()?,
        };
        keys.push(ResultSortKey {
            column: u32::try_from(index).ok()?,
            descending: !sort_expr.asc,
            nulls_first: sort_expr.nulls_first,
        });
    }
    if keys.is_empty() {
        return None;
    }
    // The rows the result needs from each partition: its first `skip + limit` (a TopK).
    let needed = limit.map(|l| l.saturating_add(skip));
    let fetch = match (sort.fetch, needed) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    // A sort's own fetch (a LIMIT pushed into it) bounds the result too.
    let result_fetch = match (sort.fetch.map(|f| f.saturating_sub(skip)), limit) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let partition_sort = LogicalPlan::Extension(Extension {
        node: Arc::new(PartitionSortNode {
            input: sort.input.as_ref().clone(),
            expr: sort.expr.clone(),
            fetch,
        }),
    });
    let rewritten = match projection {
        Some(projection) => below_limit
            .with_new_exprs(projection.expr.clone(), vec![partition_sort])
            .ok()?,
        None => partition_sort,
    };
    Some((
        rewritten,
        ResultOrder {
            keys,
            skip,
            fetch: result_fetch,
        },
    ))
}

/// Whether a projection expression outputs `column` unchanged.
fn projects(expr: &Expr, column: &Column) -> bool {
    match expr {
        Expr::Column(c) => c == column,
        Expr::Alias(alias) => matches!(alias.expr.as_ref(), Expr::Column(c) if c == column),
        _ => false,
    }
}

/// Sorts each partition of `input` by `expr`, keeping at most `fetch` rows of each.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub(crate) struct PartitionSortNode {
    input: LogicalPlan,
    expr: Vec<SortExpr>,
    fetch: Option<usize>,
}

impl UserDefinedLogicalNodeCore for PartitionSortNode {
    fn name(&self) -> &str {
        "PartitionSort"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        self.expr.iter().map(|s| s.expr.clone()).collect()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let keys: Vec<String> = self.expr.iter().map(ToString::to_string).collect();
        write!(f, "PartitionSort: {}", keys.join(", "))?;
        if let Some(fetch) = self.fetch {
            write!(f, ", fetch={fetch}")?;
        }
        write!(f, " (partitions merged by the scheduler)")
    }

    fn with_exprs_and_inputs(&self, exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> DfResult<Self> {
        let input = inputs
            .into_iter()
            .next()
            .ok_or_else(|| DataFusionError::Internal("PartitionSort needs one input".into()))?;
        if exprs.len() != self.expr.len() {
            return Err(DataFusionError::Internal(format!(
                "PartitionSort has {} keys, got {} expressions",
                self.expr.len(),
                exprs.len()
            )));
        }
        let expr = self
            .expr
            .iter()
            .zip(exprs)
            .map(|(s, e)| SortExpr::new(e, s.asc, s.nulls_first))
            .collect();
        Ok(Self {
            input,
            expr,
            fetch: self.fetch,
        })
    }

    fn supports_limit_pushdown(&self) -> bool {
        false
    }
}

/// Plans a [`PartitionSortNode`] as a `SortExec` that keeps its input's partitions.
#[derive(Debug, Default)]
pub(crate) struct PartitionSortPlanner;

#[async_trait]
impl ExtensionPlanner for PartitionSortPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn datafusion::catalog::Session,
        planning_ctx: &PhysicalPlanningContext,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        let Some(sort) = node.as_any().downcast_ref::<PartitionSortNode>() else {
            return Ok(None);
        };
        let ([logical], [input]) = (logical_inputs, physical_inputs) else {
            return Ok(None);
        };
        let mut ordering = Vec::with_capacity(sort.expr.len());
        for s in &sort.expr {
            let expr =
                planner.create_physical_expr(&s.expr, logical.schema(), session, planning_ctx)?;
            ordering.push(PhysicalSortExpr::new(
                expr,
                SortOptions {
                    descending: !s.asc,
                    nulls_first: s.nulls_first,
                },
            ));
        }
        let ordering = LexOrdering::new(ordering)
            .ok_or_else(|| DataFusionError::Internal("PartitionSort without keys".into()))?;
        Ok(Some(Arc::new(
            SortExec::new(ordering, Arc::clone(input))
                .with_preserve_partitioning(true)
                .with_fetch(sort.fetch),
        )))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    use super::*;

    async fn plan(sql: &str) -> LogicalPlan {
        let ctx = SessionContext::new();
        ctx.sql(
            "CREATE TABLE t (a INT, b VARCHAR, c DOUBLE) AS VALUES (1, 'x', 1.5), (2, NULL, 2.5)",
        )
        .await
        .expect("table");
        ctx.sql(sql)
            .await
            .expect("query")
            .into_optimized_plan()
            .expect("plan")
    }

    fn key(column: u32, descending: bool, nulls_first: bool) -> ResultSortKey {
        ResultSortKey {
            column,
            descending,
            nulls_first,
        }
    }

    #[tokio::test]
    async fn an_order_by_sorts_partitions_and_the_scheduler_merges_them() {
        let (rewritten, order) =
            split(&plan("SELECT a, b FROM t ORDER BY b DESC, a").await).expect("an order to merge");
        assert_eq!(
            order,
            ResultOrder {
                keys: vec![key(1, true, true), key(0, false, false)],
                skip: 0,
                fetch: None,
            }
        );
        let text = rewritten.display_indent().to_string();
        assert!(text.contains("PartitionSort"), "{text}");
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with("Sort:")),
            "{text}"
        );
        assert_eq!(
            rewritten.schema(),
            plan("SELECT a, b FROM t ORDER BY b DESC, a").await.schema()
        );
    }

    #[tokio::test]
    async fn keys_are_found_through_a_projection_and_aliases() {
        let (_, order) = split(&plan("SELECT c, a AS first FROM t ORDER BY a NULLS FIRST").await)
            .expect("an order to merge");
        assert_eq!(order.keys, vec![key(1, false, true)]);
    }

    #[tokio::test]
    async fn limit_and_offset_are_applied_by_the_merge_and_bound_each_partition() {
        let (rewritten, order) = split(&plan("SELECT a FROM t ORDER BY a LIMIT 10 OFFSET 5").await)
            .expect("an order to merge");
        assert_eq!((order.skip, order.fetch), (5, Some(10)));
        assert!(rewritten.display_indent().to_string().contains("fetch=15"));
        assert_eq!(order.rows(100), 10);
        assert_eq!(order.rows(12), 7);
        assert_eq!(order.rows(3), 0);
        assert_eq!(order.rows(-1), -1);
    }

    #[tokio::test]
    async fn plans_the_scheduler_cannot_merge_are_left_alone() {
        // A key that is not a column of the result, an expression key, no ORDER BY.
        assert!(split(&plan("SELECT b FROM t ORDER BY a").await).is_none());
        assert!(split(&plan("SELECT a FROM t ORDER BY a + 1").await).is_none());
        assert!(split(&plan("SELECT a FROM t").await).is_none());
        assert!(split(&plan("SELECT count(*) FROM t").await).is_none());
    }

    #[tokio::test]
    async fn describes_its_keys_by_name() {
        let (_, order) = split(&plan("SELECT a, b FROM t ORDER BY b DESC LIMIT 3").await)
            .expect("an order to merge");
        assert_eq!(
            order.describe(&["a".into(), "b".into()]),
            "b DESC NULLS FIRST, limit 3"
        );
    }
}
