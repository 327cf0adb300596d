//! `system.metadata`: the catalogs, the table properties each connector accepts, and the
//! session properties.

use tributary_connector::Catalogs;

use super::{Columns, SYSTEM_CATALOG, SystemTable, table};
use crate::cluster::MEMORY_CATALOG;
use crate::session::{SESSION_PROPERTIES, SessionDefaults};
use crate::views::freshness::Freshness;

pub(super) fn tables(
    catalogs: &Catalogs,
    session_defaults: &SessionDefaults,
) -> Vec<(&'static str, SystemTable)> {
    let c = catalogs.clone();
    let catalog_table = table(catalog_rows(&[]), move || {
        let rows = all_catalogs(&c);
        Box::pin(async move { Ok(catalog_rows(&rows)) })
    });
    let c = catalogs.clone();
    let properties = table(property_rows(&[]), move || {
        let mut rows = Vec::new();
        for name in c.names() {
            if let Some(connector) = c.find(name) {
                for spec in connector.table_properties() {
                    rows.push((
                        name.to_owned(),
                        spec.name.to_owned(),
                        spec.default.to_owned(),
                        spec.sql_type.to_owned(),
                        spec.description.to_owned(),
                    ));
                }
            }
        }
        Box::pin(async move { Ok(property_rows(&rows)) })
    });
    let defaults = session_defaults.clone();
    let session = table(session_rows(&defaults), move || {
        let rows = session_rows(&defaults);
        Box::pin(async move { Ok(rows) })
    });
    let c = catalogs.clone();
    let materialized = table(materialized_rows(&[]), move || {
        let c = c.clone();
        Box::pin(async move { Ok(materialized_rows(&materialized_views(&c).await)) })
    });
    vec![
        ("materialized_views", materialized),
        ("catalogs", catalog_table),
        ("table_properties", properties),
        ("session_properties", session),
    ]
}

/// One row of `system.metadata.materialized_views`.
struct MaterializedRow {
    catalog: String,
    schema: String,
    name: String,
    view: std::sync::Arc<tributary_connector::ConnectorMaterializedView>,
    freshness: Freshness,
}

/// Every materialized view of every catalog with its freshness now.
async fn materialized_views(catalogs: &Catalogs) -> Vec<MaterializedRow> {
    let mut rows = Vec::new();
    for view in crate::views::materialized_views(catalogs).await {
        let Some((catalog, schema, name)) = crate::views::split_key(&view.name) else {
            continue;
        };
        let (catalog, schema, name) = (catalog.to_owned(), schema.to_owned(), name.to_owned());
        let freshness = crate::views::freshness::freshness(catalogs, &view).await;
        rows.push(MaterializedRow {
            catalog,
            schema,
            name,
            view,
            freshness,
        });
    }
    rows
}

fn materialized_rows(rows: &[MaterializedRow]) -> Columns {
    let text = |f: &dyn Fn(&MaterializedRow) -> Option<String>| rows.iter().map(f).collect();
    let state = |r: &MaterializedRow| r.view.state.clone();
    Columns::default()
        .text("catalog_name", text(&|r| Some(r.catalog.clone())))
        .text("schema_name", text(&|r| Some(r.schema.clone())))
        .text("name", text(&|r| Some(r.name.clone())))
        .text("storage_catalog", text(&|r| Some(r.catalog.clone())))
        .text("storage_schema", text(&|r| Some(r.schema.clone())))
        .text(
            "storage_table",
            text(&|r| Some(format!("{}$storage", r.name))),
        )
        .text(
            "storage_location",
            text(&|r| Some(r.view.storage_location.clone())),
        )
        .text("freshness", text(&|r| Some(r.freshness.label().to_owned())))
        .text(
            "stale_sources",
            text(&|r| match &r.freshness {
                Freshness::Stale { changed } => Some(changed.join(", ")),
                Freshness::Unknown { sources } => Some(sources.join(", ")),
                _ => None,
            }),
        )
        .time(
            "last_fresh_time",
            rows.iter()
                .map(|r| state(r).map(|s| s.refreshed_at_ms))
                .collect(),
        )
        .text(
            "last_refresh_type",
            text(&|r| state(r).map(|s| s.kind.to_string())),
        )
        .int(
            "rows",
            rows.iter()
                .map(|r| state(r).map(|s| i64::try_from(s.rows).unwrap_or(i64::MAX)))
                .collect(),
        )
        .text(
            "last_refresh_read",
            text(&|r| {
                state(r).map(|s| {
                    s.rows_read
                        .iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
            }),
        )
        .text(
            "source_versions",
            text(&|r| {
                state(r).map(|s| {
                    s.sources
                        .iter()
                        .map(|(k, v)| {
                            format!(
                                "{k}: {}",
                                v.as_ref().map_or("unknown".to_owned(), |v| v.describe())
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                })
            }),
        )
        .text("owner", text(&|r| r.view.definition.view.owner.clone()))
        .text("comment", text(&|r| r.view.definition.view.comment.clone()))
        .text(
            "definition",
            text(&|r| Some(r.view.definition.view.original_sql.clone())),
        )
}

fn all_catalogs(catalogs: &Catalogs) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = catalogs
        .names()
        .map(|n| {
            (
                n.to_owned(),
                catalogs.connector_name(n).unwrap_or(n).to_owned(),
            )
        })
        .collect();
    rows.push((SYSTEM_CATALOG.to_owned(), "system".to_owned()));
    rows.push((MEMORY_CATALOG.to_owned(), "memory".to_owned()));
    rows.sort();
    rows
}

fn catalog_rows(rows: &[(String, String)]) -> Columns {
    Columns::default()
        .text(
            "catalog_name",
            rows.iter().map(|r| Some(r.0.clone())).collect(),
        )
        .text(
            "connector_id",
            rows.iter().map(|r| Some(r.0.clone())).collect(),
        )
        .text(
            "connector_name",
            rows.iter().map(|r| Some(r.1.clone())).collect(),
        )
}

fn property_rows(rows: &[(String, String, String, String, String)]) -> Columns {
    Columns::default()
        .text(
            "catalog_name",
            rows.iter().map(|r| Some(r.0.clone())).collect(),
        )
        .text(
            "property_name",
            rows.iter().map(|r| Some(r.1.clone())).collect(),
        )
        .text(
            "default_value",
            rows.iter().map(|r| Some(r.2.clone())).collect(),
        )
        .text("type", rows.iter().map(|r| Some(r.3.clone())).collect())
        .text(
            "description",
            rows.iter().map(|r| Some(r.4.clone())).collect(),
        )
}

/// Every session property with the default sessions start from: the deployment's
/// (`etc/config.properties`), else the built-in one, as `SHOW SESSION` shows it.
fn session_rows(defaults: &SessionDefaults) -> Columns {
    let specs = &SESSION_PROPERTIES;
    Columns::default()
        .text(
            "property_name",
            specs.iter().map(|p| Some(p.name.to_owned())).collect(),
        )
        .text(
            "default_value",
            specs.iter().map(|p| defaults.get(p.name)).collect(),
        )
        .text(
            "type",
            specs.iter().map(|p| Some(p.sql_type.to_owned())).collect(),
        )
        .text(
            "description",
            specs
                .iter()
                .map(|p| Some(p.description.to_owned()))
                .collect(),
        )
}
