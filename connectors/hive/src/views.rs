//! Views and materialized views in the file metastore, in Trino's layout: a `.trinoTable` of
//! type `VIRTUAL_VIEW` whose `viewOriginalText` is `/* Presto View: <base64 JSON> */`
//! (Trino reads and writes the same files). A materialized view is stored the same way with
//! `/* Presto Materialized View: … */`; its rows live in a Delta table at the view's
//! location (by default the view's own directory), and each refresh is one Delta commit that
//! carries the refresh's state in its commit info: readers see the previous rows and state
//! or the new ones, and a refresh that dies before its commit changes nothing.
//!
//! Source versions for freshness: a Hive table's version is its data files with their sizes
//! (files only added: an append), a Delta table's its log version.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use base64::Engine as _;
use datafusion::catalog::TableProvider;
use datafusion::execution::SendableRecordBatchStream;
use tributary_connector::{
    CommitMode, ConnectorMaterializedView, ConnectorView, MaterializedViewDefinition,
    PropertyValue, RefreshState, SourceVersion, TableProperties, ViewDefinition,
};

use crate::context::HiveContext;
use crate::error::{HiveError, Result};
use crate::metastore::{TableMetadata, VIRTUAL_VIEW, delete_dir};
use crate::storage::Location;
use crate::table::HiveTable;
use crate::table_info::{LOCATION, TableInfo};

const VIEW_PREFIX: &str = "/* Presto View: ";
const MATERIALIZED_PREFIX: &str = "/* Presto Materialized View: ";
const SUFFIX: &str = " */";
/// Marks a materialized view's entry (Trino's Iceberg connector writes the same parameter).
const MATERIALIZED_FLAG: &str = "presto_materialized_view";

/// What a `VIRTUAL_VIEW` entry holds.
#[derive(Debug, Clone)]
pub enum StoredView {
    /// A view.
    View(ViewDefinition),
    /// A materialized view and the location of its storage.
    Materialized(MaterializedViewDefinition, Location),
}

fn encode(prefix: &str, json: &[u8]) -> String {
    format!(
        "{prefix}{}{SUFFIX}",
        base64::engine::general_purpose::STANDARD.encode(json)
    )
}

fn decode_text(qualified: &str, text: &str, prefix: &str) -> Result<Option<Vec<u8>>> {
    let Some(body) = text.trim().strip_prefix(prefix) else {
        return Ok(None);
    };
    let body = body.strip_suffix(SUFFIX).unwrap_or(body).trim();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map(Some)
        .map_err(|e| HiveError::Metadata(format!("view {qualified}: invalid definition: {e}")))
}

/// The view stored in a metastore entry, if the entry is a view.
pub fn stored_view(qualified: &str, metadata: &TableMetadata) -> Result<Option<StoredView>> {
    if metadata.table_type != VIRTUAL_VIEW {
        return Ok(None);
    }
    let text = metadata.view_original_text.as_deref().unwrap_or_default();
    let invalid = |e: serde_json::Error| {
        HiveError::Metadata(format!("view {qualified}: invalid definition: {e}"))
    };
    if let Some(json) = decode_text(qualified, text, MATERIALIZED_PREFIX)? {
        let definition: MaterializedViewDefinition =
            serde_json::from_slice(&json).map_err(invalid)?;
        let location = metadata.parameters.get(LOCATION).ok_or_else(|| {
            HiveError::Metadata(format!(
                "materialized view {qualified}: no storage location recorded"
            ))
        })?;
        return Ok(Some(StoredView::Materialized(
            definition,
            Location::parse(location)?,
        )));
    }
    if let Some(json) = decode_text(qualified, text, VIEW_PREFIX)? {
        let definition: ViewDefinition = serde_json::from_slice(&json).map_err(invalid)?;
        return Ok(Some(StoredView::View(definition)));
    }
    Err(HiveError::NotSupported(format!(
        "view {qualified} was not written by Trino or Tributary (Hive views are not supported)"
    )))
}

fn qualified(ctx: &HiveContext, schema: &str, name: &str) -> String {
    format!("{}.{schema}.{name}", ctx.catalog())
}

async fn existing(ctx: &HiveContext, schema: &str, name: &str) -> Result<Option<TableMetadata>> {
    Ok(ctx.metastore.table(schema, name).await?.map(|(m, _)| m))
}

async fn require_schema(ctx: &HiveContext, schema: &str) -> Result<Option<String>> {
    match ctx.metastore.schema(schema).await? {
        Some(meta) => Ok(meta.location),
        None => Err(HiveError::Metadata(format!(
            "schema '{}.{schema}' does not exist",
            ctx.catalog()
        ))),
    }
}

/// `CREATE [OR REPLACE] VIEW`.
pub async fn create_view(
    ctx: &HiveContext,
    (schema, name): (&str, &str),
    definition: &ViewDefinition,
    or_replace: bool,
) -> Result<()> {
    let view = qualified(ctx, schema, name);
    require_schema(ctx, schema).await?;
    if let Some(found) = existing(ctx, schema, name).await? {
        match stored_view(&view, &found) {
            Ok(Some(StoredView::View(_))) if or_replace => {}
            Ok(Some(StoredView::View(_))) => {
                return Err(HiveError::Metadata(format!("view '{view}' already exists")));
            }
            Ok(Some(StoredView::Materialized(..))) => {
                return Err(HiveError::Metadata(format!(
                    "'{view}' is a materialized view; drop it with DROP MATERIALIZED VIEW first"
                )));
            }
            _ => {
                return Err(HiveError::Metadata(format!(
                    "'{view}' already exists and is a table"
                )));
            }
        }
        ctx.metastore.drop_table(schema, name).await?;
    }
    let json = serde_json::to_vec(definition)
        .map_err(|e| HiveError::Metadata(format!("cannot encode view {view}: {e}")))?;
    let mut parameters = BTreeMap::new();
    parameters.insert("presto_view".to_owned(), "true".to_owned());
    parameters.insert("comment".to_owned(), "Presto View".to_owned());
    let metadata = TableMetadata {
        writer_version: Some(format!("tributary {}", env!("CARGO_PKG_VERSION"))),
        owner: definition.owner.clone(),
        table_type: VIRTUAL_VIEW.to_owned(),
        data_columns: vec![],
        partition_columns: vec![],
        parameters,
        storage_format: None,
        serde_parameters: BTreeMap::new(),
        external_location: None,
        view_original_text: Some(encode(VIEW_PREFIX, &json)),
        view_expanded_text: Some("/* Presto View */".to_owned()),
    };
    ctx.metastore.create_table(schema, name, &metadata).await
}

/// `DROP VIEW`: whether there was a view of that name.
pub async fn drop_view(ctx: &HiveContext, schema: &str, name: &str) -> Result<bool> {
    let view = qualified(ctx, schema, name);
    let Some(found) = existing(ctx, schema, name).await? else {
        return Ok(false);
    };
    match stored_view(&view, &found)? {
        Some(StoredView::View(_)) => {
            ctx.metastore.drop_table(schema, name).await?;
            Ok(true)
        }
        Some(StoredView::Materialized(..)) => Err(HiveError::Metadata(format!(
            "'{view}' is a materialized view: use DROP MATERIALIZED VIEW"
        ))),
        None => Err(HiveError::Metadata(format!(
            "'{view}' is a table, not a view: use DROP TABLE"
        ))),
    }
}

/// The storage properties a materialized view takes.
const MATERIALIZED_PROPERTIES: &str = "format, partitioned_by, location";

/// `CREATE [OR REPLACE] MATERIALIZED VIEW`: records the definition and creates the empty
/// Delta storage.
pub async fn create_materialized_view(
    ctx: &HiveContext,
    (schema, name): (&str, &str),
    definition: &MaterializedViewDefinition,
    columns: SchemaRef,
    or_replace: bool,
) -> Result<()> {
    let view = qualified(ctx, schema, name);
    let schema_location = require_schema(ctx, schema).await?;
    let invalid = |message: String| HiveError::InvalidProperty {
        target: format!("materialized view {view}"),
        message,
    };
    let mut location = None;
    let mut storage = TableProperties::default();
    for (key, value) in &definition.properties {
        match key.as_str() {
            "format" => {
                if !value.eq_ignore_ascii_case("PARQUET") && !value.eq_ignore_ascii_case("DELTA") {
                    return Err(invalid(format!(
                        "format '{value}' is not supported: a materialized view is stored as a Delta table of PARQUET files"
                    )));
                }
            }
            "partitioned_by" => {
                let names: Vec<PropertyValue> = value
                    .split(',')
                    .map(|c| PropertyValue::String(c.trim().to_owned()))
                    .filter(|c| *c != PropertyValue::String(String::new()))
                    .collect();
                storage
                    .0
                    .push(("partitioned_by".to_owned(), PropertyValue::Array(names)));
            }
            "location" => location = Some(Location::parse(value)?),
            other => {
                return Err(invalid(format!(
                    "unknown property '{other}' (known: {MATERIALIZED_PROPERTIES})"
                )));
            }
        }
    }
    let location = match (location, schema_location) {
        (Some(l), _) => l,
        (None, Some(base)) => Location::parse(&base)?.child(name),
        (None, None) => ctx.table_dir(schema, name),
    };
    if let Some(found) = existing(ctx, schema, name).await? {
        match stored_view(&view, &found) {
            Ok(Some(StoredView::Materialized(..))) if or_replace => {
                // The properties were valid: only now is the old view dropped.
                drop_materialized_view(ctx, schema, name).await?;
            }
            Ok(Some(StoredView::Materialized(..))) => {
                return Err(HiveError::Metadata(format!(
                    "materialized view '{view}' already exists"
                )));
            }
            _ => {
                return Err(HiveError::Metadata(format!(
                    "'{view}' already exists and is not a materialized view"
                )));
            }
        }
    }
    // A view's storage is its own: a location that already holds a Delta table (another
    // view's leftovers, a user's table) is not taken over.
    if crate::delta::holds_table(ctx, &location, &format!("materialized view {view}")).await? {
        return Err(invalid(format!(
            "location '{location}' already holds a Delta table; a materialized view needs an empty location"
        )));
    }
    storage.0.push((
        "location".to_owned(),
        PropertyValue::String(location.to_string()),
    ));
    let mut metadata =
        crate::delta::create_table(ctx, (schema, name), None, &columns, &storage).await?;
    let json = serde_json::to_vec(definition)
        .map_err(|e| HiveError::Metadata(format!("cannot encode view {view}: {e}")))?;
    metadata.table_type = VIRTUAL_VIEW.to_owned();
    metadata.external_location = None;
    metadata.owner.clone_from(&definition.view.owner);
    metadata
        .parameters
        .insert(LOCATION.to_owned(), location.to_string());
    metadata
        .parameters
        .insert(MATERIALIZED_FLAG.to_owned(), "true".to_owned());
    metadata.view_original_text = Some(encode(MATERIALIZED_PREFIX, &json));
    metadata.view_expanded_text = Some("/* Presto Materialized View */".to_owned());
    ctx.metastore.create_table(schema, name, &metadata).await
}

/// `DROP MATERIALIZED VIEW`: the entry and the storage's files.
pub async fn drop_materialized_view(ctx: &HiveContext, schema: &str, name: &str) -> Result<bool> {
    let view = qualified(ctx, schema, name);
    let Some(found) = existing(ctx, schema, name).await? else {
        return Ok(false);
    };
    let Some(StoredView::Materialized(_, location)) = stored_view(&view, &found)? else {
        return Err(HiveError::Metadata(format!(
            "'{view}' is not a materialized view"
        )));
    };
    // The files first: if deleting them fails, the view is still there to drop again.
    let store = ctx.stores.get(&location)?;
    delete_dir(&store, &location).await?;
    ctx.metastore.drop_table(schema, name).await?;
    Ok(true)
}

/// Every materialized view of the catalog.
pub async fn materialized_views(ctx: &HiveContext) -> Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    for schema in ctx.metastore.schemas().await? {
        for table in ctx.metastore.tables(&schema).await? {
            if let Some((metadata, _)) = ctx.metastore.table(&schema, &table).await?
                && metadata.parameters.contains_key(MATERIALIZED_FLAG)
            {
                found.push((schema.clone(), table));
            }
        }
    }
    Ok(found)
}

/// The provider of a view entry: a [`ConnectorView`], or a [`ConnectorMaterializedView`]
/// with its storage and the state of its last refresh.
pub async fn load(
    ctx: Arc<HiveContext>,
    (schema, name): (&str, &str),
    stored: StoredView,
) -> Result<Arc<dyn TableProvider>> {
    let view = qualified(&ctx, schema, name);
    match stored {
        StoredView::View(definition) => Ok(Arc::new(ConnectorView {
            schema: definition.arrow_schema(),
            name: view,
            definition,
        })),
        StoredView::Materialized(definition, location) => {
            let state = match crate::delta::last_commit_value(
                &ctx,
                &location,
                &view,
                crate::delta::REFRESH_STATE_KEY,
            )
            .await?
            {
                Some(value) => {
                    Some(serde_json::from_value::<RefreshState>(value).map_err(|e| {
                        HiveError::Metadata(format!(
                            "materialized view {view}: invalid refresh state: {e}"
                        ))
                    })?)
                }
                None => None,
            };
            let storage = crate::delta::DeltaLakeTable::load(
                Arc::clone(&ctx),
                view.clone(),
                location.clone(),
            )
            .await?;
            Ok(Arc::new(ConnectorMaterializedView {
                schema: definition.view.arrow_schema(),
                name: view,
                definition,
                storage: Arc::new(storage),
                storage_location: location.to_string(),
                state,
            }))
        }
    }
}

/// Commits a refresh's rows and state to a materialized view's storage.
pub async fn commit(
    ctx: &HiveContext,
    (schema, name): (&str, &str),
    rows: SendableRecordBatchStream,
    mode: CommitMode,
    state: &RefreshState,
) -> Result<u64> {
    let view = qualified(ctx, schema, name);
    let Some(found) = existing(ctx, schema, name).await? else {
        return Err(HiveError::Metadata(format!(
            "materialized view '{view}' does not exist"
        )));
    };
    let Some(StoredView::Materialized(_, location)) = stored_view(&view, &found)? else {
        return Err(HiveError::Metadata(format!(
            "'{view}' is not a materialized view"
        )));
    };
    let state = serde_json::to_value(state)
        .map_err(|e| HiveError::Metadata(format!("cannot encode the refresh state: {e}")))?;
    crate::delta::commit_rows(
        ctx,
        &location,
        &view,
        rows,
        mode == CommitMode::Replace,
        vec![(crate::delta::REFRESH_STATE_KEY.to_owned(), state)],
    )
    .await
}

/// The version of a table's contents: its files (Hive) or log version (Delta); `None` for
/// views.
pub async fn table_version(
    ctx: Arc<HiveContext>,
    schema: &str,
    name: &str,
) -> Result<Option<SourceVersion>> {
    let table = qualified(&ctx, schema, name);
    let Some(metadata) = existing(&ctx, schema, name).await? else {
        return Err(HiveError::Metadata(format!(
            "table '{table}' does not exist"
        )));
    };
    if metadata.table_type == VIRTUAL_VIEW {
        return Ok(None);
    }
    if crate::delta::is_delta(&metadata) {
        let location = delta_location(&ctx, schema, name, &metadata)?;
        let version = crate::delta::version(&ctx, &location, &table).await?;
        return Ok(Some(SourceVersion::Delta { version }));
    }
    let hive = hive_table(ctx, schema, name, &metadata)?;
    Ok(Some(SourceVersion::Files {
        files: hive.file_sizes().await?,
    }))
}

/// A Hive table reading only the files of version `to` (less those of `from`). Delta
/// tables are not pinned (a refresh reads their newest version).
pub async fn pinned_table(
    ctx: Arc<HiveContext>,
    (schema, name): (&str, &str),
    from: Option<&SourceVersion>,
    to: &SourceVersion,
) -> Result<Option<Arc<dyn TableProvider>>> {
    let SourceVersion::Files { files } = to else {
        return Ok(None);
    };
    let Some(metadata) = existing(&ctx, schema, name).await? else {
        return Ok(None);
    };
    if metadata.table_type == VIRTUAL_VIEW || crate::delta::is_delta(&metadata) {
        return Ok(None);
    }
    let mut only: BTreeSet<String> = files.keys().cloned().collect();
    if let Some(SourceVersion::Files { files: before }) = from {
        only.retain(|f| !before.contains_key(f));
    }
    let hive = hive_table(ctx, schema, name, &metadata)?.pinned(only);
    Ok(Some(Arc::new(hive)))
}

fn hive_table(
    ctx: Arc<HiveContext>,
    schema: &str,
    name: &str,
    metadata: &TableMetadata,
) -> Result<HiveTable> {
    let info = TableInfo::from_metadata(
        qualified(&ctx, schema, name),
        metadata,
        ctx.table_dir(schema, name),
    )?;
    Ok(HiveTable::new(ctx, schema, name, info))
}

/// Where a Delta table's log is.
pub fn delta_location(
    ctx: &HiveContext,
    schema: &str,
    name: &str,
    metadata: &TableMetadata,
) -> Result<Location> {
    match (
        &metadata.external_location,
        metadata.parameters.get(LOCATION),
    ) {
        (Some(l), _) | (None, Some(l)) => Location::parse(l),
        (None, None) => Ok(ctx.table_dir(schema, name)),
    }
}
