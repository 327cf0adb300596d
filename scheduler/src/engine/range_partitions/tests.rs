//! Dealing files by ranges and checking partitions against hand-made plans.

use arrow::compute::SortOptions;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{ColumnStatistics, Statistics};
use datafusion::datasource::physical_plan::ParquetSource;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{binary, col, lit};
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};

use std::sync::Arc;

use datafusion::common::stats::Precision;
use datafusion::common::{JoinType, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort::SortExec;

use super::{concatenation, regroup, reordered};

/// A file of `size` bytes whose column `d` holds days `lo..=hi` (`nulls` of them null).
fn file(name: &str, size: u64, days: Option<(i32, i32)>, nulls: usize) -> PartitionedFile {
    let mut d = ColumnStatistics::new_unknown();
    d.null_count = Precision::Exact(nulls);
    if let Some((lo, hi)) = days {
        d.min_value = Precision::Exact(ScalarValue::Date32(Some(lo)));
        d.max_value = Precision::Exact(ScalarValue::Date32(Some(hi)));
    }
    PartitionedFile::new(name, size).with_statistics(Arc::new(Statistics {
        num_rows: Precision::Exact(100),
        total_byte_size: Precision::Absent,
        column_statistics: vec![ColumnStatistics::new_unknown(), d],
    }))
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("v", DataType::Int64, true),
        Field::new("d", DataType::Date32, true),
    ]))
}

/// `SELECT d, v FROM files WHERE v > 0` sorted per partition by `d`, over `groups`.
fn sorted_scan(groups: Vec<Vec<PartitionedFile>>, descending: bool) -> Arc<dyn ExecutionPlan> {
    let schema = schema();
    let config = FileScanConfigBuilder::new(
        ObjectStoreUrl::local_filesystem(),
        Arc::new(ParquetSource::new(Arc::clone(&schema))),
    )
    .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
    .build();
    let scan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
    let predicate = binary(
        col("v", &schema).expect("v"),
        Operator::Gt,
        lit(0i64),
        &schema,
    )
    .expect("predicate");
    let filter = Arc::new(FilterExec::try_new(predicate, scan).expect("filter"));
    let projection = Arc::new(
        ProjectionExec::try_new(
            vec![
                (col("d", &schema).expect("d"), "d".to_owned()),
                (col("v", &schema).expect("v"), "v".to_owned()),
            ],
            filter,
        )
        .expect("projection"),
    );
    let d = col("d", &projection.schema()).expect("d");
    let options = SortOptions {
        descending,
        nulls_first: descending,
    };
    partition_sort(projection, d, options)
}

/// The file scan in `plan` (the first, depth first).
fn scan_of(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    let is_files = plan
        .downcast_ref::<DataSourceExec>()
        .is_some_and(|s| s.data_source().downcast_ref::<FileScanConfig>().is_some());
    if is_files {
        return Some(Arc::clone(plan));
    }
    plan.children().into_iter().find_map(scan_of)
}

/// The file names of each partition of the plan's scan.
fn groups(plan: &Arc<dyn ExecutionPlan>) -> Vec<Vec<String>> {
    let scan = scan_of(plan).expect("a file scan");
    let config = scan
        .downcast_ref::<DataSourceExec>()
        .and_then(|s| s.data_source().downcast_ref::<FileScanConfig>())
        .expect("a file scan");
    config
        .file_groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|f| f.object_meta.location.to_string())
                .collect()
        })
        .collect()
}

/// The partitioning the plan's scan declares.
fn scan_partitioning(plan: &Arc<dyn ExecutionPlan>) -> String {
    let scan = scan_of(plan).expect("a file scan");
    scan.properties().output_partitioning().to_string()
}

fn month(m: i32) -> Option<(i32, i32)> {
    Some((m * 31, m * 31 + 27))
}

/// `months` monthly files `m0`, `m1`, … of 100 bytes dealt in turn into `groups` groups
/// (month m into group m % groups), as DataFusion deals files by size: groups that overlap.
fn dealt_months(months: i32, groups: usize) -> Vec<Vec<PartitionedFile>> {
    let mut dealt = vec![Vec::new(); groups];
    for (m, group) in (0..months).zip((0..groups).cycle()) {
        dealt[group].push(file(&format!("m{m}"), 100, month(m), 0));
    }
    dealt
}

#[test]
fn files_apart_are_dealt_by_range_and_their_partitions_follow_one_another() {
    // Six monthly files dealt by size into three overlapping groups.
    let dealt = dealt_months(6, 3);
    let plan = sorted_scan(dealt.clone(), false);
    assert_eq!(
        concatenation(&plan, 0, false, 1),
        None,
        "overlapping as dealt"
    );

    // Twice the scan's partitions: a month each.
    let ascending = regroup(Arc::clone(&plan));
    let months: Vec<Vec<String>> = (0..6).map(|m| vec![format!("m{m}")]).collect();
    assert_eq!(groups(&ascending), months);
    assert_eq!(
        ascending
            .properties()
            .output_partitioning()
            .partition_count(),
        6
    );
    assert_eq!(
        concatenation(&ascending, 0, false, 1),
        Some((0..6).collect())
    );
    // The scan declares its ranges: each partition begins at a split point.
    assert_eq!(
        scan_partitioning(&ascending),
        "Range([d@1 ASC NULLS LAST], [(1970-02-01), (1970-03-04), (1970-04-04), \
         (1970-05-05), (1970-06-05)], 6)"
    );
    // The same partitions read backwards for a descending order.
    assert_eq!(
        concatenation(&ascending, 0, true, 1),
        Some((0..6).rev().collect())
    );

    let descending = regroup(sorted_scan(dealt, true));
    assert_eq!(
        groups(&descending),
        months.into_iter().rev().collect::<Vec<_>>()
    );
    assert_eq!(
        concatenation(&descending, 0, true, 2),
        Some((0..6).collect())
    );
    assert_eq!(
        scan_partitioning(&descending),
        "Range([d@1 DESC], [(1970-06-01), (1970-05-01), (1970-03-31), (1970-02-28), \
         (1970-01-28)], 6)"
    );
    // Another column is not the one the files are apart in.
    assert_eq!(concatenation(&descending, 1, true, 1), None);
}

#[test]
fn cuts_fall_only_where_the_ranges_part() {
    // a and b overlap (late rows of month 0 in a): they stay together.
    let files = [
        file("a", 100, Some((0, 40)), 0),
        file("b", 100, month(1), 0),
        file("c", 100, month(2), 0),
        file("d", 100, month(3), 0),
    ];
    let plan = sorted_scan(
        vec![
            vec![files[0].clone(), files[2].clone()],
            vec![files[1].clone(), files[3].clone()],
        ],
        false,
    );
    assert_eq!(
        groups(&regroup(plan)),
        vec![vec!["a", "b"], vec!["c"], vec!["d"]]
    );
}

#[test]
fn ties_part_a_one_key_order_only() {
    let touching = vec![
        vec![file("a", 100, Some((0, 10)), 0)],
        vec![file("b", 100, Some((10, 20)), 0)],
    ];
    let plan = sorted_scan(touching, false);
    assert_eq!(concatenation(&plan, 0, false, 1), Some(vec![0, 1]));
    assert_eq!(concatenation(&plan, 0, false, 2), None);
    // Regrouping cuts strictly: these two are left as they are.
    assert_eq!(groups(&regroup(plan)), vec![vec!["a"], vec!["b"]]);
}

#[test]
fn nulls_missing_statistics_or_uneven_groups_leave_the_plan_alone() {
    let dealt = |f: Vec<PartitionedFile>| {
        vec![
            vec![f[0].clone(), f[2].clone()],
            vec![f[1].clone(), f[3].clone()],
        ]
    };
    let as_dealt = vec![vec!["a", "c"], vec!["b", "d"]];
    let with = |first: PartitionedFile| {
        vec![
            first,
            file("b", 100, month(1), 0),
            file("c", 100, month(2), 0),
            file("d", 100, month(3), 0),
        ]
    };
    for first in [
        file("a", 100, month(0), 3),
        file("a", 100, None, 0),
        PartitionedFile::new("a", 100),
    ] {
        let plan = sorted_scan(dealt(with(first)), false);
        assert_eq!(groups(&regroup(Arc::clone(&plan))), as_dealt);
        assert_eq!(concatenation(&plan, 0, false, 1), None);
    }
    // A cut only after the first file: 50 bytes against 300, too uneven for two groups.
    let plan = sorted_scan(
        dealt(vec![
            file("a", 50, month(0), 0),
            file("b", 100, Some((31, 200)), 0),
            file("c", 100, month(2), 0),
            file("d", 100, month(3), 0),
        ]),
        false,
    );
    assert_eq!(groups(&regroup(plan)), as_dealt);
}

#[test]
fn pieces_of_a_file_stay_in_one_partition() {
    let whole = |name: &str, m: i32| file(name, 200, month(m), 0);
    let half = |f: PartitionedFile, first: bool| {
        if first {
            f.with_range(0, 100)
        } else {
            f.with_range(100, 200)
        }
    };
    let plan = sorted_scan(
        vec![
            vec![half(whole("a", 0), true), half(whole("b", 1), false)],
            vec![half(whole("a", 0), false), half(whole("b", 1), true)],
        ],
        false,
    );
    assert_eq!(groups(&regroup(plan)), vec![vec!["a", "a"], vec!["b", "b"]]);
}

/// `SELECT * FROM build JOIN files ON k = v` (the files' columns after the build side's
/// two) sorted per partition by output column `key`.
fn sorted_join(
    groups: Vec<Vec<PartitionedFile>>,
    mode: PartitionMode,
    key: usize,
) -> Arc<dyn ExecutionPlan> {
    use datafusion::common::NullEquality;
    use datafusion::physical_plan::empty::EmptyExec;
    let probe = sorted_scan(groups, false).children()[0].children()[0].children()[0].clone();
    let build_schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]));
    let build: Arc<dyn ExecutionPlan> = Arc::new(EmptyExec::new(Arc::clone(&build_schema)));
    let on = vec![(
        col("k", &build_schema).expect("k"),
        col("v", &schema()).expect("v"),
    )];
    let join: Arc<dyn ExecutionPlan> = Arc::new(
        HashJoinExec::try_new(
            build,
            probe,
            on,
            None,
            &JoinType::Inner,
            None,
            mode,
            NullEquality::NullEqualsNothing,
            false,
        )
        .expect("join"),
    );
    let column = Arc::new(Column::new(join.schema().field(key).name(), key));
    partition_sort(join, column, SortOptions::default())
}

/// `input` sorted per partition by `key`, as an ordered result's `PartitionSort` plans it.
fn partition_sort(
    input: Arc<dyn ExecutionPlan>,
    key: Arc<dyn PhysicalExpr>,
    options: SortOptions,
) -> Arc<dyn ExecutionPlan> {
    let ordering = LexOrdering::new(vec![PhysicalSortExpr::new(key, options)]).expect("a sort key");
    Arc::new(SortExec::new(ordering, input).with_preserve_partitioning(true))
}

#[test]
fn a_probe_sides_files_are_dealt_but_only_a_broadcast_join_keeps_them_apart() {
    let dealt = dealt_months(4, 2);
    // Output column 3 is the probe side's `d`.
    for mode in [PartitionMode::CollectLeft, PartitionMode::Partitioned] {
        let plan = regroup(sorted_join(dealt.clone(), mode, 3));
        assert_eq!(
            groups(&plan),
            vec![vec!["m0"], vec!["m1"], vec!["m2"], vec!["m3"]]
        );
        // A partitioned join's partitions are not the scan's.
        let expected = (mode == PartitionMode::CollectLeft).then(|| vec![0, 1, 2, 3]);
        assert_eq!(concatenation(&plan, 3, false, 1), expected, "{mode:?}");
    }
    // A key of the build side: nothing to deal.
    let plan = regroup(sorted_join(dealt, PartitionMode::CollectLeft, 0));
    assert_eq!(groups(&plan), vec![vec!["m0", "m2"], vec!["m1", "m3"]]);
    assert_eq!(concatenation(&plan, 0, false, 1), None);
}

#[test]
fn partitions_are_put_in_order_by_id() {
    let partition = |id: u32| tributary_proto::JobPartition {
        partition_id: id,
        ..Default::default()
    };
    let ids: Vec<u32> = reordered((0..4).map(partition).collect(), &[2, 0, 3])
        .iter()
        .map(|p| p.partition_id)
        .collect();
    assert_eq!(ids, vec![2, 0, 3, 1]);
}
