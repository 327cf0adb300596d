//! Parquet footers read at planning time (once per file version, cached): row counts for
//! the planner's statistics, each file's column statistics (DataFusion's, from the row
//! groups': bounds that let the scheduler send an ordered result without merging it), and a check that every file is Parquet and agrees with the
//! table, so a corrupt file or a column of the wrong type fails the query with the file's
//! name instead of deep inside a task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::Statistics as FileStatistics;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::parquet::arrow::parquet_to_arrow_schema;
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use datafusion::parquet::file::statistics::Statistics;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{HiveError, Result};
use crate::partitions::DataFile;
use crate::table_info::TableInfo;
use crate::types::hive_type;

/// Most footers read at once.
const CONCURRENCY: usize = 32;

/// What a footer says.
#[derive(Debug, Clone)]
struct Footer {
    schema: SchemaRef,
    rows: u64,
    /// Smallest and largest day of each DATE column with statistics in every row group.
    days: HashMap<String, (i32, i32)>,
    /// The whole footer, for column statistics.
    metadata: Arc<ParquetMetaData>,
}

/// Footers by file version (`path@size@modified`).
#[derive(Debug, Default)]
pub struct FooterCache(Mutex<HashMap<String, Footer>>);

fn key(file: &DataFile) -> String {
    format!(
        "{}@{}@{}",
        file.meta.location,
        file.meta.size,
        file.meta.last_modified.timestamp_millis()
    )
}

impl FooterCache {
    /// Reads (or recalls) the footers of `files`, checks them against the table, and returns
    /// their total row count and each file's statistics over the table's file columns, in the
    /// order of `files` (`None` for a file whose statistics DataFusion cannot read).
    pub async fn check(
        &self,
        store: &Arc<dyn ObjectStore>,
        info: &TableInfo,
        files: &[DataFile],
    ) -> Result<(u64, Vec<Option<Arc<FileStatistics>>>)> {
        let footers: HashMap<String, Footer> = self
            .footers(store, info, files)
            .await?
            .into_iter()
            .collect();
        let mut rows = 0;
        for (path, footer) in &footers {
            check_schema(info, path, footer)?;
            rows += footer.rows;
        }
        let statistics = files
            .iter()
            .map(|f| {
                let footer = footers.get(&key(f))?;
                DFParquetMetadata::statistics_from_parquet_metadata(
                    &footer.metadata,
                    &info.data_schema,
                )
                .map_err(|e| {
                    tracing::debug!(file = %f.meta.location, "no column statistics: {e}");
                })
                .ok()
                .map(Arc::new)
            })
            .collect();
        Ok((rows, statistics))
    }

    /// The smallest and largest day in DATE column `column` of each file (`None` where the
    /// file has no statistics for it), in the order of `files`.
    pub async fn day_bounds(
        &self,
        store: &Arc<dyn ObjectStore>,
        info: &TableInfo,
        files: &[DataFile],
        column: &str,
    ) -> Result<Vec<Option<(i32, i32)>>> {
        let footers: HashMap<String, Footer> = self
            .footers(store, info, files)
            .await?
            .into_iter()
            .collect();
        Ok(files
            .iter()
            .map(|f| {
                footers
                    .get(&key(f))
                    .and_then(|footer| footer.days.get(column).copied())
            })
            .collect())
    }

    async fn footers(
        &self,
        store: &Arc<dyn ObjectStore>,
        info: &TableInfo,
        files: &[DataFile],
    ) -> Result<Vec<(String, Footer)>> {
        let known: HashMap<String, Footer> = {
            let cache = self
                .0
                .lock()
                .map_err(|_| HiveError::Metadata("footer cache poisoned".into()))?;
            files
                .iter()
                .filter_map(|f| cache.get(&key(f)).map(|v| (key(f), v.clone())))
                .collect()
        };
        let missing: Vec<DataFile> = files
            .iter()
            .filter(|f| !known.contains_key(&key(f)))
            .cloned()
            .collect();
        let read: Vec<(String, Footer)> = futures::stream::iter(missing)
            .map(|file| {
                let (store, info) = (Arc::clone(store), info.clone());
                async move { read_footer(&store, &info, &file).await }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        if let Ok(mut cache) = self.0.lock() {
            if cache.len() > 100_000 {
                cache.clear();
            }
            cache.extend(read.iter().cloned());
        }
        Ok(known.into_iter().chain(read).collect())
    }
}

/// Bytes read from a file's end on the first try (footers are usually smaller).
const FOOTER_GUESS: u64 = 64 * 1024;

async fn read_footer(
    store: &Arc<dyn ObjectStore>,
    info: &TableInfo,
    file: &DataFile,
) -> Result<(String, Footer)> {
    let path = &file.meta.location;
    let size = file.meta.size;
    let invalid = |e: &dyn std::fmt::Display| HiveError::BadData {
        table: info.qualified.clone(),
        message: format!(
            "file {} is not a valid Parquet file: {e}",
            info.location.display_path(path)
        ),
    };
    let mut want = FOOTER_GUESS.min(size);
    let mut reader = ParquetMetaDataReader::new();
    loop {
        let bytes = store
            .get_range(path, size - want..size)
            .await
            .map_err(|e| {
                HiveError::storage(
                    format!(
                        "table {}: cannot read {}",
                        info.qualified,
                        info.location.display_path(path)
                    ),
                    &e,
                )
            })?;
        match reader.try_parse_sized(&bytes, size) {
            Ok(()) => break,
            Err(ParquetError::NeedMoreData(needed))
                if (needed as u64) > want && (needed as u64) <= size =>
            {
                want = needed as u64;
            }
            Err(e) => return Err(invalid(&e)),
        }
    }
    let metadata = reader.finish().map_err(|e| invalid(&e))?;
    let file_metadata = metadata.file_metadata();
    let schema = parquet_to_arrow_schema(
        file_metadata.schema_descr(),
        file_metadata.key_value_metadata(),
    )
    .map_err(|e| invalid(&e))?;
    let rows = u64::try_from(file_metadata.num_rows()).unwrap_or(0);
    let mut days = HashMap::new();
    for field in schema.fields() {
        if field.data_type() != &DataType::Date32 {
            continue;
        }
        let Some(leaf) = (0..file_metadata.schema_descr().num_columns())
            .find(|&c| file_metadata.schema_descr().column(c).path().string() == *field.name())
        else {
            continue;
        };
        let mut bounds: Option<(i32, i32)> = None;
        let mut complete = true;
        for group in metadata.row_groups() {
            match group.column(leaf).statistics() {
                Some(Statistics::Int32(s)) => match (s.min_opt(), s.max_opt()) {
                    (Some(lo), Some(hi)) => {
                        bounds = Some(bounds.map_or((*lo, *hi), |(a, b)| (a.min(*lo), b.max(*hi))));
                    }
                    _ if group.num_rows() == 0 => {}
                    _ => complete = false,
                },
                _ => complete = false,
            }
        }
        if complete && let Some(bounds) = bounds {
            days.insert(field.name().clone(), bounds);
        }
    }
    Ok((
        key(file),
        Footer {
            schema: Arc::new(schema),
            rows,
            days,
            metadata: Arc::new(metadata),
        },
    ))
}

fn check_schema(info: &TableInfo, key: &str, footer: &Footer) -> Result<()> {
    for field in info.data_schema.fields() {
        let Ok(found) = footer.schema.field_with_name(field.name()) else {
            continue;
        };
        if !compatible(found.data_type(), field.data_type()) {
            let path = key.split('@').next().unwrap_or(key);
            return Err(HiveError::BadData {
                table: info.qualified.clone(),
                message: format!(
                    "file {} has column '{}' of type {}, but the table declares it {}",
                    info.location
                        .display_path(&object_store::path::Path::from(path)),
                    field.name(),
                    hive_type(found.data_type()).unwrap_or_else(|| found.data_type().to_string()),
                    hive_type(field.data_type()).unwrap_or_else(|| field.data_type().to_string()),
                ),
            });
        }
    }
    Ok(())
}

/// Whether file values of type `file` can be read as `table` without changing their meaning
/// (integers widen, strings stay strings, …), as Trino's Hive connector allows.
pub(crate) fn compatible(file: &DataType, table: &DataType) -> bool {
    use DataType::*;
    let family = |t: &DataType| match t {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => 1,
        Float16 | Float32 | Float64 => 2,
        Decimal32(..) | Decimal64(..) | Decimal128(..) | Decimal256(..) => 3,
        Utf8 | LargeUtf8 | Utf8View => 4,
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => 5,
        Date32 | Date64 => 6,
        Timestamp(..) => 7,
        Boolean => 8,
        List(_) | LargeList(_) | ListView(_) | FixedSizeList(..) => 9,
        Struct(_) => 10,
        Map(..) => 11,
        Dictionary(_, v) => match v.as_ref() {
            Utf8 | LargeUtf8 | Utf8View => 4,
            _ => 12,
        },
        _ => 0,
    };
    let (f, t) = (family(file), family(table));
    f == t && f != 0 || (f == 1 && matches!(t, 2 | 3)) || (f == 5 && t == 4) || file == table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compatible_types() {
        assert!(compatible(&DataType::Int32, &DataType::Int64));
        assert!(compatible(&DataType::Utf8View, &DataType::Utf8));
        assert!(!compatible(&DataType::Utf8, &DataType::Int64));
        assert!(!compatible(&DataType::Date32, &DataType::Int32));
        assert!(compatible(&DataType::Int64, &DataType::Decimal128(20, 0)));
    }
}
