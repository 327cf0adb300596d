//! Statements the scheduler answers from metadata: SHOW …, DESCRIBE, USE.

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::SchemaProvider;
use datafusion::prelude::SessionContext;

use tributary_connector::Catalogs;

use crate::error::{Result, SchedulerError};
use crate::flight_sql::trino_type_name;
use crate::session::{SESSION_PROPERTIES, Session};
use crate::statement::Statement;

/// Runs a metadata statement.
pub(crate) async fn run(
    ctx: &SessionContext,
    catalogs: &Catalogs,
    session: &Session,
    statement: &Statement,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    match statement {
        Statement::ShowCatalogs { like } => {
            let mut names = ctx.catalog_names();
            names.retain(|n| like.as_deref().is_none_or(|p| like_match(n, p)));
            names.sort();
            table(&["Catalog"], vec![names])
        }
        Statement::ShowSchemas { catalog, like } => {
            let catalog = match catalog.as_ref().or(session.catalog.as_ref()) {
                Some(c) => c.clone(),
                None => {
                    return Err(SchedulerError::InvalidQuery(
                        "catalog must be specified when session catalog is not set".into(),
                    ));
                }
            };
            let mut names = schema_names(ctx, catalogs, &catalog)?;
            names.retain(|n| like.as_deref().is_none_or(|p| like_match(n, p)));
            names.sort();
            table(&["Schema"], vec![names])
        }
        Statement::ShowTables { schema, like } => {
            let (catalog, schema, provider) = resolve_schema_provider(ctx, session, schema)?;
            let mut names = match catalogs.find(&catalog) {
                Some(connector) => connector.table_names(&schema)?.unwrap_or_default(),
                None => provider.table_names(),
            };
            crate::access::visible_tables(ctx, &catalog, &schema, &mut names);
            names.retain(|n| like.as_deref().is_none_or(|p| like_match(n, p)));
            names.sort();
            table(&["Table"], vec![names])
        }
        Statement::ShowColumns { table: name } => show_columns(ctx, session, name).await,
        Statement::ShowCreateTable { table: name } => show_create_table(ctx, session, name).await,
        Statement::ShowPartitions { table: name } => {
            let (last, rest) = name
                .split_last()
                .ok_or_else(|| SchedulerError::InvalidQuery("table name expected".into()))?;
            let mut parts = rest.to_vec();
            parts.push(format!("{last}$partitions"));
            let (catalog, schema, table, provider) = find_table(ctx, session, &parts).await?;
            // Partitions are the table's data: SELECT on it.
            if let Some(scope) = crate::access::AccessScope::of(ctx) {
                scope.check_table(
                    &datafusion::common::ResolvedTableReference {
                        catalog: catalog.into(),
                        schema: schema.into(),
                        table: table.into(),
                    },
                    crate::access::Privilege::Select,
                )?;
            }
            let df = ctx.read_table(provider)?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            Ok((schema, df.collect().await?))
        }
        Statement::ShowSession => {
            let mut cols: [Vec<String>; 5] = Default::default();
            for p in SESSION_PROPERTIES {
                cols[0].push(p.name.to_owned());
                cols[1].push(session.property(p.name).unwrap_or_default());
                cols[2].push(session.defaults.get(p.name).unwrap_or_default());
                cols[3].push(p.sql_type.to_owned());
                cols[4].push(p.description.to_owned());
            }
            for (name, value) in &session.properties {
                if !SESSION_PROPERTIES.iter().any(|p| p.name == name) {
                    let default = ctx
                        .state()
                        .config()
                        .options()
                        .entries()
                        .into_iter()
                        .find(|e| &e.key == name);
                    cols[0].push(name.clone());
                    cols[1].push(value.clone());
                    cols[2].push(default.and_then(|e| e.value).unwrap_or_default());
                    cols[3].push("varchar".into());
                    cols[4].push("engine setting".into());
                }
            }
            table(
                &["Name", "Value", "Default", "Type", "Description"],
                cols.into(),
            )
        }
        other => Err(SchedulerError::Engine(format!(
            "statement {other:?} is not a metadata statement"
        ))),
    }
}

/// `[[catalog.]schema.]table` → (catalog, schema, table, its provider), checked to exist.
async fn find_table(
    ctx: &SessionContext,
    session: &Session,
    name: &[String],
) -> Result<(
    String,
    String,
    String,
    Arc<dyn datafusion::catalog::TableProvider>,
)> {
    let (table_name, schema_parts) = name
        .split_last()
        .ok_or_else(|| SchedulerError::InvalidQuery("table name expected".into()))?;
    let (catalog, schema, provider) = resolve_schema_provider(ctx, session, schema_parts)?;
    crate::access::check_visible(ctx, &catalog, &schema, table_name)?;
    let table_provider = provider.table(table_name).await?.ok_or_else(|| {
        SchedulerError::NotFound(format!(
            "table '{catalog}.{schema}.{table_name}' does not exist"
        ))
    })?;
    Ok((catalog, schema, table_name.clone(), table_provider))
}

/// `SHOW CREATE TABLE`: the connector's own definition (with its table properties), or one
/// made from the columns.
async fn show_create_table(
    ctx: &SessionContext,
    session: &Session,
    name: &[String],
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let (catalog, schema, table_name, provider) = find_table(ctx, session, name).await?;
    let definition = match provider.get_table_definition() {
        Some(d) => d.to_owned(),
        None => {
            let columns: Vec<String> = provider
                .schema()
                .fields()
                .iter()
                .map(|f| format!("   {} {}", f.name(), trino_type_name(f.data_type())))
                .collect();
            format!(
                "CREATE TABLE {catalog}.{schema}.{table_name} (\n{}\n)",
                columns.join(",\n")
            )
        }
    };
    table(&["Create Table"], vec![vec![definition]])
}

async fn show_columns(
    ctx: &SessionContext,
    session: &Session,
    name: &[String],
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let (catalog, schema, table_name, table_provider) = find_table(ctx, session, name).await?;
    // Columns the user may not read are left out, as Trino does.
    let fields = table_provider.schema().fields().clone();
    let denied = match crate::access::AccessScope::of(ctx) {
        Some(scope) => scope.denied_columns(
            &datafusion::common::ResolvedTableReference {
                catalog: catalog.into(),
                schema: schema.into(),
                table: table_name.into(),
            },
            fields.iter().map(|f| f.name().as_str()),
        ),
        None => Vec::new(),
    };
    let mut cols: [Vec<String>; 4] = Default::default();
    for field in &fields {
        if tributary_connector::is_hidden(field) || denied.contains(field.name()) {
            continue;
        }
        cols[0].push(field.name().clone());
        cols[1].push(trino_type_name(field.data_type()));
        cols[2].push(String::new());
        cols[3].push(String::new());
    }
    table(&["Column", "Type", "Extra", "Comment"], cols.into())
}

/// `[catalog.]schema` (or nothing: the session's) → (catalog, schema, its provider), checked to exist.
fn resolve_schema_provider(
    ctx: &SessionContext,
    session: &Session,
    parts: &[String],
) -> Result<(String, String, Arc<dyn SchemaProvider>)> {
    let (catalog, schema) =
        match parts {
            [] => match (&session.catalog, &session.schema) {
                (Some(c), Some(s)) => (c.clone(), s.clone()),
                _ => return Err(SchedulerError::InvalidQuery(
                    "schema must be specified when session schema is not set (USE catalog.schema)"
                        .into(),
                )),
            },
            [schema] => match &session.catalog {
                Some(c) => (c.clone(), schema.clone()),
                None => {
                    return Err(SchedulerError::InvalidQuery(
                        "catalog must be specified when session catalog is not set".into(),
                    ));
                }
            },
            [catalog, schema] => (catalog.clone(), schema.clone()),
            _ => {
                return Err(SchedulerError::InvalidQuery(format!(
                    "too many name parts in '{}'",
                    parts.join(".")
                )));
            }
        };
    let provider = ctx
        .catalog(&catalog)
        .ok_or_else(|| not_found_catalog(&catalog))?;
    let Some(provider) = provider.schema(&schema) else {
        return Err(SchedulerError::NotFound(format!(
            "schema '{catalog}.{schema}' does not exist"
        )));
    };
    Ok((catalog, schema, provider))
}

/// `[catalog.]schema` (or nothing: the session's) → (catalog, schema), checked to exist.
pub(crate) fn resolve_schema(
    ctx: &SessionContext,
    session: &Session,
    parts: &[String],
) -> Result<(String, String)> {
    resolve_schema_provider(ctx, session, parts).map(|(catalog, schema, _)| (catalog, schema))
}

/// Schema names of a catalog the user may see: from its connector (which reports a source it
/// cannot reach), else from DataFusion (the `memory` catalog).
pub(crate) fn schema_names(
    ctx: &SessionContext,
    catalogs: &Catalogs,
    catalog: &str,
) -> Result<Vec<String>> {
    let mut names = match catalogs.find(catalog) {
        Some(connector) => connector.schema_names()?,
        None => ctx
            .catalog(catalog)
            .ok_or_else(|| not_found_catalog(catalog))?
            .schema_names(),
    };
    crate::access::visible_schemas(ctx, catalog, &mut names);
    Ok(names)
}

fn not_found_catalog(catalog: &str) -> SchedulerError {
    SchedulerError::NotFound(format!("catalog '{catalog}' does not exist"))
}

/// SQL LIKE with `%` and `_`.
pub(crate) fn like_match(text: &str, pattern: &str) -> bool {
    fn go(t: &[char], p: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('%', rest)) => (0..=t.len()).any(|i| go(&t[i..], rest)),
            Some(('_', rest)) => !t.is_empty() && go(&t[1..], rest),
            Some((c, rest)) => t.first() == Some(c) && go(&t[1..], rest),
        }
    }
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    go(&t, &p)
}

/// A batch of string columns.
pub(crate) fn table(
    names: &[&str],
    columns: Vec<Vec<String>>,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = columns
        .into_iter()
        .map(|c| Arc::new(StringArray::from(c)) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(Arc::clone(&schema), arrays)?;
    Ok((schema, vec![batch]))
}

#[cfg(test)]
mod tests {
    use super::like_match;

    #[test]
    fn like_patterns() {
        assert!(like_match("nation", "n%"));
        assert!(like_match("nation", "_ation"));
        assert!(!like_match("region", "n%"));
    }
}
