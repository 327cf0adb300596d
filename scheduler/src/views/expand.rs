//! Planning with views: table names resolved in full, and scans of views replaced by what
//! they read.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::catalog::TableProvider;
use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::common::{Column, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{
    Expr, LogicalPlan, LogicalPlanBuilder, SubqueryAlias, TableScan, cast,
};
use datafusion::prelude::SessionContext;
use tributary_connector::{
    Catalogs, ConnectorMaterializedView, ConnectorView, ViewDefinition, is_view,
};

use super::freshness::{Freshness, FreshnessMemo};
use crate::error::{Result, SchedulerError};

/// Views inside views deeper than this are refused (a view reading itself).
const MAX_DEPTH: usize = 16;

/// How scans of materialized views are answered.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReadOptions {
    /// The statement's freshness lookups (one per view).
    pub memo: Arc<FreshnessMemo>,
    /// Past this age a stale view is read from its sources.
    pub max_staleness: Option<Duration>,
    /// Every materialized view from its sources (planning a definition: its sources are the
    /// base tables, not other views' storage).
    pub sources_only: bool,
}

impl ReadOptions {
    /// For planning a materialized view's definition.
    pub(crate) fn definitions() -> Self {
        Self {
            max_staleness: None,
            sources_only: true,
            memo: Arc::default(),
        }
    }
}

/// What a scan of a materialized view reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MaterializedRead {
    /// The storage, fresh.
    Fresh,
    /// The storage, although a source changed since the refresh.
    Stale,
    /// The defining query.
    Sources,
}

/// Plans SQL in `state` (its default catalog and schema), with hidden columns out of
/// wildcards and every table name resolved in full.
pub(crate) async fn plan_sql(
    ctx: &SessionContext,
    state: &SessionState,
    sql: &str,
) -> Result<LogicalPlan> {
    let dialect = state.config().options().sql_parser.dialect;
    let mut statement = state.sql_to_statement(sql, &dialect)?;
    crate::engine::exclude_hidden(ctx, state, &mut statement).await?;
    let plan = state.statement_to_plan(statement).await?;
    resolve_names(plan, state)
}

/// Gives every scan of a table its full `catalog.schema.table` name. The name as written
/// stays as an alias above the scan (a scan already under an alias, `FROM t AS x`, keeps
/// just that one), so the columns' qualifiers do not change.
pub(crate) fn resolve_names(plan: LogicalPlan, state: &SessionState) -> Result<LogicalPlan> {
    let options = &state.config().options().catalog;
    let (catalog, schema) = (
        options.default_catalog.clone(),
        options.default_schema.clone(),
    );
    let full = |scan: TableScan| -> datafusion::error::Result<TableScan> {
        let resolved = scan.table_name.clone().resolve(&catalog, &schema);
        let source = Arc::clone(&scan.source);
        super::rebuild_scan(
            scan,
            TableReference::full(resolved.catalog, resolved.schema, resolved.table),
            source,
        )
    };
    // Scans of tables only (not a recursive query's work table), not yet in full.
    let partial = |scan: &TableScan| {
        !matches!(scan.table_name, TableReference::Full { .. })
            && source_as_provider(&scan.source).is_ok()
    };
    let resolved = plan.transform_down_with_subqueries(|node| match node {
        LogicalPlan::SubqueryAlias(alias)
            if matches!(alias.input.as_ref(), LogicalPlan::TableScan(scan) if partial(scan)) =>
        {
            let LogicalPlan::TableScan(scan) = Arc::unwrap_or_clone(alias.input) else {
                unreachable!("matched above");
            };
            let scan = LogicalPlan::TableScan(full(scan)?);
            let aliased = SubqueryAlias::try_new(Arc::new(scan), alias.alias)?;
            Ok(Transformed::new(
                LogicalPlan::SubqueryAlias(aliased),
                true,
                TreeNodeRecursion::Jump,
            ))
        }
        LogicalPlan::TableScan(scan) if partial(&scan) => {
            let written = scan.table_name.clone();
            let scan = LogicalPlan::TableScan(full(scan)?);
            let aliased = SubqueryAlias::try_new(Arc::new(scan), written)?;
            Ok(Transformed::new(
                LogicalPlan::SubqueryAlias(aliased),
                true,
                TreeNodeRecursion::Jump,
            ))
        }
        other => Ok(Transformed::no(other)),
    })?;
    Ok(resolved.data)
}

/// The views and materialized views a plan scans.
pub(crate) fn views_in(plan: &LogicalPlan) -> Vec<TableReference> {
    view_scans(plan).into_iter().map(|(name, _)| name).collect()
}

/// The context for planning a view's query: its catalog and schema as defaults.
pub(crate) fn view_state(ctx: &SessionContext, definition: &ViewDefinition) -> SessionState {
    let mut state = ctx.state();
    let options = state.config_mut().options_mut();
    if let Some(catalog) = &definition.catalog {
        options.catalog.default_catalog.clone_from(catalog);
    }
    if let Some(schema) = &definition.schema {
        options.catalog.default_schema.clone_from(schema);
    }
    state
}

/// Replaces every scan of a view in `plan` by what it reads.
pub(crate) async fn expand(
    ctx: &SessionContext,
    catalogs: &Catalogs,
    options: ReadOptions,
    plan: LogicalPlan,
) -> Result<LogicalPlan> {
    expand_at(ctx, catalogs, options, plan, 0).await
}

/// The views `plan` scans, by name.
fn view_scans(plan: &LogicalPlan) -> Vec<(TableReference, Arc<dyn TableProvider>)> {
    let mut found: Vec<(TableReference, Arc<dyn TableProvider>)> = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
            && is_view(provider.as_ref())
            && !found.iter().any(|(n, _)| *n == scan.table_name)
        {
            found.push((scan.table_name.clone(), provider));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

fn expand_at<'a>(
    ctx: &'a SessionContext,
    catalogs: &'a Catalogs,
    options: ReadOptions,
    plan: LogicalPlan,
    depth: usize,
) -> futures::future::BoxFuture<'a, Result<LogicalPlan>> {
    Box::pin(async move {
        let scans = view_scans(&plan);
        if scans.is_empty() {
            return Ok(plan);
        }
        if depth >= MAX_DEPTH {
            return Err(SchedulerError::InvalidQuery(format!(
                "views nested deeper than {MAX_DEPTH} (does a view read itself?): {}",
                scans[0].0
            )));
        }
        let mut bodies: HashMap<TableReference, LogicalPlan> = HashMap::new();
        for (name, provider) in scans {
            let body = if let Some(view) = provider.downcast_ref::<ConnectorView>() {
                let planned =
                    definition_plan(ctx, catalogs, options.clone(), &view.definition, depth)
                        .await
                        .map_err(|e| explain(&view.name, e))?;
                conform(planned, &view.schema, &view.name, false)?
            } else if let Some(mv) = provider.downcast_ref::<ConnectorMaterializedView>() {
                let read = if options.sources_only {
                    MaterializedRead::Sources
                } else {
                    read_choice(catalogs, &options, mv).await
                };
                match read {
                    MaterializedRead::Sources => {
                        let planned = definition_plan(
                            ctx,
                            catalogs,
                            options.clone(),
                            &mv.definition.view,
                            depth,
                        )
                        .await
                        .map_err(|e| explain(&mv.name, e))?;
                        conform(planned, &mv.schema, &mv.name, false)?
                    }
                    read => storage_plan(mv, read == MaterializedRead::Stale)?,
                }
            } else {
                continue;
            };
            bodies.insert(name, body);
        }
        let replaced = plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::TableScan(scan) = &node else {
                return Ok(Transformed::no(node));
            };
            let Some(body) = bodies.get(&scan.table_name) else {
                return Ok(Transformed::no(node));
            };
            if !scan.filters.is_empty() {
                return Err(datafusion::error::DataFusionError::Internal(format!(
                    "filters were pushed into view {} before it was expanded",
                    scan.table_name
                )));
            }
            let aliased = LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(
                Arc::new(body.clone()),
                scan.table_name.clone(),
            )?);
            let mut builder = LogicalPlanBuilder::from(aliased);
            if let Some(projection) = &scan.projection {
                let schema = Arc::clone(builder.schema());
                let columns: Vec<Expr> = projection
                    .iter()
                    .map(|i| Expr::Column(Column::from(schema.qualified_field(*i))))
                    .collect();
                builder = builder.project(columns)?;
            }
            if let Some(fetch) = scan.fetch {
                builder = builder.limit(0, Some(fetch))?;
            }
            Ok(Transformed::yes(builder.build()?))
        })?;
        Ok(replaced.data)
    })
}

fn explain(view: &str, error: SchedulerError) -> SchedulerError {
    match error {
        SchedulerError::NotFound(m) => {
            SchedulerError::NotFound(format!("view {view} cannot be read: {m}"))
        }
        SchedulerError::InvalidQuery(m) => {
            SchedulerError::InvalidQuery(format!("view {view} cannot be read: {m}"))
        }
        other => other,
    }
}

/// A view's query, planned in its own catalog and schema, with the views it reads expanded.
pub(crate) async fn definition_plan(
    ctx: &SessionContext,
    catalogs: &Catalogs,
    options: ReadOptions,
    definition: &ViewDefinition,
    depth: usize,
) -> Result<LogicalPlan> {
    let state = view_state(ctx, definition);
    let plan = plan_sql(ctx, &state, &definition.original_sql).await?;
    expand_at(ctx, catalogs, options, plan, depth + 1).await
}

/// What a scan of `mv` reads now.
pub(crate) async fn read_choice(
    catalogs: &Catalogs,
    options: &ReadOptions,
    mv: &ConnectorMaterializedView,
) -> MaterializedRead {
    match options.memo.freshness(catalogs, mv).await {
        Freshness::Fresh => MaterializedRead::Fresh,
        Freshness::NeverRefreshed => MaterializedRead::Sources,
        Freshness::Stale { .. } | Freshness::Unknown { .. } => {
            let age_ms = mv
                .state
                .as_ref()
                .map(|s| chrono::Utc::now().timestamp_millis() - s.refreshed_at_ms)
                .unwrap_or(i64::MAX);
            match options.max_staleness {
                Some(max) if age_ms > i64::try_from(max.as_millis()).unwrap_or(i64::MAX) => {
                    tracing::info!(view = %mv.name, age_ms, "stale materialized view read from its sources");
                    MaterializedRead::Sources
                }
                _ => {
                    tracing::info!(view = %mv.name, age_ms, "stale materialized view read from its storage");
                    MaterializedRead::Stale
                }
            }
        }
    }
}

/// A scan of a materialized view's storage with the view's columns. The scan is named
/// `<view>$storage` (`$storage(stale)` when a source changed since the refresh), which is
/// what `EXPLAIN` shows.
pub(crate) fn storage_plan(mv: &ConnectorMaterializedView, stale: bool) -> Result<LogicalPlan> {
    let name = TableReference::parse_str(&mv.name);
    let suffix = if stale { "$storage(stale)" } else { "$storage" };
    let table = format!("{}{suffix}", name.table());
    let reference = match (name.catalog(), name.schema()) {
        (Some(c), Some(s)) => TableReference::full(c, s, table),
        _ => TableReference::bare(table),
    };
    let scan =
        LogicalPlanBuilder::scan(reference, provider_as_source(Arc::clone(&mv.storage)), None)?
            .build()?;
    conform(scan, &mv.schema, &mv.name, true)
}

/// `plan`'s columns as the declared ones: by position (a view's query) or by name (a
/// storage table), cast to the declared types.
pub(crate) fn conform(
    plan: LogicalPlan,
    declared: &arrow::datatypes::Schema,
    view: &str,
    by_name: bool,
) -> Result<LogicalPlan> {
    let schema = Arc::clone(plan.schema());
    if !by_name && schema.fields().len() != declared.fields().len() {
        return Err(SchedulerError::InvalidQuery(format!(
            "view {view} is stale: its query now returns {} columns, the view declares {}; recreate it",
            schema.fields().len(),
            declared.fields().len()
        )));
    }
    let mut exprs = Vec::with_capacity(declared.fields().len());
    for (i, field) in declared.fields().iter().enumerate() {
        let index = if by_name {
            schema
                .index_of_column_by_name(None, field.name())
                .ok_or_else(|| {
                    SchedulerError::InvalidQuery(format!(
                        "view {view}: its storage has no column '{}'",
                        field.name()
                    ))
                })?
        } else {
            i
        };
        let column = Expr::Column(Column::from(schema.qualified_field(index)));
        let (_, found) = schema.qualified_field(index);
        let expr = if found.data_type() == field.data_type() {
            column
        } else {
            cast(column, field.data_type().clone())
        };
        exprs.push(expr.alias(field.name()));
    }
    Ok(LogicalPlanBuilder::from(plan).project(exprs)?.build()?)
}
