//! The physical scan shared by Hive and Delta Lake tables: files cut into byte-range splits,
//! dealt into the scan's partitions, read by DataFusion's own Parquet/CSV/JSON source (a file
//! scan Ballista narrows to each task's splits, so every split is read exactly once).

use std::ops::Range;
use std::sync::Arc;

use arrow::datatypes::{FieldRef, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::{ScalarValue, Statistics};
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
            let split = if range.end - range.start == file.meta.size {
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
