//! Writing a statement's rows (INSERT, CTAS) as Parquet files, one directory per partition,
//! made visible all at once.
//!
//! Commit protocol: the write gets an id (`20261125_093012_<random>`); the id is first added
//! to the table's `tributary.pending-writes` parameter (a conditional update of the table's
//! metastore file), then the files are written as `<id>_<n>.parquet` in the table's
//! directories. Readers skip files of pending writes. The commit is one more metastore
//! update removing the id; if the write fails, its files are deleted and the id removed. A
//! scheduler killed mid-write leaves the id pending, so its files stay invisible.

use std::collections::HashMap;
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

use crate::context::HiveContext;
use crate::partitions::{NULL_PARTITION, escape};
use crate::table_info::{PENDING_WRITES, TableInfo};

/// Most partitions one statement may write (Trino's `hive.max-partitions-per-writers`).
const MAX_OPEN_PARTITIONS: usize = 1000;

/// Writes a statement's rows into a Hive table.
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

    async fn set_pending(&self, id: &str, pending: bool) -> crate::error::Result<()> {
        let id = id.to_owned();
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

    /// Deletes every file of a failed write (also any it left half-written).
    async fn remove_files(&self, store: &Arc<dyn ObjectStore>, id: &str) {
        let prefix = format!("{id}_");
        let found: Vec<Path> = match store
            .list(Some(&self.info.location.path))
            .try_filter(|m| {
                futures::future::ready(
                    m.location
                        .filename()
                        .is_some_and(|f| f.starts_with(&prefix)),
                )
            })
            .map_ok(|m| m.location)
            .try_collect()
            .await
        {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(
                    "table {}: cannot list the files of failed write {id}: {e}",
                    self.info.qualified
                );
                return;
            }
        };
        for path in found {
            if let Err(e) = store.delete(&path).await {
                tracing::warn!(
                    "table {}: cannot delete {path} of failed write {id}: {e}",
                    self.info.qualified
                );
            }
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
        let store = self.ctx.stores.get(&self.info.location)?;
        let id = write_id();
        self.set_pending(&id, true).await?;
        let mut writers = Writers::new(
            Arc::clone(&store),
            &self.info,
            &id,
            self.ctx.config.target_max_file_size,
        );
        let written = writers.write_stream(data).await;
        let written = match written {
            Ok(rows) => writers.finish().await.map(|()| rows),
            Err(e) => Err(e),
        };
        // The commit is the point of no return: a statement killed before it is undone.
        let written = written.and_then(|rows| {
            tributary_connector::point_of_no_return()
                .map(|()| rows)
                .map_err(|why| {
                    crate::error::HiveError::Stopped {
                        table: self.info.qualified.clone(),
                        message: why,
                    }
                    .into()
                })
        });
        match written {
            Ok(rows) => {
                if let Err(e) = self.set_pending(&id, false).await {
                    self.remove_files(&store, &id).await;
                    return Err(e.into());
                }
                Ok(rows)
            }
            Err(e) => {
                drop(writers);
                self.remove_files(&store, &id).await;
                if let Err(undo) = self.set_pending(&id, false).await {
                    tracing::warn!(
                        "table {}: write {id} failed and stays pending: {undo}",
                        self.info.qualified
                    );
                }
                Err(e)
            }
        }
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

/// The open files of one write, one per partition directory.
struct Writers {
    store: Arc<dyn ObjectStore>,
    info: TableInfo,
    id: String,
    target_size: u64,
    sequence: usize,
    open: HashMap<String, OpenFile>,
    data_columns: usize,
}

impl Writers {
    fn new(store: Arc<dyn ObjectStore>, info: &TableInfo, id: &str, target_size: u64) -> Self {
        Self {
            store,
            info: info.clone(),
            id: id.to_owned(),
            target_size,
            sequence: 0,
            open: HashMap::new(),
            data_columns: info.data_schema.fields().len(),
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
        let name = format!("{}_{}.parquet", self.id, self.sequence);
        self.sequence += 1;
        let path = if dir.is_empty() {
            self.info.location.file(&name)
        } else {
            Path::from(format!("{}/{dir}/{name}", self.info.location.path))
        };
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
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
}
