//! Views and materialized views on the scheduler. Connectors store definitions
//! (`tributary_connector::ConnectorView`, `ConnectorMaterializedView`); here they are planned:
//!
//! - [`expand`]: every scan of a view in a planned statement becomes the view's query
//!   (planned in the view's catalog and schema, cast to its declared columns); a scan of a
//!   materialized view becomes a scan of its storage while it is fresh (or stale within
//!   `materialized_view_max_staleness`), else its query;
//! - [`freshness`]: a materialized view is fresh when every source table still has the
//!   version recorded at the last refresh;
//! - [`incremental`]: whether a refresh can read only the rows appended to one source and
//!   append (or merge aggregates) instead of recomputing;
//! - [`rewrite`]: a query containing a fresh materialized view's query reads the view.
//!
//! The statements themselves (`CREATE VIEW`, `REFRESH MATERIALIZED VIEW`, …) are run by
//! `engine/views.rs`.

pub(crate) mod expand;
pub(crate) mod freshness;
pub(crate) mod incremental;
pub(crate) mod rewrite;

use std::sync::Arc;

use datafusion::common::TableReference;
use datafusion::logical_expr::{TableScan, TableScanBuilder, TableSource};
use tributary_connector::{Catalogs, ConnectorMaterializedView};

/// Every materialized view of every catalog, as the connectors store them now. A catalog
/// or view that cannot be read is logged and skipped: one broken definition must not hide
/// the others (from listings) or fail queries (that are only matched against views).
pub(crate) async fn materialized_views(catalogs: &Catalogs) -> Vec<Arc<ConnectorMaterializedView>> {
    let mut views = Vec::new();
    for catalog in catalogs.names() {
        let Some(connector) = catalogs.find(catalog) else {
            continue;
        };
        let names = match connector.materialized_views().await {
            Ok(names) => names,
            Err(e) => {
                tracing::warn!(catalog, "cannot list materialized views: {e}");
                continue;
            }
        };
        for (schema, name) in names {
            let Some(schema_provider) = connector.catalog_provider().schema(&schema) else {
                continue;
            };
            match schema_provider.table(&name).await {
                Ok(Some(provider)) => {
                    if let Some(mv) = provider.downcast_ref::<ConnectorMaterializedView>() {
                        views.push(Arc::new(mv.clone()));
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(catalog, schema, name, "cannot read materialized view: {e}")
                }
            }
        }
    }
    views
}

/// `catalog.schema.table` of a resolved reference (the key sources are recorded under).
pub(crate) fn source_key(reference: &TableReference) -> Option<String> {
    match reference {
        TableReference::Full {
            catalog,
            schema,
            table,
        } => Some(format!("{catalog}.{schema}.{table}")),
        _ => None,
    }
}

/// `catalog.schema.table` → its parts.
pub(crate) fn split_key(key: &str) -> Option<(&str, &str, &str)> {
    let mut parts = key.splitn(3, '.');
    Some((parts.next()?, parts.next()?, parts.next()?))
}

/// `scan` under another name or reading another source, everything else kept.
pub(crate) fn rebuild_scan(
    scan: TableScan,
    name: TableReference,
    source: Arc<dyn TableSource>,
) -> datafusion::error::Result<TableScan> {
    TableScanBuilder::new(name, source)
        .with_projection(scan.projection)
        .with_filters(scan.filters)
        .with_fetch(scan.fetch)
        .build()
}
