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

use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::default_table_source::{provider_as_source, source_as_provider};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, NullEquality, Result as DfResult, TableReference};
use datafusion::logical_expr::{
    Aggregate, Expr, Join, JoinType, LogicalPlan, LogicalPlanBuilder, Sort,
    TableProviderFilterPushDown, TableScan, TableType,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use datafusion::physical_plan::ExecutionPlan;
use serde::{Deserialize, Serialize};
use tributary_connector::{ScanBuilder, SplitInfo};

use crate::client::SqlClient;
use crate::dialect::{Dialect, Exactness};
use crate::pushdown::Pushdown;
use crate::reader::{SqlReader, TableHandle};
use crate::table::{SqlTable, TableColumn};
use crate::types::{ColumnMapping, ReadAs};

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
        let provider = Arc::new(SqlQueryTable {
            client: Arc::clone(table.client()),
            schema: handle.arrow_schema(),
            handle,
        });
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

fn push_aggregate(aggregate: &Aggregate) -> DfResult<Option<LogicalPlan>> {
    let Some((provider, scan)) = base(&aggregate.input)? else {
        return Ok(None);
    };
    let Some(table) = provider.downcast_ref::<SqlTable>() else {
        return Ok(None);
    };
    let Some(base) = with_filters(table, scan) else {
        return Ok(None);
    };
    let dialect = base.dialect();
    let fields = aggregate.schema.fields();
    let mut select = Vec::new();
    let mut group_by = Vec::new();
    let mut outputs = Vec::new();
    for (i, g) in aggregate.group_expr.iter().enumerate() {
        let g = match g {
            Expr::Alias(alias) => alias.expr.as_ref(),
            other => other,
        };
        let Some(c) = base.column(g) else {
            return Ok(None);
        };
        // Text keys group by the collation (MySQL merges 'a' and 'A').
        if Base::is_text(c) && dialect == Dialect::MySql {
            return Ok(None);
        }
        if fields[i].data_type() != &c.data_type() {
            return Ok(None);
        }
        let q = dialect.quote(&c.remote);
        select.push(q.clone());
        group_by.push(q);
        outputs.push((c.name.clone(), c.mapping.clone()));
    }
    for (j, a) in aggregate.aggr_expr.iter().enumerate() {
        let out_type = fields[aggregate.group_expr.len() + j].data_type();
        let inner = match a {
            Expr::Alias(alias) => alias.expr.as_ref(),
            other => other,
        };
        let Expr::AggregateFunction(f) = inner else {
            return Ok(None);
        };
        let params = &f.params;
        if params.filter.is_some() || !params.order_by.is_empty() || params.null_treatment.is_some()
        {
            return Ok(None);
        }
        let name = f.func.name().to_ascii_lowercase();
        let arg = params.args.first();
        let Some((sql, mapping)) = aggregate_sql(&base, &name, arg, params.distinct, out_type)
        else {
            return Ok(None);
        };
        select.push(sql);
        outputs.push((String::new(), mapping));
    }
    let query = RemoteQuery {
        select,
        group_by,
        order_by: vec![],
        limit: None,
        from: None,
    };
    base.replace(&LogicalPlan::Aggregate(aggregate.clone()), outputs, query)
        .map(Some)
}

/// The remote SQL of one aggregate and how its value is read, when it is exact.
fn aggregate_sql(
    base: &Base<'_>,
    name: &str,
    arg: Option<&Expr>,
    distinct: bool,
    out_type: &DataType,
) -> Option<(String, ColumnMapping)> {
    let dialect = base.dialect();
    let native = |read_as| ColumnMapping {
        read_as,
        as_text: false,
        padded: false,
    };
    let count_star = matches!(arg, Some(Expr::Literal(s, _)) if !s.is_null()) || arg.is_none();
    if name == "count" && count_star && !distinct {
        return (out_type == &DataType::Int64)
            .then(|| ("COUNT(*)".to_owned(), native(ReadAs::I64)));
    }
    let c = base.column(arg?)?;
    let q = dialect.quote(&c.remote);
    match name {
        "count" => {
            if out_type != &DataType::Int64 || (distinct && !base.orders_like_us(c)) {
                return None;
            }
            let d = if distinct { "DISTINCT " } else { "" };
            Some((format!("COUNT({d}{q})"), native(ReadAs::I64)))
        }
        "min" | "max" if !distinct || base.orders_like_us(c) => {
            // PostgreSQL has no min/max of booleans.
            if !base.orders_like_us(c)
                || out_type != &c.data_type()
                || c.data_type() == DataType::Boolean
            {
                return None;
            }
            Some((format!("{}({q})", name.to_uppercase()), c.mapping.clone()))
        }
        "sum" if !distinct => match (c.data_type(), out_type) {
            (
                DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64,
                DataType::Int64,
            ) => {
                let cast = match dialect {
                    Dialect::MySql => format!("CAST(SUM({q}) AS SIGNED)"),
                    Dialect::Postgres => format!("CAST(SUM({q}) AS BIGINT)"),
                    Dialect::Sqlite => format!("SUM({q})"),
                };
                Some((cast, native(ReadAs::I64)))
            }
            (DataType::Decimal128(..), DataType::Decimal128(p, s))
                if dialect != Dialect::Sqlite =>
            {
                let exact = format!("CAST(SUM({q}) AS DECIMAL({p},{s}))");
                if *p <= 28 {
                    Some((
                        exact,
                        native(ReadAs::Decimal {
                            precision: *p,
                            scale: *s,
                        }),
                    ))
                } else {
                    let text = dialect.as_text(&exact);
                    Some((
                        text,
                        ColumnMapping {
                            read_as: ReadAs::DecimalText {
                                precision: *p,
                                scale: *s,
                            },
                            as_text: true,
                            padded: false,
                        },
                    ))
                }
            }
            _ => None,
        },
        _ => None,
    }
}

fn push_top_n(sort: &Sort) -> DfResult<Option<LogicalPlan>> {
    let Some(fetch) = sort.fetch else {
        return Ok(None);
    };
    let Some((provider, scan)) = base(&sort.input)? else {
        return Ok(None);
    };
    let Some(table) = provider.downcast_ref::<SqlTable>() else {
        return Ok(None);
    };
    let Some(base) = with_filters(table, scan) else {
        return Ok(None);
    };
    let dialect = base.dialect();
    let mut order_by = Vec::new();
    for s in &sort.expr {
        let Some(c) = base.column(&s.expr) else {
            return Ok(None);
        };
        if !base.orders_like_us(c) {
            return Ok(None);
        }
        let q = dialect.quote(&c.remote);
        let dir = if s.asc { "ASC" } else { "DESC" };
        order_by.push(match dialect {
            Dialect::MySql => format!(
                "({q} IS NULL) {}, {q} {dir}",
                if s.nulls_first { "DESC" } else { "ASC" }
            ),
            _ => format!(
                "{q} {dir} NULLS {}",
                if s.nulls_first { "FIRST" } else { "LAST" }
            ),
        });
    }
    // The scan's own columns, in its projected order; the sort stays above (over n rows) so
    // the order is guaranteed whatever runs between.
    let projected: Vec<&TableColumn> = match &scan.projection {
        Some(p) => p.iter().map(|i| &table.handle().columns[*i]).collect(),
        None => table.handle().columns.iter().collect(),
    };
    if projected
        .iter()
        .any(|c| c.mapping.as_text && c.mapping.read_as != ReadAs::Text)
    {
        return Ok(None);
    }
    let select = projected
        .iter()
        .map(|c| {
            let q = dialect.quote(&c.remote);
            if c.mapping.as_text {
                dialect.as_text(&q)
            } else {
                q
            }
        })
        .collect();
    let outputs = projected
        .iter()
        .map(|c| (c.name.clone(), c.mapping.clone()))
        .collect();
    let query = RemoteQuery {
        select,
        group_by: vec![],
        order_by,
        limit: Some(fetch),
        from: None,
    };
    let fragment = LogicalPlan::TableScan(scan.clone());
    let remote = base.replace(&fragment, outputs, query)?;
    Ok(Some(LogicalPlan::Sort(Sort {
        expr: sort.expr.clone(),
        input: Arc::new(remote),
        fetch: Some(fetch),
    })))
}

/// An inner or left join of two tables of the same catalog on equal keys, when both scans'
/// filters are exact and the database compares the keys as Tributary does.
fn push_join(join: &Join) -> DfResult<Option<LogicalPlan>> {
    if !matches!(join.join_type, JoinType::Inner | JoinType::Left)
        || join.filter.is_some()
        || join.null_equality != NullEquality::NullEqualsNothing
        || join.on.is_empty()
    {
        return Ok(None);
    }
    let (Some((lp, ls)), Some((rp, rs))) = (base(&join.left)?, base(&join.right)?) else {
        return Ok(None);
    };
    let (Some(left), Some(right)) = (lp.downcast_ref::<SqlTable>(), rp.downcast_ref::<SqlTable>())
    else {
        return Ok(None);
    };
    if !Arc::ptr_eq(left.client(), right.client()) || !left.client().config().filter_pushdown {
        return Ok(None);
    }
    let dialect = left.client().dialect();
    // Filters of both sides, qualified by the side's alias, parameters numbered in order.
    let mut params = Vec::new();
    let mut conditions = Vec::new();
    for (table, scan, alias) in [(left, ls, "l"), (right, rs, "r")] {
        let p = Pushdown {
            dialect,
            columns: &table.handle().columns,
            qualifier: Some(alias),
        };
        for f in &scan.filters {
            match p.translate(f, &mut params) {
                Some((sql, Exactness::Exact)) => conditions.push(sql),
                _ => return Ok(None),
            }
        }
    }
    let column = |table: &SqlTable, expr: &Expr| -> Option<TableColumn> {
        let Expr::Column(c) = expr else { return None };
        table
            .handle()
            .columns
            .iter()
            .find(|t| t.name == c.name && !t.mapping.as_text)
            .cloned()
    };
    let mut on = Vec::new();
    for (l, r) in &join.on {
        let (Some(lc), Some(rc)) = (column(left, l), column(right, r)) else {
            return Ok(None);
        };
        if lc.data_type() != rc.data_type()
            || dialect.comparison(&lc.data_type(), "=") != Exactness::Exact
            || lc.mapping.padded
            || rc.mapping.padded
        {
            return Ok(None);
        }
        on.push(format!(
            "l.{} = r.{}",
            dialect.quote(&lc.remote),
            dialect.quote(&rc.remote)
        ));
    }
    let projected = |table: &SqlTable, scan: &TableScan| -> Vec<TableColumn> {
        match &scan.projection {
            Some(p) => p
                .iter()
                .map(|i| table.handle().columns[*i].clone())
                .collect(),
            None => table.handle().columns.clone(),
        }
    };
    let mut select = Vec::new();
    let mut outputs = Vec::new();
    for (table, scan, alias) in [(left, ls, "l"), (right, rs, "r")] {
        for c in projected(table, scan) {
            let q = format!("{alias}.{}", dialect.quote(&c.remote));
            select.push(if c.mapping.as_text {
                dialect.as_text(&q)
            } else {
                q
            });
            outputs.push((c.name.clone(), c.mapping.clone()));
        }
    }
    if outputs.len() != join.schema.fields().len() {
        return Ok(None);
    }
    let name = |t: &SqlTable| match dialect {
        Dialect::Sqlite => dialect.quote(&t.handle().table),
        d => d.table_name(&t.handle().schema, &t.handle().table),
    };
    let kind = if join.join_type == JoinType::Left {
        "LEFT JOIN"
    } else {
        "JOIN"
    };
    let from = format!(
        "{} l {kind} {} r ON {}",
        name(left),
        name(right),
        on.join(" AND ")
    );
    let query = RemoteQuery {
        select,
        group_by: vec![],
        order_by: vec![],
        limit: None,
        from: Some(from),
    };
    let filter = (!conditions.is_empty()).then(|| conditions.join(" AND "));
    replace(
        left,
        ls,
        filter,
        params,
        &LogicalPlan::Join(join.clone()),
        outputs,
        query,
    )
    .map(Some)
}

/// A remote query's result as a table: read as one split.
#[derive(Debug)]
pub(crate) struct SqlQueryTable {
    client: Arc<SqlClient>,
    handle: TableHandle,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for SqlQueryTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![
            TableProviderFilterPushDown::Unsupported;
            filters.len()
        ])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let reader = Arc::new(SqlReader::new(
            Arc::clone(&self.client),
            self.handle.clone(),
        ));
        ScanBuilder::new(self.client.config().catalog.clone(), reader)
            .with_splits(vec![SplitInfo::new("all", 0)])
            .with_projection(projection)
            .with_limit(limit)
            .build()
    }
}
