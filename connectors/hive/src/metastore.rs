//! Trino's file metastore: a schema is `<catalog dir>/<schema>/.trinoSchema`, a table
//! `<catalog dir>/<schema>/<table>/.trinoTable`, both JSON in Trino's layout (so a directory
//! Trino wrote can be read, and the other way round). Partitions are not recorded: they are
//! the `key=value` directories found under the table's location.
//!
//! Table updates (a write's pending and committed state) are conditional puts on the
//! table file's ETag where the store supports them, so concurrent writers never lose each
//! other's changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::error::{HiveError, Result};
use crate::storage::Location;

const SCHEMA_FILE: &str = ".trinoSchema";
const TABLE_FILE: &str = ".trinoTable";
/// The schema that always exists.
pub const DEFAULT_SCHEMA: &str = "default";

/// `.trinoSchema`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaMetadata {
    /// Owner.
    #[serde(default)]
    pub owner_name: Option<String>,
    /// `USER` or `ROLE`.
    #[serde(default)]
    pub owner_type: Option<String>,
    /// Where tables of the schema keep their data (default: under the catalog directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Free-form parameters.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
}

/// A column of `.trinoTable`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Hive type name.
    #[serde(rename = "type")]
    pub hive_type: String,
    /// Comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `.trinoTable`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableMetadata {
    /// Who wrote the file.
    #[serde(default)]
    pub writer_version: Option<String>,
    /// Owner.
    #[serde(default)]
    pub owner: Option<String>,
    /// `MANAGED_TABLE` or `EXTERNAL_TABLE`.
    pub table_type: String,
    /// Columns stored in the files.
    pub data_columns: Vec<Column>,
    /// Partition keys (directories), after the data columns.
    #[serde(default)]
    pub partition_columns: Vec<Column>,
    /// Table parameters (Tributary's are prefixed `tributary.`).
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// `PARQUET`, `ORC`, `CSV`, `JSON`, `TEXTFILE`.
    #[serde(default)]
    pub storage_format: Option<String>,
    /// Format options (`field.delim`, `skip.header.line.count`, …).
    #[serde(default)]
    pub serde_parameters: BTreeMap<String, String>,
    /// Location of an external table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_location: Option<String>,
    /// A view's definition (`/* Presto View: <base64 JSON> */`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_original_text: Option<String>,
    /// A view's expanded text (Trino writes a marker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_expanded_text: Option<String>,
}

/// Table types.
pub const MANAGED_TABLE: &str = "MANAGED_TABLE";
/// An external table: dropping it keeps the data.
pub const EXTERNAL_TABLE: &str = "EXTERNAL_TABLE";
/// A view or materialized view.
pub const VIRTUAL_VIEW: &str = "VIRTUAL_VIEW";

/// The file metastore of one catalog.
#[derive(Debug, Clone)]
pub struct FileMetastore {
    root: Location,
    store: Arc<dyn ObjectStore>,
}

impl FileMetastore {
    /// A metastore under `root`.
    pub fn new(root: Location, store: Arc<dyn ObjectStore>) -> Self {
        Self { root, store }
    }

    /// The directory of a schema's metadata (and of its managed tables).
    pub fn schema_dir(&self, schema: &str) -> Location {
        self.root.child(schema)
    }

    /// The directory of a table's metadata.
    pub fn table_dir(&self, schema: &str, table: &str) -> Location {
        self.schema_dir(schema).child(table)
    }

    async fn read_json<T: for<'de> Deserialize<'de>>(
        &self,
        path: &Path,
    ) -> Result<Option<(T, UpdateVersion)>> {
        match self.store.get(path).await {
            Ok(got) => {
                let version = UpdateVersion {
                    e_tag: got.meta.e_tag.clone(),
                    version: got.meta.version.clone(),
                };
                let bytes = got.bytes().await.map_err(|e| {
                    HiveError::storage(format!("cannot read {}", self.root.display_path(path)), &e)
                })?;
                let value = serde_json::from_slice(&bytes).map_err(|e| {
                    HiveError::Metadata(format!(
                        "metastore file {} is not valid: {e}",
                        self.root.display_path(path)
                    ))
                })?;
                Ok(Some((value, version)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(HiveError::storage(
                format!(
                    "metastore {}: cannot read {}",
                    self.root,
                    self.root.display_path(path)
                ),
                &e,
            )),
        }
    }

    async fn write_json<T: Serialize>(&self, path: &Path, value: &T, mode: PutMode) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(value)
            .map_err(|e| HiveError::Metadata(format!("cannot encode metadata: {e}")))?;
        let payload = PutPayload::from(Bytes::from(bytes));
        let options = PutOptions {
            mode: mode.clone(),
            ..PutOptions::default()
        };
        match self.store.put_opts(path, payload.clone(), options).await {
            Ok(_) => Ok(()),
            // The local file system has no conditional update: overwrite.
            Err(object_store::Error::NotImplemented { .. })
                if matches!(mode, PutMode::Update(_)) =>
            {
                self.store
                    .put(path, payload)
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        HiveError::storage(
                            format!("cannot write {}", self.root.display_path(path)),
                            &e,
                        )
                    })
            }
            Err(e) => Err(match e {
                object_store::Error::AlreadyExists { .. } => {
                    HiveError::Metadata("already exists".into())
                }
                object_store::Error::Precondition { .. } => {
                    HiveError::Metadata("changed concurrently".into())
                }
                e => HiveError::storage(
                    format!(
                        "metastore {}: cannot write {}",
                        self.root,
                        self.root.display_path(path)
                    ),
                    &e,
                ),
            }),
        }
    }

    /// Names of sub-directories of `dir` that hold `marker`.
    async fn children_with(&self, dir: &Location, marker: &str) -> Result<Vec<String>> {
        let listed = self
            .store
            .list_with_delimiter(Some(&dir.path))
            .await
            .map_err(|e| {
                HiveError::storage(format!("metastore {}: cannot list {dir}", self.root), &e)
            })?;
        let mut names = Vec::new();
        for prefix in listed.common_prefixes {
            let Some(name) = prefix.filename() else {
                continue;
            };
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            match self.store.head(&prefix.clone().join(marker)).await {
                Ok(_) => names.push(name.to_owned()),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    return Err(HiveError::storage(
                        format!("metastore {}: cannot read {prefix}", self.root),
                        &e,
                    ));
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// All schema names (`default` always exists).
    pub async fn schemas(&self) -> Result<Vec<String>> {
        let mut names = self.children_with(&self.root, SCHEMA_FILE).await?;
        if !names.iter().any(|n| n == DEFAULT_SCHEMA) {
            names.push(DEFAULT_SCHEMA.to_owned());
            names.sort();
        }
        Ok(names)
    }

    /// A schema's metadata.
    pub async fn schema(&self, schema: &str) -> Result<Option<SchemaMetadata>> {
        let found = self
            .read_json::<SchemaMetadata>(&self.schema_dir(schema).file(SCHEMA_FILE))
            .await?
            .map(|(m, _)| m);
        Ok(match found {
            None if schema == DEFAULT_SCHEMA => Some(SchemaMetadata::default()),
            other => other,
        })
    }

    /// Creates a schema; fails if it exists.
    pub async fn create_schema(&self, schema: &str, metadata: &SchemaMetadata) -> Result<()> {
        self.write_json(
            &self.schema_dir(schema).file(SCHEMA_FILE),
            metadata,
            PutMode::Create,
        )
        .await
        .map_err(|e| match e {
            HiveError::Metadata(_) => {
                HiveError::Metadata(format!("schema '{schema}' already exists"))
            }
            e => e,
        })
    }

    /// Drops an empty schema.
    pub async fn drop_schema(&self, schema: &str) -> Result<()> {
        if !self.tables(schema).await?.is_empty() {
            return Err(HiveError::Metadata(format!(
                "cannot drop schema '{schema}': it still has tables"
            )));
        }
        let path = self.schema_dir(schema).file(SCHEMA_FILE);
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(HiveError::storage(
                format!("cannot drop schema '{schema}'"),
                &e,
            )),
        }
    }

    /// Table names of a schema.
    pub async fn tables(&self, schema: &str) -> Result<Vec<String>> {
        self.children_with(&self.schema_dir(schema), TABLE_FILE)
            .await
    }

    /// A table's metadata and the version to update it from.
    pub async fn table(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<Option<(TableMetadata, UpdateVersion)>> {
        self.read_json(&self.table_dir(schema, table).file(TABLE_FILE))
            .await
    }

    /// Creates a table; fails if it exists.
    pub async fn create_table(
        &self,
        schema: &str,
        table: &str,
        metadata: &TableMetadata,
    ) -> Result<()> {
        if schema == DEFAULT_SCHEMA {
            // `default` exists implicitly; give it its file on first use.
            let _ = self.create_schema(schema, &SchemaMetadata::default()).await;
        }
        self.write_json(
            &self.table_dir(schema, table).file(TABLE_FILE),
            metadata,
            PutMode::Create,
        )
        .await
        .map_err(|e| match e {
            HiveError::Metadata(_) => {
                HiveError::Metadata(format!("table '{schema}.{table}' already exists"))
            }
            e => e,
        })
    }

    /// Changes a table's metadata with `change`, retrying if another writer changed it first.
    pub async fn update_table(
        &self,
        schema: &str,
        table: &str,
        change: impl Fn(&mut TableMetadata),
    ) -> Result<()> {
        let path = self.table_dir(schema, table).file(TABLE_FILE);
        for _ in 0..20 {
            let Some((mut metadata, version)) = self.read_json::<TableMetadata>(&path).await?
            else {
                return Err(HiveError::Metadata(format!(
                    "table '{schema}.{table}' does not exist"
                )));
            };
            change(&mut metadata);
            match self
                .write_json(&path, &metadata, PutMode::Update(version))
                .await
            {
                Err(HiveError::Metadata(m)) if m == "changed concurrently" => continue,
                other => return other,
            }
        }
        Err(HiveError::Metadata(format!(
            "table '{schema}.{table}' kept changing while it was being updated"
        )))
    }

    /// Removes a table's metadata.
    pub async fn drop_table(&self, schema: &str, table: &str) -> Result<()> {
        let path = self.table_dir(schema, table).file(TABLE_FILE);
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(HiveError::storage(
                format!("cannot drop table '{schema}.{table}'"),
                &e,
            )),
        }
    }
}

/// Deletes every object under `dir` (a managed table's data).
pub async fn delete_dir(store: &Arc<dyn ObjectStore>, dir: &Location) -> Result<()> {
    let paths: Vec<Path> = store
        .list(Some(&dir.path))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(|e| HiveError::storage(format!("cannot list {dir}"), &e))?;
    for path in paths {
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                return Err(HiveError::storage(
                    format!("cannot delete {}", dir.display_path(&path)),
                    &e,
                ));
            }
        }
    }
    Ok(())
}
