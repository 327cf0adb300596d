//! `system.metadata`: the catalogs, the table properties each connector accepts, and the
//! session properties.

use tributary_connector::Catalogs;

use super::{Columns, SYSTEM_CATALOG, SystemTable, table};
use crate::cluster::MEMORY_CATALOG;
use crate::session::SESSION_PROPERTIES;

pub(super) fn tables(catalogs: &Catalogs) -> Vec<(&'static str, SystemTable)> {
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
    let session = table(session_rows(), || Box::pin(async { Ok(session_rows()) }));
    vec![
        ("catalogs", catalog_table),
        ("table_properties", properties),
        ("session_properties", session),
    ]
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

fn session_rows() -> Columns {
    let specs = &SESSION_PROPERTIES;
    Columns::default()
        .text(
            "property_name",
            specs.iter().map(|p| Some(p.name.to_owned())).collect(),
        )
        .text(
            "default_value",
            specs.iter().map(|p| Some(p.default.to_owned())).collect(),
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
