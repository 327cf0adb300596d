//! ORC tables (`format = 'ORC'`), read with `orc-rust` (the datafusion-contrib ORC reader,
//! on arrow 59) through the connector contract's split reader: DataFusion 55 has no ORC file
//! source, and `datafusion-orc` still targets DataFusion 51.
//!
//! A scan's reader carries the table's files (path, size, raw partition values); a split
//! is `f<file>/<start>-<end>`, a byte range of one file. orc-rust reads the stripes that
//! start inside the range, so every stripe is read by exactly one split. Columns are
//! matched to the table's by position, as Trino does by default, or by name with
//! `hive.orc.use-column-names=true`; file columns are cast to the table's types (integers
//! widen, …), and a file whose column cannot be read as the declared type fails naming the
//! file and the column. Partition columns are constants of each file. `count(*)` reads no
//! column: the rows of the split's stripes come from the file's footer.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, new_null_array};
use arrow::compute::cast;
use arrow::datatypes::{FieldRef, Schema, SchemaRef};
use bytes::Bytes;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use orc_rust::ArrowReaderBuilder;
use orc_rust::TimestampPrecision;
use orc_rust::projection::ProjectionMask;
use orc_rust::reader::AsyncChunkReader;
use serde::{Deserialize, Serialize};
use tributary_connector::{ConnectorError, SplitInfo, SplitReader, SplitStream};

use crate::context::HiveContext;
use crate::error::{HiveError, storage_message};
use crate::footers::compatible;
use crate::partitions::{Listing, NULL_PARTITION};
use crate::scan::byte_ranges;
use crate::table_spec::{TableShape, TableSpec};
use crate::types::hive_type;

/// One file of an ORC scan.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrcFile {
    /// Path in the table's store.
    path: String,
    /// Size in bytes.
    size: u64,
    /// Raw values of the declared partition columns (`None`: NULL).
    partition_values: Vec<Option<String>>,
}

/// What an executor needs to read a scan's splits.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrcTableSpec {
    /// The table.
    table: TableSpec,
    /// Match file columns by name instead of position.
    by_name: bool,
    /// The files the scan reads.
    files: Vec<OrcFile>,
}

/// Reads splits of an ORC table.
#[derive(Debug)]
pub struct OrcReader {
    ctx: Arc<HiveContext>,
    spec: Arc<OrcTableSpec>,
    table: TableShape,
    /// Typed partition values per file.
    partition_values: Arc<Vec<Vec<ScalarValue>>>,
}

impl OrcReader {
    /// A reader of `files` (indices into `listing.files`) of a table.
    pub fn new(
        ctx: Arc<HiveContext>,
        info: &crate::table_info::TableInfo,
        listing: &Listing,
        files: &[crate::partitions::DataFile],
    ) -> tributary_connector::Result<Self> {
        let names: Vec<&str> = info
            .partition_fields
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        let files = files
            .iter()
            .map(|f| OrcFile {
                path: f.meta.location.to_string(),
                size: f.meta.size,
                partition_values: names
                    .iter()
                    .map(|name| {
                        listing.partitions[f.partition]
                            .keys
                            .iter()
                            .find(|(k, _)| k == name)
                            .and_then(|(_, v)| v.clone())
                    })
                    .collect(),
            })
            .collect();
        let spec = OrcTableSpec {
            table: TableShape::from(info).to_spec()?,
            by_name: ctx.config.orc_use_column_names,
            files,
        };
        Self::from_spec(ctx, spec)
    }

    /// Rebuilds a reader from [`SplitReader::encode_table`]'s bytes (on an executor).
    pub fn decode(ctx: Arc<HiveContext>, bytes: &[u8]) -> tributary_connector::Result<Self> {
        let spec: OrcTableSpec = tributary_connector::decode_json("orc table", bytes)?;
        Self::from_spec(ctx, spec)
    }

    fn from_spec(ctx: Arc<HiveContext>, spec: OrcTableSpec) -> tributary_connector::Result<Self> {
        let table = TableShape::from_spec(&spec.table)?;
        let bad = |message: String| HiveError::BadData {
            table: table.qualified.clone(),
            message,
        };
        let mut partition_values = Vec::with_capacity(spec.files.len());
        for file in &spec.files {
            let mut values = Vec::with_capacity(table.partition_fields.len());
            for (field, raw) in table.partition_fields.iter().zip(&file.partition_values) {
                values.push(
                    partition_value(field, raw.as_deref())
                        .map_err(|e| bad(format!("partition value of {}: {e}", field.name())))?,
                );
            }
            partition_values.push(values);
        }
        Ok(Self {
            ctx,
            spec: Arc::new(spec),
            table,
            partition_values: Arc::new(partition_values),
        })
    }

    /// The splits: each file cut into byte ranges of at most `max_split_size`.
    pub fn splits(&self, max_split_size: u64) -> Vec<SplitInfo> {
        let sizes: Vec<u64> = self.spec.files.iter().map(|f| f.size).collect();
        byte_ranges(&sizes, max_split_size, true)
            .into_iter()
            .map(|(file, range)| {
                SplitInfo::new(
                    format!("f{file}/{}-{}", range.start, range.end),
                    range.end - range.start,
                )
            })
            .collect()
    }
}

fn partition_value(field: &FieldRef, raw: Option<&str>) -> DfResult<ScalarValue> {
    match raw {
        None | Some(NULL_PARTITION) => ScalarValue::try_from(field.data_type()),
        Some(text) => ScalarValue::try_from_string(text.trim().to_owned(), field.data_type()),
    }
}

/// `f<file>/<start>-<end>`.
fn parse_split(split: &str) -> Option<(usize, Range<u64>)> {
    let (file, range) = split.strip_prefix('f')?.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    Some((file.parse().ok()?, start.parse().ok()?..end.parse().ok()?))
}

impl SplitReader for OrcReader {
    fn kind(&self) -> &'static str {
        "orc"
    }

    fn table_schema(&self) -> SchemaRef {
        Arc::clone(&self.table.schema)
    }

    fn describe(&self, _projection: &[usize]) -> Option<String> {
        Some(format!(
            "table={}, files={}",
            self.table.qualified,
            self.spec.files.len()
        ))
    }

    fn encode_table(&self) -> tributary_connector::Result<Vec<u8>> {
        tributary_connector::encode_json("orc table", self.spec.as_ref())
    }

    fn read(
        &self,
        split: &str,
        projection: &[usize],
        batch_size: usize,
        limit: Option<usize>,
    ) -> tributary_connector::Result<SplitStream> {
        let invalid = |reason: &str| ConnectorError::InvalidSplit {
            connector: "hive (orc)".into(),
            split: split.to_owned(),
            reason: reason.to_owned(),
        };
        let (index, range) =
            parse_split(split).ok_or_else(|| invalid("expected f<file>/<start>-<end>"))?;
        let file = self
            .spec
            .files
            .get(index)
            .ok_or_else(|| invalid("no such file in the scan"))?
            .clone();
        let store = self.ctx.stores.get(&self.table.location)?;
        let task = SplitTask {
            table: self.table.qualified.clone(),
            display: self
                .table
                .location
                .display_path(&Path::from(file.path.as_str())),
            path: Path::from(file.path.as_str()),
            size: file.size,
            range,
            store,
            schema: Arc::clone(&self.table.schema),
            data_columns: self.table.data_schema.fields().len(),
            partition_values: self.partition_values[index].clone(),
            by_name: self.spec.by_name,
            projection: projection.to_vec(),
            batch_size: batch_size.max(1),
            limit: limit.unwrap_or(usize::MAX),
        };
        Ok(futures::stream::once(task.open()).try_flatten().boxed())
    }
}

/// Reads one split.
struct SplitTask {
    table: String,
    /// The file as users write it (`s3a://bucket/…`), for messages.
    display: String,
    path: Path,
    size: u64,
    range: Range<u64>,
    store: Arc<dyn ObjectStore>,
    schema: SchemaRef,
    data_columns: usize,
    partition_values: Vec<ScalarValue>,
    by_name: bool,
    projection: Vec<usize>,
    batch_size: usize,
    limit: usize,
}

/// Where an output column comes from.
enum Source {
    /// A column of the ORC batch (index in the projected batch).
    File(usize),
    /// Not in the file (a table with more columns than an older file): NULL.
    Missing,
    /// A partition column's value.
    Partition(usize),
}

impl SplitTask {
    fn bad(&self, message: String) -> DataFusionError {
        HiveError::BadData {
            table: self.table.clone(),
            message,
        }
        .into()
    }

    async fn open(self) -> DfResult<SplitStream> {
        let reader = StoreChunks {
            store: Arc::clone(&self.store),
            path: self.path.clone(),
            size: self.size,
            display: self.display.clone(),
        };
        let builder = ArrowReaderBuilder::try_new_async(reader)
            .await
            .map_err(|e| self.bad(format!("cannot read ORC file {}: {e}", self.display)))?;
        let root = builder.file_metadata().root_data_type().clone();
        let children = root.children();
        // Which file column feeds each projected data column.
        let mut wanted: Vec<(usize, Option<usize>)> = Vec::new();
        for &column in &self.projection {
            if column >= self.data_columns {
                continue;
            }
            let field = self.schema.field(column);
            let found = if self.by_name {
                children
                    .iter()
                    .position(|c| c.name().eq_ignore_ascii_case(field.name()))
            } else {
                (column < children.len()).then_some(column)
            };
            wanted.push((column, found));
        }
        let mut file_columns: Vec<usize> = wanted.iter().filter_map(|(_, f)| *f).collect();
        file_columns.sort_unstable();
        file_columns.dedup();
        let sources: Vec<Source> = self
            .projection
            .iter()
            .map(|&column| {
                if column >= self.data_columns {
                    return Source::Partition(column - self.data_columns);
                }
                match wanted
                    .iter()
                    .find(|(c, _)| *c == column)
                    .and_then(|(_, f)| *f)
                {
                    Some(f) => Source::File(file_columns.binary_search(&f).unwrap_or(0)),
                    None => Source::Missing,
                }
            })
            .collect();
        let output = Arc::new(self.schema.project(&self.projection)?);
        let range = usize::try_from(self.range.start).unwrap_or(usize::MAX)
            ..usize::try_from(self.range.end).unwrap_or(usize::MAX);
        if file_columns.is_empty() {
            // No file column is read: the rows of the stripes starting in the range.
            let rows: u64 = builder
                .file_metadata()
                .stripe_metadatas()
                .iter()
                .filter(|s| self.range.contains(&s.offset()))
                .map(|s| s.number_of_rows())
                .sum();
            let rows = usize::try_from(rows).unwrap_or(usize::MAX).min(self.limit);
            let batch_size = self.batch_size;
            let batches = (0..rows)
                .step_by(batch_size)
                .map(|start| self.assemble(&output, &sources, None, (rows - start).min(batch_size)))
                .collect::<Vec<_>>();
            return Ok(futures::stream::iter(batches).boxed());
        }
        for (column, found) in &wanted {
            let Some(f) = found else { continue };
            let table_type = self.schema.field(*column).data_type();
            let file_type = children[*f].data_type().to_arrow_data_type_with_options(
                orc_rust::ArrowSchemaOptions::new()
                    .with_timestamp_precision(TimestampPrecision::Microsecond),
            );
            if !compatible(&file_type, table_type) {
                return Err(self.bad(format!(
                    "file {} has column '{}' of type {}, but the table declares '{}' as {}",
                    self.display,
                    children[*f].name(),
                    hive_type(&file_type).unwrap_or_else(|| file_type.to_string()),
                    self.schema.field(*column).name(),
                    hive_type(table_type).unwrap_or_else(|| table_type.to_string()),
                )));
            }
        }
        let indices: Vec<usize> = file_columns
            .iter()
            .map(|f| children[*f].data_type().column_index())
            .collect();
        let stream = builder
            .with_projection(ProjectionMask::roots(&root, indices))
            .with_file_byte_range(range)
            .with_batch_size(self.batch_size)
            .with_timestamp_precision(TimestampPrecision::Microsecond)
            .build_async();
        let display = self.display.clone();
        let table = self.table.clone();
        let mut remaining = self.limit;
        Ok(stream
            .map(move |batch| {
                let batch = batch.map_err(|e| {
                    DataFusionError::from(HiveError::BadData {
                        table: table.clone(),
                        message: format!("cannot read ORC file {display}: {e}"),
                    })
                })?;
                let rows = batch.num_rows().min(remaining);
                remaining -= rows;
                self.assemble(&output, &sources, Some(&batch.slice(0, rows)), rows)
            })
            .try_take_while(|b| futures::future::ready(Ok(b.num_rows() > 0)))
            .boxed())
    }

    /// The output batch of `rows` rows: file columns cast to the table's types, missing
    /// ones NULL, partition values repeated.
    fn assemble(
        &self,
        output: &Arc<Schema>,
        sources: &[Source],
        batch: Option<&RecordBatch>,
        rows: usize,
    ) -> DfResult<RecordBatch> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(sources.len());
        for (field, source) in output.fields().iter().zip(sources) {
            let column = match (source, batch) {
                (Source::File(i), Some(batch)) => {
                    let column = batch.column(*i);
                    if column.data_type() == field.data_type() {
                        Arc::clone(column)
                    } else {
                        cast(column, field.data_type()).map_err(|e| {
                            self.bad(format!(
                                "file {}: column '{}' cannot be read as {}: {e}",
                                self.display,
                                field.name(),
                                hive_type(field.data_type())
                                    .unwrap_or_else(|| field.data_type().to_string())
                            ))
                        })?
                    }
                }
                (Source::Partition(i), _) => self.partition_values[*i].to_array_of_size(rows)?,
                _ => new_null_array(field.data_type(), rows),
            };
            columns.push(column);
        }
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(output),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?)
    }
}

/// An ORC file in an object store, read by ranges.
struct StoreChunks {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
    display: String,
}

impl AsyncChunkReader for StoreChunks {
    fn len(&mut self) -> BoxFuture<'_, std::io::Result<u64>> {
        let size = self.size;
        async move { Ok(size) }.boxed()
    }

    fn get_bytes(
        &mut self,
        offset_from_start: u64,
        length: u64,
    ) -> BoxFuture<'_, std::io::Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.path, offset_from_start..offset_from_start + length)
                .await
                .map_err(|e| {
                    std::io::Error::other(format!("{}: {}", self.display, storage_message(&e)))
                })
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names() {
        assert_eq!(parse_split("f3/0-1048576"), Some((3, 0..1_048_576)));
        assert_eq!(parse_split("f/0-1"), None);
        assert_eq!(parse_split("x3/0-1"), None);
        assert_eq!(parse_split("f1/5"), None);
    }
}
