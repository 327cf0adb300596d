//! The view statements — `CREATE/DROP [MATERIALIZED] VIEW`, `SHOW CREATE [MATERIALIZED]
//! VIEW` (`REFRESH` is in `refresh.rs`) — and what every planned statement goes through:
//! names resolved, views expanded, parts answered by fresh materialized views.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::StringArray;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, ResolvedTableReference, TableReference};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use tributary_connector::{
    ConnectorMaterializedView, ConnectorView, MaterializedViewDefinition, PropertyValue,
    ViewColumn, ViewDefinition, ViewSecurity,
};

use super::{Engine, Outcome};
use crate::error::{Result, SchedulerError};
use crate::session::Session;
use crate::views::expand::{ReadOptions, definition_plan, expand, resolve_names, storage_plan};
use crate::views::freshness::{Freshness, FreshnessMemo};
use crate::views::rewrite::{Candidate, rewrite};
use crate::views::{source_key, split_key};

/// How long the list of materialized views (for rewrites) is kept.
const CANDIDATES_TTL: Duration = Duration::from_secs(30);

/// What the engine keeps about materialized views: the views queries may be rewritten to
/// (prepared for matching) and the refreshes running.
#[derive(Debug, Clone, Default)]
pub(crate) struct ViewCache {
    list: Arc<Mutex<Option<(Instant, CandidateList)>>>,
    /// One refresh of a view at a time (by `catalog.schema.view`).
    refreshing: Arc<Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// Each materialized view prepared for matching, with its declared columns.
type CandidateList = Arc<Vec<(Candidate, SchemaRef)>>;

impl ViewCache {
    /// Forgets the list (a view was created or dropped).
    pub(crate) fn invalidate(&self) {
        *self.list.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The lock a refresh of `view` holds.
    pub(super) fn refresh_lock(&self, view: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.refreshing.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(locks.entry(view.to_owned()).or_default())
    }

    fn fresh(&self) -> Option<CandidateList> {
        self.list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|(at, _)| at.elapsed() < CANDIDATES_TTL)
            .map(|(_, list)| Arc::clone(list))
    }
}

/// A statement's view to create or drop, resolved.
pub(super) struct Target {
    pub(super) name: ResolvedTableReference,
}

impl Target {
    pub(super) fn qualified(&self) -> String {
        format!(
            "{}.{}.{}",
            self.name.catalog, self.name.schema, self.name.table
        )
    }
}

impl Engine {
    /// A planned statement made ready to run: scans named in full, views replaced by what
    /// they read, and (when enabled) parts answered by fresh materialized views.
    pub(super) async fn prepare(
        &self,
        session: &Session,
        ctx: &SessionContext,
        plan: LogicalPlan,
    ) -> Result<LogicalPlan> {
        let plan = resolve_names(plan, &ctx.state())?;
        if let Some(scope) = self.scope(session) {
            // Reading a view needs SELECT on the view (its tables are checked after expansion).
            for view in crate::views::expand::views_in(&plan) {
                if let Some(key) = source_key(&view)
                    && let Some((c, s, t)) = split_key(&key)
                {
                    let name = ResolvedTableReference {
                        catalog: c.into(),
                        schema: s.into(),
                        table: t.into(),
                    };
                    scope.check_table(&name, crate::access::Privilege::Select)?;
                }
            }
        }
        let options = ReadOptions {
            max_staleness: session.max_staleness(),
            ..ReadOptions::default()
        };
        let memo = Arc::clone(&options.memo);
        let plan = expand(ctx, &self.catalogs, options, plan).await?;
        if !session.rewrite_enabled() || !joins_or_aggregates(&plan) {
            return Ok(plan);
        }
        self.rewrite_with_views(session, ctx, plan, &memo).await
    }

    /// Answers parts of `plan` from fresh materialized views.
    async fn rewrite_with_views(
        &self,
        session: &Session,
        ctx: &SessionContext,
        mut plan: LogicalPlan,
        memo: &FreshnessMemo,
    ) -> Result<LogicalPlan> {
        let scope = self.scope(session);
        for (candidate, schema) in self.candidates(ctx).await.iter() {
            let placeholder = LogicalPlan::EmptyRelation(EmptyRelation {
                produce_one_row: false,
                schema: Arc::new(DFSchema::try_from(schema.as_ref().clone())?),
            });
            if rewrite(&plan, candidate, &placeholder).is_none() {
                continue;
            }
            // A view that cannot be read now only means no rewrite.
            let mv = match self.materialized_view(ctx, &candidate.name).await {
                Ok(Some(mv)) => mv,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(view = %candidate.name, "materialized view not used: {e}");
                    continue;
                }
            };
            if let Some(scope) = &scope {
                let Some((c, sc, t)) = split_key(&candidate.name) else {
                    continue;
                };
                let name = ResolvedTableReference {
                    catalog: c.into(),
                    schema: sc.into(),
                    table: t.into(),
                };
                // Read through the view only by users who may read the view.
                if scope
                    .check_table(&name, crate::access::Privilege::Select)
                    .is_err()
                {
                    continue;
                }
            }
            let freshness = memo.freshness(&self.catalogs, &mv).await;
            if freshness != Freshness::Fresh {
                tracing::info!(view = %candidate.name, ?freshness, "query not rewritten: the materialized view is not fresh");
                continue;
            }
            let storage = storage_plan(&mv, false)?;
            if let Some(rewritten) = rewrite(&plan, candidate, &storage) {
                tracing::info!(view = %candidate.name, "query answered from a materialized view");
                plan = rewritten;
            }
        }
        Ok(plan)
    }

    /// Every materialized view of the catalogs, planned for matching (kept 30 s).
    async fn candidates(&self, ctx: &SessionContext) -> CandidateList {
        if let Some(list) = self.view_cache.fresh() {
            return list;
        }
        let mut list = Vec::new();
        for mv in crate::views::materialized_views(&self.catalogs).await {
            match definition_plan(
                ctx,
                &self.catalogs,
                ReadOptions::definitions(),
                &mv.definition.view,
                0,
            )
            .await
            {
                Ok(plan) => {
                    if let Some(candidate) = Candidate::new(&mv.name, &plan) {
                        list.push((candidate, Arc::clone(&mv.schema)));
                    }
                }
                Err(e) => tracing::warn!(view = %mv.name, "cannot plan a materialized view: {e}"),
            }
        }
        let list = Arc::new(list);
        *self
            .view_cache
            .list
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), Arc::clone(&list)));
        list
    }

    /// The materialized view `catalog.schema.view`, `None` if that is something else.
    pub(super) async fn materialized_view(
        &self,
        ctx: &SessionContext,
        name: &str,
    ) -> Result<Option<Arc<ConnectorMaterializedView>>> {
        let Some((catalog, schema, view)) = split_key(name) else {
            return Ok(None);
        };
        let provider = lookup(ctx, catalog, schema, view).await?;
        Ok(provider.and_then(|p| {
            p.downcast_ref::<ConnectorMaterializedView>()
                .map(|mv| Arc::new(mv.clone()))
        }))
    }

    pub(super) fn target(&self, ctx: &SessionContext, parts: &[String]) -> Result<Target> {
        let state = ctx.state();
        let options = &state.config().options().catalog;
        let reference = match parts {
            [table] => TableReference::bare(table.as_str()),
            [schema, table] => TableReference::partial(schema.as_str(), table.as_str()),
            [catalog, schema, table] => {
                TableReference::full(catalog.as_str(), schema.as_str(), table.as_str())
            }
            _ => {
                return Err(SchedulerError::InvalidQuery(format!(
                    "'{}' is not a view name ([[catalog.]schema.]view)",
                    parts.join(".")
                )));
            }
        };
        Ok(Target {
            name: reference.resolve(&options.default_catalog, &options.default_schema),
        })
    }

    /// The definition of a view over `query`, planned now (which checks it reads what exists
    /// and what the user may read).
    async fn new_definition(
        &self,
        session: &Session,
        ctx: &SessionContext,
        query: &str,
    ) -> Result<(ViewDefinition, SchemaRef)> {
        let state = ctx.state();
        let plan = crate::views::expand::plan_sql(ctx, &state, query)
            .await
            .map_err(|e| super::explain_missing(ctx, e))?;
        let plan = self.prepare(session, ctx, plan).await?;
        self.check(session, ctx, &plan)?;
        let schema = Arc::new(plan.schema().as_arrow().clone());
        let mut seen = BTreeSet::new();
        for field in schema.fields() {
            if !seen.insert(field.name().to_lowercase()) {
                return Err(SchedulerError::InvalidQuery(format!(
                    "the view's query returns column '{}' more than once: name every column",
                    field.name()
                )));
            }
        }
        let options = &state.config().options().catalog;
        let definition = ViewDefinition {
            original_sql: query.trim().to_owned(),
            catalog: Some(options.default_catalog.clone()),
            schema: Some(options.default_schema.clone()),
            columns: schema
                .fields()
                .iter()
                .map(|f| ViewColumn {
                    name: f.name().clone(),
                    type_name: crate::flight_sql::trino_type_name(f.data_type()),
                    arrow_type: Some(f.data_type().to_string()),
                })
                .collect(),
            comment: None,
            owner: Some(session.user.clone()),
            run_as_invoker: false,
        };
        Ok((definition, schema))
    }

    /// `CREATE [OR REPLACE] VIEW`.
    pub(super) async fn create_view(
        &self,
        session: &Session,
        ctx: &SessionContext,
        (parts, or_replace): (&[String], bool),
        comment: Option<&str>,
        invoker: bool,
        query: &str,
    ) -> Result<Outcome> {
        let target = self.target(ctx, parts)?;
        if let Some(scope) = self.scope(session) {
            scope.check_owner(&target.name, "create", "view")?;
        }
        let (mut definition, schema) = self.new_definition(session, ctx, query).await?;
        definition.comment = comment.map(str::to_owned);
        definition.run_as_invoker = invoker;
        let (catalog, schema_name, view) = (
            target.name.catalog.as_ref(),
            target.name.schema.as_ref(),
            target.name.table.as_ref(),
        );
        match self.catalogs.find(catalog) {
            Some(connector) => {
                connector
                    .create_view(schema_name, view, &definition, or_replace)
                    .await?;
            }
            // The shared `memory` catalog keeps views as tables of its schemas.
            None => {
                let provider = schema_provider(ctx, catalog, schema_name)?;
                if provider.table_exist(view) {
                    let existing = provider.table(view).await?;
                    let is_view = existing.as_ref().is_some_and(|t| t.is::<ConnectorView>());
                    if !is_view || !or_replace {
                        return Err(SchedulerError::InvalidQuery(format!(
                            "{} '{}' already exists",
                            if is_view { "view" } else { "table" },
                            target.qualified()
                        )));
                    }
                    provider.deregister_table(view)?;
                }
                provider.register_table(
                    view.to_owned(),
                    Arc::new(ConnectorView {
                        name: target.qualified(),
                        definition,
                        schema,
                    }),
                )?;
            }
        }
        Ok(Outcome::Update(0))
    }

    /// `DROP [MATERIALIZED] VIEW [IF EXISTS]`.
    pub(super) async fn drop_view(
        &self,
        session: &Session,
        ctx: &SessionContext,
        parts: &[String],
        if_exists: bool,
        materialized: bool,
    ) -> Result<Outcome> {
        let target = self.target(ctx, parts)?;
        let kind = if materialized {
            "materialized view"
        } else {
            "view"
        };
        if let Some(scope) = self.scope(session) {
            scope.check_owner(&target.name, "drop", kind)?;
        }
        let (catalog, schema, view) = (
            target.name.catalog.as_ref(),
            target.name.schema.as_ref(),
            target.name.table.as_ref(),
        );
        let dropped = match (self.catalogs.find(catalog), materialized) {
            (Some(connector), true) => connector.drop_materialized_view(schema, view).await?,
            (Some(connector), false) => connector.drop_view(schema, view).await?,
            (None, true) => false,
            (None, false) => {
                let provider = schema_provider(ctx, catalog, schema)?;
                let found = provider.table(view).await?;
                match found {
                    Some(t) if t.is::<ConnectorView>() => {
                        provider.deregister_table(view)?;
                        true
                    }
                    Some(_) => {
                        return Err(SchedulerError::InvalidQuery(format!(
                            "'{}' is a table, not a view: use DROP TABLE",
                            target.qualified()
                        )));
                    }
                    None => false,
                }
            }
        };
        if materialized {
            self.view_cache.invalidate();
        }
        if !dropped && !if_exists {
            return Err(SchedulerError::NotFound(format!(
                "{kind} '{}' does not exist",
                target.qualified()
            )));
        }
        Ok(Outcome::Update(0))
    }

    /// `SHOW CREATE [MATERIALIZED] VIEW`.
    pub(super) async fn show_create_view(
        &self,
        session: &Session,
        ctx: &SessionContext,
        parts: &[String],
        materialized: bool,
    ) -> Result<Outcome> {
        let target = self.target(ctx, parts)?;
        if let Some(scope) = self.scope(session) {
            scope.check_table(&target.name, crate::access::Privilege::Select)?;
        }
        let name = target.qualified();
        let provider = lookup(
            ctx,
            &target.name.catalog,
            &target.name.schema,
            &target.name.table,
        )
        .await?;
        let (text, column) = match provider {
            Some(p) if !materialized && p.is::<ConnectorView>() => {
                let Some(view) = p.downcast_ref::<ConnectorView>() else {
                    unreachable!("checked");
                };
                let d = &view.definition;
                let mut text = format!("CREATE VIEW {name}");
                if let Some(comment) = &d.comment {
                    text.push_str(&format!(" COMMENT '{}'", comment.replace('\'', "''")));
                }
                let security = match d.security() {
                    ViewSecurity::Definer => "DEFINER",
                    ViewSecurity::Invoker => "INVOKER",
                };
                text.push_str(&format!(" SECURITY {security} AS\n{}", d.original_sql));
                (text, "Create View")
            }
            Some(p) if materialized && p.is::<ConnectorMaterializedView>() => {
                let Some(mv) = p.downcast_ref::<ConnectorMaterializedView>() else {
                    unreachable!("checked");
                };
                let d = &mv.definition;
                let mut text = format!("CREATE MATERIALIZED VIEW {name}");
                if let Some(comment) = &d.view.comment {
                    text.push_str(&format!("\nCOMMENT '{}'", comment.replace('\'', "''")));
                }
                if !d.properties.is_empty() {
                    let props: Vec<String> = d
                        .properties
                        .iter()
                        .map(|(k, v)| format!("   {k} = {}", property_text(k, v)))
                        .collect();
                    text.push_str(&format!("\nWITH (\n{}\n)", props.join(",\n")));
                }
                text.push_str(&format!(" AS\n{}", d.view.original_sql));
                (text, "Create Materialized View")
            }
            _ => {
                return Err(SchedulerError::NotFound(format!(
                    "{} '{name}' does not exist",
                    if materialized {
                        "materialized view"
                    } else {
                        "view"
                    }
                )));
            }
        };
        let schema = Arc::new(Schema::new(vec![Field::new(column, DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(StringArray::from(vec![text]))],
        )?;
        Ok(Outcome::Rows(schema, vec![batch]))
    }

    /// `CREATE [OR REPLACE] MATERIALIZED VIEW [IF NOT EXISTS] … [WITH (…)] AS …`: records the
    /// definition and creates the empty storage; the first `REFRESH` fills it (until then
    /// queries of the view read its sources).
    pub(super) async fn create_materialized_view(
        &self,
        session: &Session,
        ctx: &SessionContext,
        (parts, or_replace, if_not_exists): (&[String], bool, bool),
        comment: Option<&str>,
        properties: Option<&str>,
        query: &str,
    ) -> Result<Outcome> {
        let target = self.target(ctx, parts)?;
        if let Some(scope) = self.scope(session) {
            scope.check_owner(&target.name, "create", "materialized view")?;
        }
        let (catalog, schema_name, view) = (
            target.name.catalog.as_ref(),
            target.name.schema.as_ref(),
            target.name.table.as_ref(),
        );
        let connector = self.catalogs.find(catalog).ok_or_else(|| {
            SchedulerError::NotSupported(format!(
                "catalog '{catalog}' does not support materialized views (create them in a hive or delta_lake catalog)"
            ))
        })?;
        if if_not_exists && lookup(ctx, catalog, schema_name, view).await?.is_some() {
            return Ok(Outcome::Update(0));
        }
        let (mut definition, schema) = self.new_definition(session, ctx, query).await?;
        definition.comment = comment.map(str::to_owned);
        let mut stored = BTreeMap::new();
        if let Some(text) = properties {
            for (key, value) in super::properties::parse_list(text)?.0 {
                let text = match value {
                    PropertyValue::String(s) => s,
                    PropertyValue::Array(items) => items
                        .iter()
                        .map(|i| match i {
                            PropertyValue::String(s) => s.to_lowercase(),
                            other => other.to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                    other => other.to_string(),
                };
                stored.insert(key, text);
            }
        }
        let definition = MaterializedViewDefinition {
            view: definition,
            properties: stored,
        };
        connector
            .create_materialized_view(schema_name, view, &definition, schema, or_replace)
            .await?;
        self.view_cache.invalidate();
        Ok(Outcome::Update(0))
    }
}

/// Looks a table up by its parts, `None` when it does not exist.
async fn lookup(
    ctx: &SessionContext,
    catalog: &str,
    schema: &str,
    table: &str,
) -> Result<Option<Arc<dyn datafusion::catalog::TableProvider>>> {
    let Some(catalog_provider) = ctx.catalog(catalog) else {
        return Err(SchedulerError::NotFound(format!(
            "catalog '{catalog}' does not exist"
        )));
    };
    let Some(schema_provider) = catalog_provider.schema(schema) else {
        return Err(SchedulerError::NotFound(format!(
            "schema '{catalog}.{schema}' does not exist"
        )));
    };
    Ok(schema_provider.table(table).await?)
}

fn schema_provider(
    ctx: &SessionContext,
    catalog: &str,
    schema: &str,
) -> Result<Arc<dyn datafusion::catalog::SchemaProvider>> {
    ctx.catalog(catalog)
        .ok_or_else(|| SchedulerError::NotFound(format!("catalog '{catalog}' does not exist")))?
        .schema(schema)
        .ok_or_else(|| {
            SchedulerError::NotFound(format!("schema '{catalog}.{schema}' does not exist"))
        })
}

/// How a stored property is written in `SHOW CREATE`.
fn property_text(key: &str, value: &str) -> String {
    if key == "partitioned_by" {
        let items: Vec<String> = value
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| format!("'{s}'"))
            .collect();
        format!("ARRAY[{}]", items.join(", "))
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}

/// Whether a plan joins or aggregates (only those are worth matching against views).
fn joins_or_aggregates(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        found |= matches!(node, LogicalPlan::Join(_) | LogicalPlan::Aggregate(_));
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}
