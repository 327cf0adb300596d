//! Whole plan fragments sent to the database: aggregates (`count`, `sum`, `min`, `max` with
//! GROUP BY) and top-N (`ORDER BY … LIMIT n`) over one table, when the database computes
//! exactly what Tributary would. A logical optimizer rule ([`SqlPushdownRule`]) replaces
//! the fragment by a scan of a [`SqlQueryTable`] whose remote SQL does the work; the rest of
//! the plan reads its output under the fragment's own column names.
//!
//! Kept conservative: only plain columns as arguments and keys; no text keys or text min/max
//! where the collation orders or groups differently (MySQL, PostgreSQL); no floating-point
//! sums (the order of additions changes the last bits); every filter of the scan must be
//! exactly pushable. Anything else stays in Tributary.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::catalog::default_table_source::{provider_as_source, source_as_provider};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, Result as DfResult, TableReference};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, TableScan};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use serde::{Deserialize, Serialize};

use crate::dialect::{Dialect, Exactness};
use crate::reader::TableHandle;
use crate::table::{SqlTable, TableColumn};
use crate::types::ColumnMapping;

mod aggregate;
mod join;
mod query_table;
mod top_n;

use aggregate::push_aggregate;
use join::push_join;
use query_table::SqlQueryTable;
use top_n::push_top_n;

/// The parts of a remote query beyond a plain scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RemoteQuery {
    /// One SQL expression per output column.
    pub(crate) select: Vec<String>,
    /// GROUP BY expressions.
    pub(crate) group_by: Vec<String>,
    /// ORDER BY terms.
    pub(crate) order_by: Vec<String>,
    /// LIMIT of the query itself.
    pub(crate) limit: Option<usize>,
    /// FROM clause replacing the table's name (joins).
    #[serde(default)]
    pub(crate) from: Option<String>,
}

/// Rewrites aggregates and top-N over database tables into remote queries.
#[derive(Debug, Default)]
pub struct SqlPushdownRule;

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl OptimizerRule for SqlPushdownRule {
    fn name(&self) -> &str {
        "tributary_sql_pushdown"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        let rewritten = match &plan {
            LogicalPlan::Aggregate(aggregate) => push_aggregate(aggregate)?,
            LogicalPlan::Sort(sort) => push_top_n(sort)?,
            LogicalPlan::Join(join) => push_join(join)?,
            _ => None,
        };
        Ok(match rewritten {
            Some(new_plan) => Transformed::yes(new_plan),
            None => Transformed::no(plan),
        })
    }
}

/// The database table under a plan node, with the SQL of its pushed filters.
struct Base<'a> {
    table: &'a SqlTable,
    scan: &'a TableScan,
    filter: Option<String>,
    params: Vec<crate::value::Value>,
}

fn base(input: &LogicalPlan) -> DfResult<Option<(Arc<dyn TableProvider>, &TableScan)>> {
    let scan = match input {
        LogicalPlan::TableScan(scan) => scan,
        // `FROM t AS a`: the alias only renames; the replaced fragment keeps its schema.
        LogicalPlan::SubqueryAlias(alias) => match alias.input.as_ref() {
            LogicalPlan::TableScan(scan) => scan,
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    if scan.fetch.is_some() {
        return Ok(None);
    }
    let Ok(provider) = source_as_provider(&scan.source) else {
        return Ok(None);
    };
    if !provider.is::<SqlTable>() {
        return Ok(None);
    }
    Ok(Some((provider, scan)))
}

fn with_filters<'a>(table: &'a SqlTable, scan: &'a TableScan) -> Option<Base<'a>> {
    if !table.client().config().filter_pushdown {
        return None;
    }
    let p = table.pushdown();
    let mut params = Vec::new();
    let mut conditions = Vec::new();
    for f in &scan.filters {
        match p.translate(f, &mut params) {
            Some((sql, Exactness::Exact)) => conditions.push(sql),
            _ => return None,
        }
    }
    Some(Base {
        table,
        scan,
        filter: (!conditions.is_empty()).then(|| conditions.join(" AND ")),
        params,
    })
}

/// Runs `push` on the database table under `input` when every filter of its scan is
/// exactly pushable; `None` otherwise.
fn on_base(
    input: &LogicalPlan,
    push: impl FnOnce(&Base<'_>) -> DfResult<Option<LogicalPlan>>,
) -> DfResult<Option<LogicalPlan>> {
    let Some((provider, scan)) = base(input)? else {
        return Ok(None);
    };
    let Some(table) = provider.downcast_ref::<SqlTable>() else {
        return Ok(None);
    };
    match with_filters(table, scan) {
        Some(base) => push(&base),
        None => Ok(None),
    }
}

impl Base<'_> {
    fn dialect(&self) -> Dialect {
        self.table.client().dialect()
    }

    /// A plain, natively read column of the table (under a widening integer cast, which
    /// type coercion adds to `sum` arguments, too).
    fn column(&self, expr: &Expr) -> Option<&TableColumn> {
        let c = match expr {
            Expr::Column(c) => c,
            Expr::Cast(cast) if matches!(cast.field.data_type(), DataType::Int64) => {
                let column = self.column(&cast.expr)?;
                return matches!(
                    column.data_type(),
                    DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
                )
                .then_some(column);
            }
            _ => return None,
        };
        self.table
            .handle()
            .columns
            .iter()
            .find(|t| t.name == c.name && !t.mapping.as_text)
    }

    fn is_text(c: &TableColumn) -> bool {
        matches!(
            c.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        )
    }

    /// Whether the database orders and compares this column's values as Tributary does.
    fn orders_like_us(&self, c: &TableColumn) -> bool {
        match c.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                self.dialect() == Dialect::Sqlite
            }
            DataType::Decimal128(..) => self.dialect() != Dialect::Sqlite,
            DataType::Binary | DataType::List(_) => false,
            _ => true,
        }
    }

    /// Replaces `fragment` (whose output schema is `fragment_schema`) by a scan of a remote
    /// query, under the fragment's column names.
    fn replace(
        &self,
        fragment: &LogicalPlan,
        outputs: Vec<(String, ColumnMapping)>,
        query: RemoteQuery,
    ) -> DfResult<LogicalPlan> {
        replace(
            self.table,
            self.scan,
            self.filter.clone(),
            self.params.clone(),
            fragment,
            outputs,
            query,
        )
    }
}

/// Replaces `fragment` by a scan of the remote `query` (read through `table`'s connection),
/// under the fragment's own column names.
fn replace(
    table: &SqlTable,
    scan: &TableScan,
    filter: Option<String>,
    params: Vec<crate::value::Value>,
    fragment: &LogicalPlan,
    outputs: Vec<(String, ColumnMapping)>,
    query: RemoteQuery,
) -> DfResult<LogicalPlan> {
    {
        let schema = fragment.schema();
        let columns = outputs
            .into_iter()
            .enumerate()
            .map(|(i, (_, mapping))| TableColumn {
                name: format!("c{i}"),
                remote: String::new(),
                mapping,
                nullable: true,
            })
            .collect::<Vec<_>>();
        let base = table.handle();
        let handle = TableHandle {
            schema: base.schema.clone(),
            table: base.table.clone(),
            columns,
            filter,
            params,
            limit: None,
            split_key: None,
            query: Some(query),
            snapshot: None,
        };
        let provider = Arc::new(SqlQueryTable::new(Arc::clone(table.client()), handle));
        let name = TableReference::bare(format!(
            "{}_remote_{}",
            scan.table_name.table(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let scan =
            LogicalPlanBuilder::scan(name.clone(), provider_as_source(provider), None)?.build()?;
        let exprs = schema
            .iter()
            .enumerate()
            .map(|(i, (qualifier, field))| {
                Expr::Column(Column::new(Some(name.clone()), format!("c{i}")))
                    .alias_qualified(qualifier.cloned(), field.name())
            })
            .collect::<Vec<_>>();
        LogicalPlanBuilder::from(scan).project(exprs)?.build()
    }
}
