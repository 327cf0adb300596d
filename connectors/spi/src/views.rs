//! Views and materialized views, as connectors store them.
//!
//! A connector stores definitions; the scheduler plans them. When a schema provider finds a
//! view it returns a [`ConnectorView`] (a table that cannot be scanned): the scheduler
//! replaces its scans with the view's planned query before anything runs. A materialized
//! view is a [`ConnectorMaterializedView`]: the definition, the table holding its rows (the
//! *storage*) and the state of its last refresh. Freshness is decided by comparing each
//! source table's [`SourceVersion`] now with the one recorded at the last refresh.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use serde::{Deserialize, Serialize};

/// Whose rights a view's tables are read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ViewSecurity {
    /// The view owner's (Trino's default).
    #[default]
    Definer,
    /// The querying user's.
    Invoker,
}

/// A view column: name and Trino type name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewColumn {
    /// Column name.
    pub name: String,
    /// Trino type name (`bigint`, `varchar`, `decimal(10,2)`, …).
    #[serde(rename = "type")]
    pub type_name: String,
    /// The exact Arrow type (`Int64`, `Decimal128(10, 2)`, …), Tributary's addition.
    #[serde(default, rename = "arrowType", skip_serializing_if = "Option::is_none")]
    pub arrow_type: Option<String>,
}

/// What `CREATE VIEW` stores (Trino's view definition: the JSON inside a Hive metastore's
/// `/* Presto View: … */` text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewDefinition {
    /// The query, as written.
    pub original_sql: String,
    /// Catalog for unqualified names in the query.
    #[serde(default)]
    pub catalog: Option<String>,
    /// Schema for unqualified names in the query.
    #[serde(default)]
    pub schema: Option<String>,
    /// The columns the query produced when the view was created.
    pub columns: Vec<ViewColumn>,
    /// Comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Owner (the creating user).
    #[serde(default)]
    pub owner: Option<String>,
    /// `SECURITY INVOKER` when true.
    #[serde(default)]
    pub run_as_invoker: bool,
}

impl ViewDefinition {
    /// The declared columns as an Arrow schema (columns without a readable Arrow type are
    /// varchar).
    pub fn arrow_schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| {
                let data_type = c
                    .arrow_type
                    .as_deref()
                    .and_then(|t| DataType::from_str(t).ok())
                    .or_else(|| trino_type(&c.type_name))
                    .unwrap_or(DataType::Utf8);
                Field::new(&c.name, data_type, true)
            })
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// `SECURITY DEFINER` or `INVOKER`.
    pub fn security(&self) -> ViewSecurity {
        if self.run_as_invoker {
            ViewSecurity::Invoker
        } else {
            ViewSecurity::Definer
        }
    }
}

/// The Arrow type of a Trino type name (views Trino wrote carry only those).
fn trino_type(name: &str) -> Option<DataType> {
    let name = name.trim().to_ascii_lowercase();
    let (base, args) = match name.split_once('(') {
        Some((base, rest)) => (base.trim(), rest.trim_end_matches(')')),
        None => (name.as_str(), ""),
    };
    Some(match base {
        "boolean" => DataType::Boolean,
        "tinyint" => DataType::Int8,
        "smallint" => DataType::Int16,
        "integer" | "int" => DataType::Int32,
        "bigint" => DataType::Int64,
        "real" => DataType::Float32,
        "double" => DataType::Float64,
        "varchar" | "char" | "json" | "uuid" => DataType::Utf8,
        "varbinary" => DataType::Binary,
        "date" => DataType::Date32,
        "timestamp" => DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
        "timestamp with time zone" => {
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into()))
        }
        "decimal" => {
            let (p, s) = args.split_once(',').unwrap_or((args, "0"));
            DataType::Decimal128(p.trim().parse().ok()?, s.trim().parse().ok()?)
        }
        _ => return None,
    })
}

/// A view found in a catalog: a table whose scans the scheduler replaces by the view's
/// query. Scanning it directly is an error.
#[derive(Debug)]
pub struct ConnectorView {
    /// `catalog.schema.view`.
    pub name: String,
    /// The definition.
    pub definition: ViewDefinition,
    /// The declared columns as Arrow fields.
    pub schema: SchemaRef,
}

#[async_trait]
impl TableProvider for ConnectorView {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn get_table_definition(&self) -> Option<&str> {
        Some(&self.definition.original_sql)
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::Internal(format!(
            "view {} was not expanded before planning",
            self.name
        )))
    }
}

/// The version of a source table, recorded at each refresh of a materialized view and
/// compared with the table's current version to decide freshness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceVersion {
    /// Data that never changes (generated tables).
    Immutable,
    /// A table of files: every data file with its size. A newer version that keeps every
    /// file of an older one (same size) only appended files.
    Files {
        /// Path → size in bytes.
        files: BTreeMap<String, u64>,
    },
    /// A Delta table's version.
    Delta {
        /// Log version.
        version: i64,
    },
    /// A topic: the next offset of each partition (high-water marks). Topics only append.
    Offsets {
        /// Partition id → next offset.
        #[serde(with = "partition_keys")]
        partitions: BTreeMap<i32, i64>,
    },
    /// A token the source gives for its contents (a checksum): equal tokens, equal rows.
    Token {
        /// The token.
        token: String,
    },
}

impl SourceVersion {
    /// Whether going from `self` to `newer` only appended rows, so that reading the
    /// difference ([`Connector::pinned_table`](crate::Connector::pinned_table) with a start)
    /// gives exactly the new rows.
    pub fn appended_to(&self, newer: &SourceVersion) -> bool {
        match (self, newer) {
            (Self::Files { files: old }, Self::Files { files: new }) => {
                old.iter().all(|(path, size)| new.get(path) == Some(size))
            }
            (Self::Offsets { partitions: old }, Self::Offsets { partitions: new }) => old
                .iter()
                .all(|(p, end)| new.get(p).is_some_and(|n| n >= end)),
            (Self::Immutable, Self::Immutable) => true,
            _ => false,
        }
    }

    /// A short description for listings (`12 files`, `version 4`, `offsets 0:120,1:80`).
    pub fn describe(&self) -> String {
        match self {
            Self::Immutable => "immutable".into(),
            Self::Files { files } => format!(
                "{} files, {} bytes",
                files.len(),
                files.values().sum::<u64>()
            ),
            Self::Delta { version } => format!("version {version}"),
            Self::Offsets { partitions } => format!(
                "offsets {}",
                partitions
                    .iter()
                    .map(|(p, o)| format!("{p}:{o}"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Self::Token { token } => format!("checksum {token}"),
        }
    }
}

/// Partition ids as the text keys of a JSON object (serde cannot turn text keys back into
/// integers inside a tagged enum).
mod partition_keys {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        map: &BTreeMap<i32, i64>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_map(map.iter().map(|(k, v)| (k.to_string(), v)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<i32, i64>, D::Error> {
        BTreeMap::<String, i64>::deserialize(deserializer)?
            .into_iter()
            .map(|(k, v)| {
                k.parse()
                    .map(|k| (k, v))
                    .map_err(|_| serde::de::Error::custom(format!("partition id '{k}'")))
            })
            .collect()
    }
}

/// How a refresh computed the rows it committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RefreshKind {
    /// The defining query over whole sources.
    Full,
    /// The defining query over the rows appended since the last refresh, appended or merged
    /// into the stored rows.
    Incremental,
}

impl std::fmt::Display for RefreshKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Full => "FULL",
            Self::Incremental => "INCREMENTAL",
        })
    }
}

/// What the last refresh of a materialized view recorded, committed together with its rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshState {
    /// When the refresh committed (milliseconds since the epoch).
    pub refreshed_at_ms: i64,
    /// How.
    pub kind: RefreshKind,
    /// Each source table (`catalog.schema.table`) and the version its rows were read at;
    /// `None` where the source cannot tell its version (the view is then never fresh).
    pub sources: BTreeMap<String, Option<SourceVersion>>,
    /// Rows the refresh read from each source (for an incremental refresh: the new rows).
    #[serde(default)]
    pub rows_read: BTreeMap<String, u64>,
    /// Rows the view holds after the refresh.
    #[serde(default)]
    pub rows: u64,
}

/// How a refresh's rows change the storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitMode {
    /// The rows replace the stored rows.
    Replace,
    /// The rows are added to the stored rows.
    Append,
}

/// `CREATE MATERIALIZED VIEW`'s definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaterializedViewDefinition {
    /// The query and its columns, as for a view.
    pub view: ViewDefinition,
    /// The storage's properties (`format`, `partitioned_by`, `location`), as written.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// A materialized view found in a catalog. Its scans are replaced by the scheduler: by a
/// scan of [`Self::storage`] while the view is fresh enough, else by the defining query.
/// Cloning is cheap: the storage provider and schema are shared.
#[derive(Debug, Clone)]
pub struct ConnectorMaterializedView {
    /// `catalog.schema.view`.
    pub name: String,
    /// The definition.
    pub definition: MaterializedViewDefinition,
    /// The table holding the rows of the last refresh (empty before the first).
    pub storage: Arc<dyn TableProvider>,
    /// Where the storage is (`s3://…`), for listings.
    pub storage_location: String,
    /// The last refresh, `None` before the first.
    pub state: Option<RefreshState>,
    /// The declared columns.
    pub schema: SchemaRef,
}

#[async_trait]
impl TableProvider for ConnectorMaterializedView {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        // Trino lists materialized views as tables of type 'MATERIALIZED VIEW'; DataFusion's
        // information_schema only knows base tables, views and temporaries.
        TableType::View
    }

    fn get_table_definition(&self) -> Option<&str> {
        Some(&self.definition.view.original_sql)
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::Internal(format!(
            "materialized view {} was not expanded before planning",
            self.name
        )))
    }
}

/// Whether `provider` is a view or materialized view a connector returned.
pub fn is_view(provider: &dyn TableProvider) -> bool {
    provider.is::<ConnectorView>() || provider.is::<ConnectorMaterializedView>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_state_round_trips_through_json_text() {
        let state = RefreshState {
            refreshed_at_ms: 1,
            kind: RefreshKind::Incremental,
            sources: [(
                "kafka.default.orders".to_owned(),
                Some(SourceVersion::Offsets {
                    partitions: [(0, 12), (2, 7)].into_iter().collect(),
                }),
            )]
            .into_iter()
            .collect(),
            rows_read: BTreeMap::new(),
            rows: 3,
        };
        let value = serde_json::to_value(&state).expect("encodes");
        let back: RefreshState = serde_json::from_value(value).expect("decodes");
        assert_eq!(back, state);
        let old = SourceVersion::Files {
            files: [("a".to_owned(), 1)].into_iter().collect(),
        };
        let new = SourceVersion::Files {
            files: [("a".to_owned(), 1), ("b".to_owned(), 2)]
                .into_iter()
                .collect(),
        };
        assert!(old.appended_to(&new) && !new.appended_to(&old));
    }

    #[test]
    fn views_written_by_trino_keep_their_types() {
        let column = |name: &str, type_name: &str| ViewColumn {
            name: name.into(),
            type_name: type_name.into(),
            arrow_type: None,
        };
        let view = ViewDefinition {
            original_sql: "SELECT 1".into(),
            catalog: None,
            schema: None,
            columns: vec![
                column("a", "bigint"),
                column("b", "decimal(10,2)"),
                column("c", "varchar(20)"),
                column("d", "row(x integer)"),
            ],
            comment: None,
            owner: None,
            run_as_invoker: false,
        };
        let types: Vec<DataType> = view
            .arrow_schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(
            types,
            vec![
                DataType::Int64,
                DataType::Decimal128(10, 2),
                DataType::Utf8,
                DataType::Utf8
            ]
        );
    }
}
