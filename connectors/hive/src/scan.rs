//! The physical scan shared by Hive and Delta Lake tables: files cut into byte-range splits,
//! dealt into the scan's partitions, read by DataFusion's own Parquet/CSV/JSON source (a file
//! scan Ballista narrows to each task's splits, so every split is read exactly once).

use std::ops::Range;
use std::sync::Arc;

use arrow::datatypes::{FieldRef, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, ScalarValue, Statistics};
use datafusion::datasource::file_format::FileFormat;
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion_datasource::file_groups::FileGroup;
use datafusion_datasource::file_scan_config::FileScanConfigBuilder;
use datafusion_datasource::{PartitionedFile, TableSchema};
use object_store::ObjectMeta;

/// A file to read and its partition values (of the declared partition columns).
#[derive(Debug, Clone)]
pub struct ScanFile {
    /// The object (path from the store's root).
    pub meta: ObjectMeta,
    /// Values of the partition columns.
    pub partition_values: Vec<ScalarValue>,
    /// What the file's footer says of its file columns (rows, bounds, nulls), when known.
    pub statistics: Option<Arc<Statistics>>,
}

/// Everything a file scan needs.
pub struct FileScan {
    /// Parquet, CSV or JSON.
    pub format: Arc<dyn FileFormat>,
    /// The store the paths are in.
    pub store_url: ObjectStoreUrl,
    /// Columns in the files.
    pub data_schema: SchemaRef,
    /// Partition columns (after the data columns in the table's schema).
    pub partition_fields: Vec<FieldRef>,
    /// Files after pruning.
    pub files: Vec<ScanFile>,
    /// Largest split.
    pub max_split_size: u64,
    /// Whether files may be cut into byte ranges.
    pub splittable: bool,
    /// Table statistics.
    pub statistics: Statistics,
}

/// Builds the scan (an empty plan when no file is left).
pub async fn file_scan(
    state: &dyn Session,
    scan: FileScan,
    projection: Option<&Vec<usize>>,
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let table_schema = TableSchema::builder(Arc::clone(&scan.data_schema))
        .with_table_partition_cols(scan.partition_fields.clone())
        .build();
    if scan.files.is_empty() {
        let schema = Arc::clone(table_schema.table_schema());
        let projected = match projection {
            Some(p) => Arc::new(schema.project(p)?),
            None => schema,
        };
        return Ok(Arc::new(EmptyExec::new(projected)));
    }
    let splittable = scan.splittable
        && !scan
            .files
            .iter()
            .any(|f| compressed(f.meta.location.as_ref()));
    let groups = split_groups(
        &scan.files,
        scan.max_split_size,
        state.config().target_partitions(),
        splittable,
    );
    let source = scan.format.file_source(table_schema);
    let config = FileScanConfigBuilder::new(scan.store_url, source)
        .with_file_groups(groups)
        .with_statistics(scan.statistics)
        .with_projection_indices(projection.cloned())?
        .with_limit(limit)
        .build();
    scan.format.create_physical_plan(state, config).await
}

/// Cuts files into splits of at most `max` bytes and deals them into `groups` groups of
/// about equal size (the scan's partitions; Ballista gives each task its groups).
fn split_groups(files: &[ScanFile], max: u64, groups: usize, splittable: bool) -> Vec<FileGroup> {
    let sizes: Vec<u64> = files.iter().map(|f| f.meta.size).collect();
    let splits = byte_ranges(&sizes, max, splittable)
        .into_iter()
        .map(|(index, range)| {
            let file = &files[index];
            let whole = PartitionedFile::new_from_meta(file.meta.clone())
                .with_partition_values(file.partition_values.clone());
            let is_whole = range.end - range.start == file.meta.size;
            let whole = match &file.statistics {
                Some(s) if is_whole => whole.with_statistics(Arc::clone(s)),
                Some(s) => whole.with_statistics(Arc::new(piece_statistics(
                    s,
                    range.end - range.start,
                    file.meta.size,
                ))),
                None => whole,
            };
            let split = if is_whole {
                whole
            } else {
                #[allow(clippy::cast_possible_wrap)]
                whole.with_range(range.start as i64, range.end as i64)
            };
            (range.end - range.start, split)
        })
        .collect();
    deal(splits, groups)
        .into_iter()
        .map(FileGroup::new)
        .collect()
}

/// The statistics of `len` bytes of a file of `size` bytes with `file`'s: its bounds still
/// bound the piece (inexactly), its counts are the file's share (estimated); no nulls in the
/// file is no nulls in the piece.
fn piece_statistics(file: &Statistics, len: u64, size: u64) -> Statistics {
    #[allow(clippy::cast_precision_loss)]
    let share = if size == 0 {
        1.0
    } else {
        len as f64 / size as f64
    };
    let scale = |p: &Precision<usize>| match p.get_value() {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        Some(&v) => Precision::Inexact((v as f64 * share).round() as usize),
        None => Precision::Absent,
    };
    Statistics {
        num_rows: scale(&file.num_rows),
        total_byte_size: scale(&file.total_byte_size),
        column_statistics: file
            .column_statistics
            .iter()
            .map(|c| ColumnStatistics {
                null_count: match c.null_count {
                    Precision::Exact(0) => Precision::Exact(0),
                    ref other => scale(other),
                },
                max_value: c.max_value.clone().to_inexact(),
                min_value: c.min_value.clone().to_inexact(),
                sum_value: Precision::Absent,
                distinct_count: c.distinct_count.to_inexact(),
                byte_size: scale(&c.byte_size),
            })
            .collect(),
    }
}

/// The byte ranges of at most `max` bytes the files of `sizes` are read in, as (index of
/// the file, range); a whole file each when they are not `splittable`.
pub fn byte_ranges(sizes: &[u64], max: u64, splittable: bool) -> Vec<(usize, Range<u64>)> {
    let mut ranges = Vec::new();
    for (index, &size) in sizes.iter().enumerate() {
        if !splittable || size <= max {
            ranges.push((index, 0..size));
            continue;
        }
        let mut start = 0;
        while start < size {
            let end = (start + max).min(size);
            ranges.push((index, start..end));
            start = end;
        }
    }
    ranges
}

/// Deals sized items into at most `groups` non-empty groups of about equal total size,
/// largest first.
pub fn deal<T: Clone>(mut items: Vec<(u64, T)>, groups: usize) -> Vec<Vec<T>> {
    let count = groups.clamp(1, items.len().max(1));
    let mut dealt: Vec<(u64, Vec<T>)> = vec![(0, vec![]); count];
    items.sort_by_key(|s| std::cmp::Reverse(s.0));
    for (size, item) in items {
        if let Some(smallest) = dealt.iter_mut().min_by_key(|(total, _)| *total) {
            smallest.0 += size;
            smallest.1.push(item);
        }
    }
    dealt
        .into_iter()
        .filter(|(_, items)| !items.is_empty())
        .map(|(_, items)| items)
        .collect()
}

fn compressed(name: &str) -> bool {
    [
        ".gz", ".bz2", ".xz", ".zst", ".zstd", ".snappy", ".lz4", ".deflate",
    ]
    .iter()
    .any(|ext| name.ends_with(ext))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statistics() -> Statistics {
        let mut d = ColumnStatistics::new_unknown();
        d.null_count = Precision::Exact(0);
        d.min_value = Precision::Exact(ScalarValue::Int32(Some(3)));
        d.max_value = Precision::Exact(ScalarValue::Int32(Some(9)));
        let mut n = ColumnStatistics::new_unknown();
        n.null_count = Precision::Exact(10);
        Statistics {
            num_rows: Precision::Exact(1000),
            total_byte_size: Precision::Exact(8000),
            column_statistics: vec![d, n],
        }
    }

    #[test]
    fn a_piece_keeps_the_files_bounds_and_a_share_of_its_counts() {
        let piece = piece_statistics(&statistics(), 250, 1000);
        assert_eq!(piece.num_rows, Precision::Inexact(250));
        assert_eq!(piece.total_byte_size, Precision::Inexact(2000));
        let d = &piece.column_statistics[0];
        assert_eq!(d.null_count, Precision::Exact(0));
        assert_eq!(d.min_value, Precision::Inexact(ScalarValue::Int32(Some(3))));
        assert_eq!(d.max_value, Precision::Inexact(ScalarValue::Int32(Some(9))));
        assert_eq!(piece.column_statistics[1].null_count, Precision::Inexact(3));
    }

    #[test]
    fn splits_carry_their_files_statistics_and_partition_values() {
        let file = |name: &str, size: u64| ScanFile {
            meta: ObjectMeta {
                location: name.into(),
                last_modified: chrono::DateTime::default(),
                size,
                e_tag: None,
                version: None,
            },
            partition_values: vec![ScalarValue::Int32(Some(2025))],
            statistics: Some(Arc::new(statistics())),
        };
        let groups = split_groups(&[file("a", 100), file("b", 40)], 50, 2, true);
        let splits: Vec<&PartitionedFile> = groups.iter().flat_map(FileGroup::iter).collect();
        assert_eq!(splits.len(), 3);
        for split in splits {
            let stats = split.statistics.as_ref().expect("statistics");
            // The file's two columns, then the partition column's exact value.
            assert_eq!(stats.column_statistics.len(), 3);
            assert_eq!(
                stats.column_statistics[2].min_value,
                Precision::Exact(ScalarValue::Int32(Some(2025)))
            );
            let whole = split.range.is_none();
            assert_eq!(stats.num_rows.is_exact(), Some(whole));
        }
    }
}
