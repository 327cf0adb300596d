//! `REFRESH MATERIALIZED VIEW`: the definition planned, every source pinned to its current
//! version (or, for an incremental refresh, to what was appended since the last one), one
//! Ballista job, one commit of rows and state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::datatypes::Schema;
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::datasource::provider_as_source;
use datafusion::functions_aggregate::expr_fn::{max, min, sum};
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, col};
use datafusion::prelude::SessionContext;
use tributary_connector::{CommitMode, RefreshKind, RefreshState, SourceVersion};

use super::{Engine, Outcome};
use crate::error::{Result, SchedulerError};
use crate::session::Session;
use crate::views::expand::{ReadOptions, conform, definition_plan, storage_plan};
use crate::views::freshness::{Freshness, compare, current_versions};
use crate::views::incremental::{Merge, Shape, shape};
use crate::views::{source_key, split_key};

/// A refresh's plan with its sources pinned: what it reads and how.
struct Pinned {
    plan: LogicalPlan,
    kind: RefreshKind,
    shape: Option<Shape>,
    rows_read: BTreeMap<String, u64>,
}

impl Engine {
    /// `REFRESH MATERIALIZED VIEW`: recomputes the view (or only what was appended to its one
    /// changed source) as a distributed job and commits rows and state together.
    pub(super) async fn refresh_materialized_view(
        &self,
        session: &Session,
        ctx: Arc<SessionContext>,
        parts: &[String],
        sql: &str,
    ) -> Result<Outcome> {
        let target = self.target(&ctx, parts)?;
        let name = target.qualified();
        if let Some(scope) = self.scope(session) {
            scope.check_table(&target.name, crate::access::Privilege::Insert)?;
        }
        // One refresh of a view at a time: each starts from the state the last one committed.
        let lock = self.view_cache.refresh_lock(&name);
        let _refreshing = lock.lock().await;
        let mv = self.materialized_view(&ctx, &name).await?.ok_or_else(|| {
            SchedulerError::NotFound(format!("materialized view '{name}' does not exist"))
        })?;
        let connector = self.catalogs.find(&target.name.catalog).ok_or_else(|| {
            SchedulerError::NotFound(format!("catalog '{}' does not exist", target.name.catalog))
        })?;
        let plan = definition_plan(
            &ctx,
            &self.catalogs,
            ReadOptions::definitions(),
            &mv.definition.view,
            0,
        )
        .await?;
        self.check(session, &ctx, &plan)?;
        let sources = sources_of(&plan);
        let now = current_versions(&self.catalogs, sources.iter()).await;
        let previous = mv.state.as_ref();
        if let Some(state) = previous
            && state.sources.keys().eq(sources.iter())
            && compare(&state.sources, &now) == Freshness::Fresh
        {
            tracing::info!(view = %name, "materialized view already fresh: nothing to refresh");
            return Ok(Outcome::Update(0));
        }
        // Incremental when exactly one source changed, only by appending, and the query
        // allows it; else everything again.
        let incremental = previous.and_then(|state| {
            if !state.sources.keys().eq(sources.iter()) {
                return None;
            }
            // A source that cannot tell its version may have changed in any way.
            if sources.iter().any(|k| !matches!(now.get(k), Some(Some(_)))) {
                return None;
            }
            let changed: Vec<&String> = sources
                .iter()
                .filter(|k| state.sources.get(*k) != now.get(*k))
                .collect();
            let [key] = changed[..] else {
                return None;
            };
            let (Some(Some(old)), Some(Some(new))) = (state.sources.get(key), now.get(key)) else {
                return None;
            };
            if !old.appended_to(new) {
                return None;
            }
            shape(&plan, key).map(|shape| (key.clone(), old.clone(), shape))
        });
        let Pinned {
            plan: pinned,
            kind,
            shape: incremental_shape,
            rows_read,
        } = self.pin_sources(plan, &sources, &now, incremental).await?;
        let body = conform(pinned, &mv.schema, &name, false)?;
        let (job_plan, mode) = match &incremental_shape {
            Some(Shape::Merge(merges)) => (
                merge_plan(storage_plan(&mv, false)?, body, merges, &mv.schema, &name)?,
                CommitMode::Replace,
            ),
            Some(Shape::Append) => (body, CommitMode::Append),
            None => (body, CommitMode::Replace),
        };
        tracing::info!(view = %name, %kind, "refreshing materialized view");
        let job = self
            .run_job(session, Arc::clone(&ctx), &job_plan, sql)
            .await?;
        let new_rows = u64::try_from(job.total_records).unwrap_or(0);
        let rows = match mode {
            CommitMode::Append => previous.map(|s| s.rows).unwrap_or(0) + new_rows,
            CommitMode::Replace => new_rows,
        };
        let state = RefreshState {
            refreshed_at_ms: chrono::Utc::now().timestamp_millis(),
            kind,
            sources: now,
            rows_read,
            rows,
        };
        let stream = self.job_stream(job, Arc::new(job_plan.schema().as_arrow().clone()));
        let written = connector
            .commit_materialized_view(
                &target.name.schema,
                &target.name.table,
                stream,
                mode,
                &state,
            )
            .await?;
        tracing::info!(view = %name, %kind, written, "materialized view refreshed");
        Ok(Outcome::Update(i64::try_from(written).unwrap_or(i64::MAX)))
    }

    /// Pins every source of a refresh's `plan` to its version in `now` (the changed source of
    /// an incremental refresh to what was appended since its recorded version); sources that
    /// cannot be pinned are read as they are.
    async fn pin_sources(
        &self,
        plan: LogicalPlan,
        sources: &BTreeSet<String>,
        now: &BTreeMap<String, Option<SourceVersion>>,
        incremental: Option<(String, SourceVersion, Shape)>,
    ) -> Result<Pinned> {
        let mut pinned = Pinned {
            plan,
            kind: RefreshKind::Full,
            shape: None,
            rows_read: BTreeMap::new(),
        };
        for key in sources {
            let Some(Some(version)) = now.get(key) else {
                continue;
            };
            let from = match &incremental {
                Some((changed, old, _)) if changed == key => Some(old),
                _ => None,
            };
            let Some((catalog, schema, table)) = split_key(key) else {
                continue;
            };
            let Some(connector) = self.catalogs.find(catalog) else {
                continue;
            };
            let Some(provider) = connector.pinned_table(schema, table, from, version).await? else {
                continue;
            };
            pinned.plan = with_source(pinned.plan, key, provider_as_source(provider))?;
            let read = match from {
                Some(from) => {
                    pinned.kind = RefreshKind::Incremental;
                    pinned.shape = incremental.as_ref().map(|(_, _, s)| s.clone());
                    appended_count(from, version)
                }
                None => appended_count(&empty_like(version), version),
            };
            if let Some(read) = read {
                pinned.rows_read.insert(key.clone(), read);
            }
        }
        Ok(pinned)
    }
}

/// The base tables a (resolved, expanded) plan scans.
fn sources_of(plan: &LogicalPlan) -> BTreeSet<String> {
    let mut sources = BTreeSet::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Some(key) = source_key(&scan.table_name)
        {
            sources.insert(key);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    sources
}

/// `plan` with every scan of `key` reading `source` instead.
fn with_source(
    plan: LogicalPlan,
    key: &str,
    source: Arc<dyn datafusion::logical_expr::TableSource>,
) -> Result<LogicalPlan> {
    Ok(plan
        .transform_up_with_subqueries(|node| {
            let LogicalPlan::TableScan(scan) = node else {
                return Ok(Transformed::no(node));
            };
            if source_key(&scan.table_name).as_deref() != Some(key) {
                return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
            }
            let name = scan.table_name.clone();
            let replaced = crate::views::rebuild_scan(scan, name, Arc::clone(&source))?;
            Ok(Transformed::yes(LogicalPlan::TableScan(replaced)))
        })?
        .data)
}

/// Messages between two topic versions (what an incremental refresh of a topic reads).
fn appended_count(from: &SourceVersion, to: &SourceVersion) -> Option<u64> {
    match (from, to) {
        (SourceVersion::Offsets { partitions: a }, SourceVersion::Offsets { partitions: b }) => {
            Some(
                b.iter()
                    .map(|(p, end)| {
                        u64::try_from(end - a.get(p).copied().unwrap_or(0)).unwrap_or(0)
                    })
                    .sum(),
            )
        }
        _ => None,
    }
}

/// The empty version of a source's kind (a topic before its first message).
fn empty_like(version: &SourceVersion) -> SourceVersion {
    match version {
        SourceVersion::Offsets { .. } => SourceVersion::Offsets {
            partitions: BTreeMap::new(),
        },
        other => other.clone(),
    }
}

/// The stored groups and the new rows' groups, merged: `sum` of counts and sums, `min` of
/// minima, `max` of maxima, per group key.
fn merge_plan(
    stored: LogicalPlan,
    new_rows: LogicalPlan,
    merges: &[Merge],
    declared: &Schema,
    view: &str,
) -> Result<LogicalPlan> {
    let union = LogicalPlanBuilder::from(stored).union(new_rows)?.build()?;
    let mut keys = Vec::new();
    let mut aggregates = Vec::new();
    for (field, merge) in declared.fields().iter().zip(merges) {
        let column = col(datafusion::common::Column::new_unqualified(field.name()));
        match merge {
            Merge::Key => keys.push(column),
            Merge::Sum => aggregates.push(sum(column).alias(field.name())),
            Merge::Min => aggregates.push(min(column).alias(field.name())),
            Merge::Max => aggregates.push(max(column).alias(field.name())),
        }
    }
    let merged = LogicalPlanBuilder::from(union)
        .aggregate(keys, aggregates)?
        .build()?;
    conform(merged, declared, view, true)
}
