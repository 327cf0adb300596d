//! DataFusion's catalog and schema providers over the file metastore, and the DDL they
//! carry out (`CREATE/DROP SCHEMA`, `CREATE/DROP TABLE`), plus each table's
//! `"<table>$partitions"` table.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::error::{DataFusionError, Result as DfResult};
use tributary_connector::TableProperties;

use crate::context::{CatalogKind, HiveContext};
use crate::error::{HiveError, Result};
use crate::metastore::{SchemaMetadata, delete_dir};
use crate::table::HiveTable;
use crate::table_info::{TableInfo, new_table_metadata};

const PARTITIONS_SUFFIX: &str = "$partitions";

fn df(e: HiveError) -> DataFusionError {
    e.into()
}

/// A Hive catalog.
#[derive(Debug)]
pub struct HiveCatalog {
    ctx: Arc<HiveContext>,
}

impl HiveCatalog {
    /// The catalog of a context.
    pub fn new(ctx: Arc<HiveContext>) -> Self {
        Self { ctx }
    }

    /// Schema names (errors reported).
    pub fn schemas(&self) -> Result<Vec<String>> {
        let ctx = Arc::clone(&self.ctx);
        self.ctx
            .block_on(async move { ctx.metastore.schemas().await })
    }

    /// Table names of a schema, `None` if there is no such schema.
    pub fn tables(&self, schema: &str) -> Result<Option<Vec<String>>> {
        let ctx = Arc::clone(&self.ctx);
        let schema = schema.to_owned();
        self.ctx.block_on(async move {
            if ctx.metastore.schema(&schema).await?.is_none() {
                return Ok(None);
            }
            ctx.metastore.tables(&schema).await.map(Some)
        })
    }

    /// `CREATE SCHEMA … WITH (location = '…')`.
    pub fn create_schema(&self, schema: &str, properties: &TableProperties) -> Result<()> {
        let mut metadata = SchemaMetadata {
            owner_name: Some("tributary".into()),
            owner_type: Some("USER".into()),
            ..SchemaMetadata::default()
        };
        for (name, value) in &properties.0 {
            match (name.as_str(), value) {
                ("location", tributary_connector::PropertyValue::String(l)) => {
                    metadata.location = Some(crate::storage::Location::parse(l)?.to_string());
                }
                _ => {
                    return Err(HiveError::InvalidProperty {
                        target: format!("schema {}.{schema}", self.ctx.catalog()),
                        message: format!("unknown schema property '{name}' (known: location)"),
                    });
                }
            }
        }
        let ctx = Arc::clone(&self.ctx);
        let schema = schema.to_owned();
        self.ctx
            .block_on(async move { ctx.metastore.create_schema(&schema, &metadata).await })
    }

    /// `CREATE TABLE … WITH (…)`: records the table (an external table's files stay as they are).
    pub fn create_table(
        &self,
        schema: &str,
        table: &str,
        columns: &Schema,
        properties: &TableProperties,
    ) -> Result<()> {
        let ctx = Arc::clone(&self.ctx);
        let (schema, table) = (schema.to_owned(), table.to_owned());
        let columns = columns.clone();
        let properties = properties.clone();
        self.ctx.block_on(async move {
            let Some(schema_meta) = ctx.metastore.schema(&schema).await? else {
                return Err(HiveError::Metadata(format!(
                    "schema '{}.{schema}' does not exist",
                    ctx.catalog()
                )));
            };
            if ctx.kind == CatalogKind::DeltaLake {
                if ctx.metastore.table(&schema, &table).await?.is_some() {
                    return Err(HiveError::Metadata(format!("table '{schema}.{table}' already exists")));
                }
                let metadata = crate::delta::create_table(
                    &ctx,
                    (&schema, &table),
                    schema_meta.location.as_deref(),
                    &columns,
                    &properties,
                )
                .await?;
                return ctx.metastore.create_table(&schema, &table, &metadata).await;
            }
            let mut metadata = new_table_metadata(
                &ctx.config,
                schema_meta.location.as_deref(),
                (&schema, &table),
                &columns,
                &properties,
            )?;
            if let Some(location) = &metadata.external_location {
                // The location must be reachable with the catalog's credentials (Trino checks
                // it too): a missing bucket or a wrong key fails here, naming the table.
                let location = crate::storage::Location::parse(location)?;
                let store = ctx.stores.get(&location)?;
                store.list_with_delimiter(Some(&location.path)).await.map_err(|e| {
                    HiveError::storage(
                        format!("table {}.{schema}.{table}: cannot use external_location '{location}'", ctx.catalog()),
                        &e,
                    )
                })?;
            }
            if let Some(column) = infer_date_column(&ctx, (&schema, &table), &metadata).await? {
                metadata.parameters.insert(crate::table_info::DATE_COLUMN.to_owned(), column);
            }
            ctx.metastore.create_table(&schema, &table, &metadata).await
        })
    }
}

/// The `partition_date_column` a new table's existing files support: its only DATE column,
/// when the files sit in `year=`/`month=`/`day=` directories and every file's statistics put
/// the column inside its directory's dates.
async fn infer_date_column(
    ctx: &Arc<HiveContext>,
    (schema, table): (&str, &str),
    metadata: &crate::metastore::TableMetadata,
) -> Result<Option<String>> {
    let info = TableInfo::from_metadata(
        format!("{}.{schema}.{table}", ctx.catalog()),
        metadata,
        ctx.table_dir(schema, table),
    )?;
    let Some(column) = info.inferable_date_column().map(str::to_owned) else {
        return Ok(None);
    };
    let hive = HiveTable::new(Arc::clone(ctx), schema, table, info.clone());
    let listing = hive.listing().await?;
    let spans: Vec<Option<crate::partitions::DayRange>> = listing
        .partitions
        .iter()
        .map(crate::partitions::partition_days)
        .collect();
    let dated: Vec<crate::partitions::DataFile> = listing
        .files
        .iter()
        .filter(|f| spans[f.partition].is_some())
        .cloned()
        .collect();
    if dated.is_empty() {
        return Ok(None);
    }
    let store = ctx.stores.get(&info.location)?;
    let bounds = ctx
        .footers
        .day_bounds(&store, &info, &dated, &column)
        .await?;
    let inside =
        dated
            .iter()
            .zip(&bounds)
            .all(|(file, bounds)| match (bounds, spans[file.partition]) {
                (Some((lo, hi)), Some(span)) => {
                    span.lo.is_some_and(|s| s <= *lo) && span.hi.is_some_and(|e| *hi <= e)
                }
                _ => false,
            });
    Ok(inside.then_some(column))
}

impl CatalogProvider for HiveCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.schemas().unwrap_or_else(|e| {
            tracing::warn!("cannot list schemas: {e}");
            vec![]
        })
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let ctx = Arc::clone(&self.ctx);
        let schema = name.to_owned();
        let exists = self
            .ctx
            .block_on(async move { ctx.metastore.schema(&schema).await.map(|s| s.is_some()) });
        match exists {
            Ok(false) => None,
            Ok(true) => Some(Arc::new(HiveSchema {
                ctx: Arc::clone(&self.ctx),
                name: name.to_owned(),
            })),
            // Storage cannot be asked: let reading the table report why.
            Err(e) => {
                tracing::warn!("cannot look up schema '{name}': {e}");
                Some(Arc::new(HiveSchema {
                    ctx: Arc::clone(&self.ctx),
                    name: name.to_owned(),
                }))
            }
        }
    }

    fn register_schema(
        &self,
        name: &str,
        _schema: Arc<dyn SchemaProvider>,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        self.create_schema(name, &TableProperties::default())
            .map_err(df)?;
        Ok(None)
    }

    fn deregister_schema(
        &self,
        name: &str,
        cascade: bool,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        if cascade {
            return Err(DataFusionError::NotImplemented(
                "DROP SCHEMA … CASCADE is not supported for Hive catalogs".into(),
            ));
        }
        let Some(schema) = self.schema(name) else {
            return Ok(None);
        };
        let ctx = Arc::clone(&self.ctx);
        let name = name.to_owned();
        self.ctx
            .block_on(async move { ctx.metastore.drop_schema(&name).await })
            .map_err(df)?;
        Ok(Some(schema))
    }
}

/// One schema of a Hive catalog.
#[derive(Debug)]
pub struct HiveSchema {
    ctx: Arc<HiveContext>,
    name: String,
}

impl HiveSchema {
    async fn metadata(&self, table: &str) -> Result<Option<crate::metastore::TableMetadata>> {
        let ctx = Arc::clone(&self.ctx);
        let (schema, name) = (self.name.clone(), table.to_owned());
        let found = self
            .ctx
            .runtime
            .run(async move { ctx.metastore.table(&schema, &name).await })
            .await
            .map_err(|e| HiveError::Metadata(e.to_string()))??;
        Ok(found.map(|(metadata, _)| metadata))
    }

    fn qualified(&self, table: &str) -> String {
        format!("{}.{}.{table}", self.ctx.catalog(), self.name)
    }

    fn hive_table(
        &self,
        table: &str,
        metadata: &crate::metastore::TableMetadata,
    ) -> Result<HiveTable> {
        let info = TableInfo::from_metadata(
            self.qualified(table),
            metadata,
            self.ctx.table_dir(&self.name, table),
        )?;
        Ok(HiveTable::new(
            Arc::clone(&self.ctx),
            &self.name,
            table,
            info,
        ))
    }

    /// A Hive or Delta table, or a view.
    async fn load(&self, table: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(metadata) = self.metadata(table).await? else {
            return Ok(None);
        };
        if let Some(stored) = crate::views::stored_view(&self.qualified(table), &metadata)? {
            let (ctx, schema, name) = (Arc::clone(&self.ctx), self.name.clone(), table.to_owned());
            let loaded = self
                .ctx
                .runtime
                .run(async move { crate::views::load(ctx, (&schema, &name), stored).await })
                .await
                .map_err(|e| HiveError::Metadata(e.to_string()))??;
            return Ok(Some(loaded));
        }
        if !crate::delta::is_delta(&metadata) {
            return Ok(Some(Arc::new(self.hive_table(table, &metadata)?)));
        }
        let location = crate::views::delta_location(&self.ctx, &self.name, table, &metadata)?;
        let (ctx, qualified) = (Arc::clone(&self.ctx), self.qualified(table));
        let delta = self
            .ctx
            .runtime
            .run(async move { crate::delta::DeltaLakeTable::load(ctx, qualified, location).await })
            .await
            .map_err(|e| HiveError::Metadata(e.to_string()))??;
        Ok(Some(Arc::new(delta)))
    }

    /// A Hive table (for `$partitions`); Delta tables have none.
    async fn load_hive(&self, table: &str) -> Result<Option<HiveTable>> {
        match self.metadata(table).await? {
            Some(metadata)
                if !crate::delta::is_delta(&metadata)
                    && metadata.table_type != crate::metastore::VIRTUAL_VIEW =>
            {
                self.hive_table(table, &metadata).map(Some)
            }
            _ => Ok(None),
        }
    }
}

#[async_trait]
impl SchemaProvider for HiveSchema {
    fn table_names(&self) -> Vec<String> {
        let ctx = Arc::clone(&self.ctx);
        let schema = self.name.clone();
        self.ctx
            .block_on(async move { ctx.metastore.tables(&schema).await })
            .unwrap_or_else(|e| {
                tracing::warn!("cannot list tables of '{}': {e}", self.name);
                vec![]
            })
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if let Some(base) = name.strip_suffix(PARTITIONS_SUFFIX) {
            let Some(table) = self.load_hive(base).await.map_err(df)? else {
                return Ok(None);
            };
            return partitions_table(&table).await.map(Some);
        }
        self.load(name).await.map_err(df)
    }

    fn table_exist(&self, name: &str) -> bool {
        let ctx = Arc::clone(&self.ctx);
        let (schema, name) = (self.name.clone(), name.to_owned());
        matches!(
            self.ctx.block_on(async move {
                ctx.metastore
                    .table(&schema, &name)
                    .await
                    .map(|t| t.is_some())
            }),
            Ok(true)
        )
    }

    /// `CREATE TABLE` without properties: a managed table in the catalog's default format.
    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> DfResult<Option<Arc<dyn TableProvider>>> {
        HiveCatalog::new(Arc::clone(&self.ctx))
            .create_table(
                &self.name,
                &name,
                &table.schema(),
                &TableProperties::default(),
            )
            .map_err(df)?;
        Ok(None)
    }

    /// `DROP TABLE`: forgets the table; a managed table's files are deleted too.
    fn deregister_table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let ctx = Arc::clone(&self.ctx);
        let (schema, table) = (self.name.clone(), name.to_owned());
        let dropped = self.ctx.block_on(async move {
            let Some((metadata, _)) = ctx.metastore.table(&schema, &table).await? else {
                return Ok(false);
            };
            ctx.metastore.drop_table(&schema, &table).await?;
            if metadata.table_type == crate::metastore::MANAGED_TABLE {
                let info = TableInfo::from_metadata(
                    format!("{}.{schema}.{table}", ctx.catalog()),
                    &metadata,
                    ctx.table_dir(&schema, &table),
                )?;
                let store = ctx.stores.get(&info.location)?;
                delete_dir(&store, &info.location).await?;
                ctx.delta_logs.forget(&info.location);
            }
            Ok(true)
        });
        dropped.map_err(df)?;
        Ok(None)
    }
}

/// `"<table>$partitions"`: one row per partition, with the declared partition columns
/// (or, for a table without any, its `key=value` directory keys as varchar).
async fn partitions_table(table: &HiveTable) -> DfResult<Arc<dyn TableProvider>> {
    let listing = table.listing().await.map_err(df)?;
    let info = table.info();
    let (schema, columns): (SchemaRef, Vec<ArrayRef>) = if info.partition_fields.is_empty() {
        let mut keys: Vec<String> = Vec::new();
        for p in &listing.partitions {
            for (k, _) in &p.keys {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        let schema = Arc::new(Schema::new(
            keys.iter()
                .map(|k| Field::new(k, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
        let columns = keys
            .iter()
            .map(|k| {
                Arc::new(StringArray::from(
                    listing
                        .partitions
                        .iter()
                        .map(|p| {
                            p.keys
                                .iter()
                                .find(|(key, _)| key == k)
                                .and_then(|(_, v)| v.clone())
                        })
                        .collect::<Vec<_>>(),
                )) as ArrayRef
            })
            .collect();
        (schema, columns)
    } else {
        let schema = Arc::new(Schema::new(info.partition_fields.clone()));
        let columns = (0..info.partition_fields.len())
            .map(|i| {
                ScalarValue::iter_to_array(listing.partitions.iter().map(|p| p.values[i].clone()))
            })
            .collect::<DfResult<Vec<_>>>()?;
        (schema, columns)
    };
    let batch = if schema.fields().is_empty() {
        vec![]
    } else {
        vec![RecordBatch::try_new(Arc::clone(&schema), columns)?]
    };
    Ok(Arc::new(MemTable::try_new(schema, vec![batch])?))
}
