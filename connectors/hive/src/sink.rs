//! Writing a statement's rows (INSERT, CTAS) as Parquet files, one directory per partition,
//! made visible all at once; the files are written by the executors' tasks, each its own
//! (a [`tributary_connector::DistributedWrite`]), and committed once by the scheduler.
//!
//! Commit protocol: the write gets an id (`20261125_093012_<random>`); the id is first added
//! to the table's `tributary.pending-writes` parameter (a conditional update of the table's
//! metastore file), then each task writes its files as `<id>_<task>-<attempt>_<n>.parquet`
//! in the table's directories. Readers skip files of pending writes. The commit removes the
//! files no finished task reported (those of a failed, retried attempt), then updates the
//! metastore once more, removing the id. If the write fails, its files are deleted and the id
//! stays pending: a cancelled task may still be finishing a file on an executor, which must
//! never become visible. A scheduler killed mid-write leaves the id pending too.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, RecordBatch, StringArray, UInt32Array};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use datafusion_datasource::sink::DataSink;
use futures::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use tributary_connector::{ConnectorError, DistributedWrite, WrittenPart};

use crate::config::Format;
use crate::context::HiveContext;
use crate::error::HiveError;
use crate::partitions::{NULL_PARTITION, escape};
use crate::table_info::{PENDING_WRITES, TableInfo};
use crate::table_spec::{TableShape, TableSpec};

/// Most partitions one task may write (Trino's `hive.max-partitions-per-writers`).
const MAX_OPEN_PARTITIONS: usize = 1000;

/// First byte of an encoded [`HiveWrite`] (a catalog may hold Delta tables too).
pub(crate) const HIVE_WRITE: u8 = b'h';

/// A write as executors get it: its kind's tag (`HIVE_WRITE`, `DELTA_WRITE`), then its JSON.
pub(crate) fn encode_write<T: Serialize>(
    tag: u8,
    what: &'static str,
    spec: &T,
) -> tributary_connector::Result<Vec<u8>> {
    let mut bytes = vec![tag];
    bytes.extend(tributary_connector::encode_json(what, spec)?);
    Ok(bytes)
}

/// The description [`encode_write`] wrote with `tag`; `kind` names the write expected.
pub(crate) fn decode_write<T: serde::de::DeserializeOwned>(
    tag: u8,
    what: &'static str,
    kind: &str,
    bytes: &[u8],
) -> tributary_connector::Result<T> {
    let json = bytes
        .strip_prefix(&[tag])
        .ok_or_else(|| ConnectorError::Decode {
            what,
            reason: format!("not a {kind}"),
        })?;
    tributary_connector::decode_json(what, json)
}

/// A write as an executor receives it.
#[derive(Debug, Serialize, Deserialize)]
struct WriteSpec {
    schema_name: String,
    table_name: String,
    table: TableSpec,
    id: String,
}

/// Whether `info`'s table may be written by a statement (appending, or `overwrite`).
pub(crate) fn check_writable(ctx: &HiveContext, info: &TableInfo, overwrite: bool) -> DfResult<()> {
    let table = &info.qualified;
    if overwrite {
        return Err(DataFusionError::NotImplemented(format!(
            "table {table}: INSERT OVERWRITE is not supported yet"
        )));
    }
    if info.external && !ctx.config.non_managed_table_writes {
        return Err(DataFusionError::Plan(format!(
            "table {table}: cannot write to an external table (set hive.non-managed-table-writes-enabled=true in the catalog to allow it)"
        )));
    }
    if info.format != Format::Parquet {
        return Err(DataFusionError::NotImplemented(format!(
            "table {table}: writing {} tables is not supported yet (Tributary writes PARQUET)",
            info.format.name()
        )));
    }
    Ok(())
}

/// One statement's write into a Hive table (see the module's commit protocol).
#[derive(Debug, Clone)]
pub struct HiveWrite {
    ctx: Arc<HiveContext>,
    schema_name: String,
    table_name: String,
    target: TableShape,
    id: String,
}

impl HiveWrite {
    /// Begins a write into `info`'s table: checks that it may be written, gives the write
    /// an id and marks it pending (its files stay invisible until the commit).
    pub async fn begin(
        ctx: Arc<HiveContext>,
        schema_name: &str,
        table_name: &str,
        info: &TableInfo,
        overwrite: bool,
    ) -> tributary_connector::Result<Self> {
        check_writable(&ctx, info, overwrite)?;
        let write = Self {
            ctx,
            schema_name: schema_name.to_owned(),
            table_name: table_name.to_owned(),
            target: TableShape::from(info),
            id: write_id(),
        };
        let marked = write.clone();
        write
            .ctx
            .run_gated(async move { marked.set_pending(true).await })
            .await?;
        Ok(write)
    }

    /// Rebuilds a write on an executor from [`DistributedWrite::encode`]'s bytes.
    pub fn decode(ctx: Arc<HiveContext>, bytes: &[u8]) -> tributary_connector::Result<Self> {
        let spec: WriteSpec = decode_write(HIVE_WRITE, "hive write", "Hive write", bytes)?;
        Ok(Self {
            ctx,
            schema_name: spec.schema_name,
            table_name: spec.table_name,
            target: TableShape::from_spec(&spec.table)?,
            id: spec.id,
        })
    }

    async fn set_pending(&self, pending: bool) -> crate::error::Result<()> {
        let id = self.id.clone();
        self.ctx
            .metastore
            .update_table(&self.schema_name, &self.table_name, move |m| {
                let mut ids: Vec<String> = m
                    .parameters
                    .get(PENDING_WRITES)
                    .map(|p| {
                        p.split(',')
                            .filter(|s| !s.is_empty() && *s != id)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                if pending {
                    ids.push(id.clone());
                }
                if ids.is_empty() {
                    m.parameters.remove(PENDING_WRITES);
                } else {
                    m.parameters
                        .insert(PENDING_WRITES.to_owned(), ids.join(","));
                }
            })
            .await
    }

    /// Deletes the files of this write that `keep` does not hold (all of them without it).
    async fn remove_files(
        &self,
        store: &Arc<dyn ObjectStore>,
        keep: Option<&HashSet<String>>,
    ) -> crate::error::Result<()> {
        let prefix = format!("{}_", self.id);
        let what = || format!("table {}: write {}", self.target.qualified, self.id);
        let found: Vec<Path> = store
            .list(Some(&self.target.location.path))
            .try_filter(|m| {
                futures::future::ready(
                    m.location
                        .filename()
                        .is_some_and(|f| f.starts_with(&prefix))
                        && keep.is_none_or(|keep| !keep.contains(m.location.as_ref())),
                )
            })
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| HiveError::storage(what(), &e))?;
        for path in found {
            store
                .delete(&path)
                .await
                .map_err(|e| HiveError::storage(format!("{}: cannot delete {path}", what()), &e))?;
        }
        Ok(())
    }
}

#[async_trait]
impl DistributedWrite for HiveWrite {
    fn describe(&self) -> String {
        format!(
            "table={} location={} write={}",
            self.target.qualified, self.target.location, self.id
        )
    }

    fn encode(&self) -> tributary_connector::Result<Vec<u8>> {
        let spec = WriteSpec {
            schema_name: self.schema_name.clone(),
            table_name: self.table_name.clone(),
            table: self.target.to_spec()?,
            id: self.id.clone(),
        };
        encode_write(HIVE_WRITE, "hive write", &spec)
    }

    async fn write(
        &self,
        partition: usize,
        data: SendableRecordBatchStream,
    ) -> DfResult<WrittenPart> {
        let store = self.ctx.stores.get(&self.target.location)?;
        // Unique per attempt: a retried task never writes over a file another attempt of it
        // may still be writing.
        let attempt = uuid::Uuid::new_v4().simple().to_string();
        let prefix = format!("{}_{partition}-{}", self.id, &attempt[..8]);
        let mut writers = Writers::new(
            store,
            &self.target,
            &prefix,
            self.ctx.config.target_max_file_size,
        );
        let written = match writers.write_stream(data).await {
            Ok(rows) => writers.finish().await.map(|()| rows),
            Err(e) => Err(e),
        };
        match written {
            Ok(rows) => Ok(WrittenPart {
                rows,
                data: serde_json::to_vec(&writers.files)
                    .map_err(|e| DataFusionError::Internal(e.to_string()))?,
            }),
            Err(e) => {
                // Not needed for correctness (the commit and the abort remove them too).
                writers.discard().await;
                Err(e)
            }
        }
    }

    async fn commit(&self, parts: Vec<WrittenPart>) -> tributary_connector::Result<u64> {
        let mut keep = HashSet::new();
        let mut rows = 0;
        for part in parts {
            let files: Vec<String> =
                tributary_connector::decode_json("hive write part", &part.data)?;
            keep.extend(files);
            rows += part.rows;
        }
        let this = self.clone();
        self.ctx
            .run_gated(async move {
                let store = this.ctx.stores.get(&this.target.location)?;
                // A failed attempt of a retried task leaves files no part reports: they go
                // before the write becomes visible.
                this.remove_files(&store, Some(&keep)).await?;
                // The commit is the point of no return: a statement killed before it is
                // undone.
                tributary_connector::point_of_no_return().map_err(|why| HiveError::Stopped {
                    table: this.target.qualified.clone(),
                    message: why,
                })?;
                this.set_pending(false).await
            })
            .await?;
        Ok(rows)
    }

    /// Deletes the write's files; its id stays pending, so a file a cancelled task finishes
    /// afterwards stays invisible.
    async fn abort(&self) {
        let this = self.clone();
        let removed = self
            .ctx
            .run_gated(async move {
                let store = this.ctx.stores.get(&this.target.location)?;
                this.remove_files(&store, None).await
            })
            .await;
        if let Err(e) = removed {
            tracing::warn!("{e}; its files stay invisible");
        }
    }
}

/// Writes a statement's rows into a Hive table from one stream (`TableProvider::insert_into`,
/// for callers that do not run the write as a job): the same write, done as one part.
#[derive(Debug)]
pub struct HiveSink {
    ctx: Arc<HiveContext>,
    schema_name: String,
    table_name: String,
    info: TableInfo,
}

impl HiveSink {
    /// A sink for one statement.
    pub fn new(
        ctx: Arc<HiveContext>,
        schema_name: &str,
        table_name: &str,
        info: TableInfo,
    ) -> Self {
        Self {
            ctx,
            schema_name: schema_name.to_owned(),
            table_name: table_name.to_owned(),
            info,
        }
    }
}

impl DisplayAs for HiveSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HiveSink: table={} location={}",
            self.info.qualified, self.info.location
        )
    }
}

#[async_trait]
impl DataSink for HiveSink {
    fn schema(&self) -> &SchemaRef {
        &self.info.schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> DfResult<u64> {
        let write = HiveWrite::begin(
            Arc::clone(&self.ctx),
            &self.schema_name,
            &self.table_name,
            &self.info,
            false,
        )
        .await?;
        let written = match write.write(0, data).await {
            Ok(part) => write
                .commit(vec![part])
                .await
                .map_err(DataFusionError::from),
            Err(e) => Err(e),
        };
        if written.is_err() {
            write.abort().await;
        }
        written
    }
}

/// `20261125_093012_<12 random hex digits>`: sortable by time, unique.
fn write_id() -> String {
    let now = chrono::Utc::now().format("%Y%m%d_%H%M%S");
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{now}_{}", &random[..12])
}

struct OpenFile {
    writer: AsyncArrowWriter<BufWriter>,
}

/// The open files of one task's write, one per partition directory.
struct Writers {
    store: Arc<dyn ObjectStore>,
    info: TableShape,
    /// Start of every file name.
    prefix: String,
    target_size: u64,
    sequence: usize,
    open: HashMap<String, OpenFile>,
    data_columns: usize,
    /// Every file created (store paths).
    files: Vec<String>,
}

impl Writers {
    fn new(
        store: Arc<dyn ObjectStore>,
        target: &TableShape,
        prefix: &str,
        target_size: u64,
    ) -> Self {
        Self {
            store,
            info: target.clone(),
            prefix: prefix.to_owned(),
            target_size,
            sequence: 0,
            open: HashMap::new(),
            data_columns: target.data_schema.fields().len(),
            files: Vec::new(),
        }
    }

    async fn write_stream(&mut self, mut data: SendableRecordBatchStream) -> DfResult<u64> {
        let mut rows = 0u64;
        while let Some(batch) = data.next().await {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            for (dir, part) in self.split(&batch)? {
                self.write(dir, &part).await?;
            }
        }
        Ok(rows)
    }

    /// Splits a batch by partition directory (data columns only).
    fn split(&self, batch: &RecordBatch) -> DfResult<Vec<(String, RecordBatch)>> {
        let data = batch.project(&(0..self.data_columns).collect::<Vec<_>>())?;
        let data = tributary_connector::conform_batch(&data, &self.info.data_schema)?;
        if self.info.partition_fields.is_empty() {
            return Ok(vec![(String::new(), data)]);
        }
        let keys: Vec<StringArray> = (self.data_columns..batch.num_columns())
            .map(|i| {
                let text = cast(batch.column(i), &DataType::Utf8)?;
                Ok(text
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .cloned()
                    .unwrap_or_else(|| StringArray::from(vec![None::<&str>; batch.num_rows()])))
            })
            .collect::<DfResult<_>>()?;
        let mut order: Vec<String> = Vec::new();
        let mut rows: HashMap<String, Vec<u32>> = HashMap::new();
        for row in 0..batch.num_rows() {
            let dir = self
                .info
                .partition_fields
                .iter()
                .zip(&keys)
                .map(|(f, k)| {
                    let value = if k.is_null(row) {
                        NULL_PARTITION.to_owned()
                    } else {
                        escape(k.value(row))
                    };
                    format!("{}={value}", f.name())
                })
                .collect::<Vec<_>>()
                .join("/");
            let entry = rows.entry(dir.clone()).or_insert_with(|| {
                order.push(dir);
                Vec::new()
            });
            entry.push(u32::try_from(row).unwrap_or(u32::MAX));
        }
        order
            .into_iter()
            .map(|dir| {
                let indices = UInt32Array::from(rows.remove(&dir).unwrap_or_default());
                Ok((dir, take_record_batch(&data, &indices)?))
            })
            .collect()
    }

    async fn write(&mut self, dir: String, batch: &RecordBatch) -> DfResult<()> {
        if !self.open.contains_key(&dir) {
            if self.open.len() >= MAX_OPEN_PARTITIONS {
                return Err(DataFusionError::Execution(format!(
                    "table {}: one statement may write at most {MAX_OPEN_PARTITIONS} partitions",
                    self.info.qualified
                )));
            }
            let file = self.create(&dir)?;
            self.open.insert(dir.clone(), file);
        }
        let full = match self.open.get_mut(&dir) {
            Some(file) => {
                file.writer.write(batch).await?;
                (file.writer.bytes_written() + file.writer.in_progress_size()) as u64
                    >= self.target_size
            }
            None => false,
        };
        if full && let Some(file) = self.open.remove(&dir) {
            file.writer.close().await?;
        }
        Ok(())
    }

    fn create(&mut self, dir: &str) -> DfResult<OpenFile> {
        let name = format!("{}_{}.parquet", self.prefix, self.sequence);
        self.sequence += 1;
        let path = if dir.is_empty() {
            self.info.location.file(&name)
        } else {
            Path::from(format!("{}/{dir}/{name}", self.info.location.path))
        };
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        self.files.push(path.to_string());
        let writer = AsyncArrowWriter::try_new(
            BufWriter::new(Arc::clone(&self.store), path),
            Arc::clone(&self.info.data_schema),
            Some(properties),
        )?;
        Ok(OpenFile { writer })
    }

    async fn finish(&mut self) -> DfResult<()> {
        for (_, file) in self.open.drain() {
            file.writer.close().await?;
        }
        Ok(())
    }

    /// Drops the open files and deletes every file created (after a failure).
    async fn discard(&mut self) {
        self.open.clear();
        for file in &self.files {
            let Ok(path) = Path::parse(file) else {
                continue;
            };
            if let Err(e) = self.store.delete(&path).await
                && !matches!(e, object_store::Error::NotFound { .. })
            {
                tracing::debug!("cannot delete {file} of a failed write: {e}");
            }
        }
    }
}
