//! Sorting below broadcast joins, on hand-made plans optimized as Ballista's adaptive planner
//! does and run in one process.

use std::sync::Arc;

use arrow::array::{Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::SortOptions;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{JoinType, NullEquality};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::physical_expr::expressions::{Column, col};
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::ensure_requirements::EnsureRequirements;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode, SortMergeJoinExec};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{ExecutionPlan, collect_partitioned, displayable};
use datafusion::prelude::SessionContext;
use tributary_connector::SortedInputExec;

use super::presort;

fn products_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
    ]))
}

fn orders_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("k", DataType::Int64, false),
        Field::new("d", DataType::Int32, false),
    ]))
}

/// Four products in one partition (a broadcast build side).
fn products() -> Arc<dyn ExecutionPlan> {
    let batch = RecordBatch::try_new(
        products_schema(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
            Arc::new(StringArray::from(vec!["one", "two", "three", "four"])),
        ],
    )
    .expect("products");
    MemorySourceConfig::try_new_exec(&[vec![batch]], products_schema(), None).expect("products")
}

/// Orders in two partitions of two batches each, days in no order; product 5 is unknown.
fn orders() -> Arc<dyn ExecutionPlan> {
    let batch = |first: i64, days: Vec<i32>| {
        let n = days.len();
        RecordBatch::try_new(
            orders_schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(first..first + n as i64)),
                Arc::new(Int64Array::from_iter_values(
                    (0..n as i64).map(|i| i % 5 + 1),
                )),
                Arc::new(Int32Array::from(days)),
            ],
        )
        .expect("orders")
    };
    let partitions = vec![
        vec![batch(0, vec![5, 1, 9, 3, 7]), batch(5, vec![2, 8, 4, 6, 0])],
        vec![batch(10, vec![15, 11, 19]), batch(13, vec![13, 17, 12, 18])],
    ];
    MemorySourceConfig::try_new_exec(&partitions, orders_schema(), None).expect("orders")
}

/// `SELECT o.id, o.d, p.name FROM products p JOIN orders o ON p.k = o.k` (products built).
fn joined(
    build: Arc<dyn ExecutionPlan>,
    probe: Arc<dyn ExecutionPlan>,
    mode: PartitionMode,
) -> Arc<dyn ExecutionPlan> {
    let on = vec![(
        col("k", &build.schema()).expect("k"),
        col("k", &probe.schema()).expect("k"),
    )];
    // Output columns: build's (k, name), then probe's (id, k, d).
    let left = build.schema().fields().len();
    Arc::new(
        HashJoinExec::try_new(
            build,
            probe,
            on,
            None,
            &JoinType::Inner,
            Some(vec![left, left + 2, 1]),
            mode,
            NullEquality::NullEqualsNothing,
            false,
        )
        .expect("join"),
    )
}

/// `input` sorted per partition by its column `key`, descending, as an ordered result's
/// `PartitionSort` plans it (a TopK with `fetch`).
fn result_sort(
    input: Arc<dyn ExecutionPlan>,
    key: usize,
    fetch: Option<usize>,
) -> Arc<dyn ExecutionPlan> {
    let name = input.schema().field(key).name().clone();
    let ordering = LexOrdering::new(vec![PhysicalSortExpr::new(
        Arc::new(Column::new(&name, key)),
        SortOptions {
            descending: true,
            nulls_first: true,
        },
    )])
    .expect("a sort key");
    Arc::new(
        SortExec::new(ordering, input)
            .with_preserve_partitioning(true)
            .with_fetch(fetch),
    )
}

fn text(plan: &Arc<dyn ExecutionPlan>) -> String {
    displayable(plan.as_ref()).indent(true).to_string()
}

/// Ballista's adaptive planner runs DataFusion's optimizer chain again once it has chosen
/// the joins; `EnsureRequirements` is the rule that adds and removes sorts (DataFusion's
/// `EnforceSorting`, with `EnforceDistribution`).
fn optimized(plan: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    EnsureRequirements::new()
        .optimize(plan, &ConfigOptions::new())
        .expect("optimized")
}

/// Each output partition's (id, d) rows as they came.
async fn run(plan: Arc<dyn ExecutionPlan>) -> Vec<Vec<(i64, i32)>> {
    let ctx = SessionContext::new();
    collect_partitioned(plan, ctx.task_ctx())
        .await
        .expect("ran")
        .into_iter()
        .map(|batches| {
            batches
                .iter()
                .flat_map(|b| {
                    let id = b
                        .column(0)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .expect("id");
                    let d = b
                        .column(1)
                        .as_any()
                        .downcast_ref::<Int32Array>()
                        .expect("d");
                    (0..b.num_rows())
                        .map(|i| (id.value(i), d.value(i)))
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn the_probe_side_is_sorted_below_a_broadcast_join_and_the_result_sort_goes() {
    // ORDER BY d DESC: output column 1, the probe side's column 2.
    let plan = result_sort(
        joined(products(), orders(), PartitionMode::CollectLeft),
        1,
        None,
    );
    let presorted = presort(Arc::clone(&plan), &ConfigOptions::new());
    let shown = text(&presorted);
    assert!(
        shown.contains("SortedInput: d@2 DESC") && shown.matches("SortExec").count() == 2,
        "{shown}"
    );
    let probe = Arc::clone(presorted.children()[0].children()[1]);
    let sorted = probe
        .downcast_ref::<SortedInputExec>()
        .expect("the probe side sorted");
    assert!(sorted.input().is::<SortExec>(), "{shown}");

    // Once the join is chosen, the join's order satisfies the result's sort: it goes, and
    // the sort below the join stays because the node requires it (before, Ballista's join
    // placeholder keeps no order: the result's sort is needed, and a sort below nothing
    // requires would be removed).
    let after = optimized(presorted);
    let shown = text(&after);
    assert!(after.is::<HashJoinExec>(), "{shown}");
    assert_eq!(shown.matches("SortExec").count(), 1, "{shown}");
    // The same rows in each partition, sorted by d descending.
    let expected = run(optimized(plan)).await;
    let got = run(after).await;
    assert_eq!(got.len(), 2);
    for (got, expected) in got.iter().zip(&expected) {
        assert!(got.windows(2).all(|w| w[0].1 >= w[1].1), "{got:?}");
        let (mut a, mut b) = (got.clone(), expected.clone());
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
        // Product 5 has no match: every fifth order is dropped by the join.
        assert!(!got.is_empty() && got.len() < 10);
    }
}

#[tokio::test]
async fn the_sort_goes_below_every_broadcast_join_the_keys_pass() {
    // products JOIN (SELECT id, id AS k, d FROM products JOIN orders ON k): both broadcast,
    // the inner join's output probing the outer one.
    let inner = joined(products(), orders(), PartitionMode::CollectLeft);
    let renamed = Arc::new(
        datafusion::physical_plan::projection::ProjectionExec::try_new(
            vec![
                (col("id", &inner.schema()).expect("id"), "id".to_owned()),
                (col("id", &inner.schema()).expect("id"), "k".to_owned()),
                (col("d", &inner.schema()).expect("d"), "d".to_owned()),
            ],
            inner,
        )
        .expect("projection"),
    );
    let plan = result_sort(
        joined(products(), renamed, PartitionMode::CollectLeft),
        1,
        None,
    );
    let presorted = presort(plan, &ConfigOptions::new());
    let shown = text(&presorted);
    // Sorted once, below the inner join, on the orders' own columns.
    assert_eq!(shown.matches("SortedInput").count(), 1, "{shown}");
    let inner_probe = presorted.children()[0].children()[1].children()[0].children()[1];
    assert!(inner_probe.is::<SortedInputExec>(), "{shown}");
    let after = optimized(presorted);
    let shown = text(&after);
    assert_eq!(shown.matches("SortExec").count(), 1, "{shown}");
    for partition in run(after).await {
        assert!(
            partition.windows(2).all(|w| w[0].1 >= w[1].1),
            "{partition:?}"
        );
    }
}

/// `plan` as DataFusion plans a partitioned join: each input hash-repartitioned on its key.
fn partitioned(
    build: Arc<dyn ExecutionPlan>,
    probe: Arc<dyn ExecutionPlan>,
) -> Arc<dyn ExecutionPlan> {
    use datafusion::physical_plan::Partitioning;
    use datafusion::physical_plan::repartition::RepartitionExec;
    let hashed = |input: Arc<dyn ExecutionPlan>| -> Arc<dyn ExecutionPlan> {
        let key = col("k", &input.schema()).expect("k");
        Arc::new(
            RepartitionExec::try_new(input, Partitioning::Hash(vec![key], 3)).expect("repartition"),
        )
    };
    joined(hashed(build), hashed(probe), PartitionMode::Partitioned)
}

/// The join in `plan` chosen again as `mode`, as Ballista's adaptive planner does once it
/// has measured the build side.
fn chosen(plan: &Arc<dyn ExecutionPlan>, mode: PartitionMode) -> Arc<dyn ExecutionPlan> {
    if let Some(join) = plan.downcast_ref::<HashJoinExec>() {
        return Arc::new(
            HashJoinExec::try_new(
                Arc::clone(join.left()),
                Arc::clone(join.right()),
                join.on().to_vec(),
                join.filter().cloned(),
                join.join_type(),
                join.projection.as_deref().map(<[usize]>::to_vec),
                mode,
                join.null_equality(),
                false,
            )
            .expect("join"),
        );
    }
    if let Some(join) = plan.downcast_ref::<SortMergeJoinExec>() {
        return Arc::new(
            HashJoinExec::try_new(
                Arc::clone(join.left()),
                Arc::clone(join.right()),
                join.on().to_vec(),
                join.filter().clone(),
                &join.join_type(),
                None,
                mode,
                join.null_equality(),
                false,
            )
            .expect("join"),
        );
    }
    let children = plan
        .children()
        .into_iter()
        .map(|c| chosen(c, mode))
        .collect();
    super::with_children(plan, children).expect("children")
}

/// As Ballista's sessions plan a join above the broadcast threshold (DataFusion's sort-merge
/// join: Ballista turns `prefer_hash_join` off): each input repartitioned by hash on its key
/// and sorted on it; then the columns (id, d, name).
fn sort_merge(
    build: Arc<dyn ExecutionPlan>,
    probe: Arc<dyn ExecutionPlan>,
) -> Arc<dyn ExecutionPlan> {
    use datafusion::physical_plan::Partitioning;
    use datafusion::physical_plan::projection::ProjectionExec;
    use datafusion::physical_plan::repartition::RepartitionExec;
    let sorted_on_key = |input: Arc<dyn ExecutionPlan>| -> Arc<dyn ExecutionPlan> {
        let key = col("k", &input.schema()).expect("k");
        let hashed = Arc::new(
            RepartitionExec::try_new(input, Partitioning::Hash(vec![Arc::clone(&key)], 3))
                .expect("repartition"),
        );
        let ordering = LexOrdering::new(vec![PhysicalSortExpr::new_default(key)]).expect("key");
        Arc::new(SortExec::new(ordering, hashed).with_preserve_partitioning(true))
    };
    let (build, probe) = (sorted_on_key(build), sorted_on_key(probe));
    let on = vec![(
        col("k", &build.schema()).expect("k"),
        col("k", &probe.schema()).expect("k"),
    )];
    let join: Arc<dyn ExecutionPlan> = Arc::new(
        SortMergeJoinExec::try_new(
            build,
            probe,
            on,
            None,
            JoinType::Inner,
            vec![SortOptions::default()],
            NullEquality::NullEqualsNothing,
        )
        .expect("join"),
    );
    let schema = join.schema();
    let column = |i: usize| {
        (
            Arc::new(Column::new(schema.field(i).name(), i)) as _,
            schema.field(i).name().clone(),
        )
    };
    Arc::new(
        ProjectionExec::try_new(vec![column(2), column(4), column(1)], join).expect("projection"),
    )
}

#[tokio::test]
async fn a_sort_merge_join_is_sorted_below_its_shuffle_whatever_it_becomes() {
    let plan = result_sort(sort_merge(products(), orders()), 1, None);
    let expected = run(optimized(Arc::clone(&plan))).await;
    let presorted = presort(plan, &ConfigOptions::new());
    let shown = text(&presorted);
    // Under the join's repartition and key sort.
    let probe_side = shown.split("SortMergeJoin").nth(1).expect("join");
    let (hashed, sorted) = (
        probe_side.rfind("RepartitionExec").expect("repartition"),
        probe_side
            .find("SortedInput: d@2 DESC")
            .expect("sorted input"),
    );
    assert!(hashed < sorted, "{shown}");
    // A broadcast join: the probe side is the sorted input, the result's sort gone.
    let broadcast = optimized(chosen(&presorted, PartitionMode::CollectLeft));
    let shown = text(&broadcast);
    assert_eq!(shown.matches("SortExec").count(), 1, "{shown}");
    assert!(!shown.contains("RepartitionExec"), "{shown}");
    // Still a shuffle join: sorted by key for the join, the result sorted after it.
    let merged = optimized(presorted);
    let shown = text(&merged);
    let (result_sort, join) = (
        shown
            .find("SortExec: expr=[d@4 DESC]")
            .expect("the result's sort"),
        shown.find("SortMergeJoinExec").expect("join"),
    );
    assert!(result_sort < join, "{shown}");
    for after in [broadcast, merged] {
        let got = run(after).await;
        let mut all: Vec<(i64, i32)> = got.iter().flatten().copied().collect();
        let mut want: Vec<(i64, i32)> = expected.iter().flatten().copied().collect();
        all.sort_unstable();
        want.sort_unstable();
        assert_eq!(all, want);
        for partition in got {
            assert!(
                partition.windows(2).all(|w| w[0].1 >= w[1].1),
                "{partition:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_join_planned_partitioned_is_sorted_below_whatever_it_becomes() {
    let plan = result_sort(partitioned(products(), orders()), 1, None);
    let expected = run(optimized(Arc::clone(&plan))).await;
    let presorted = presort(plan, &ConfigOptions::new());
    let shown = text(&presorted);
    assert!(shown.contains("SortedInput: d@2 DESC"), "{shown}");
    for mode in [PartitionMode::CollectLeft, PartitionMode::Partitioned] {
        let after = optimized(chosen(&presorted, mode));
        let shown = text(&after);
        // No sort above the join: a broadcast join keeps the sorted probe side's order (its
        // repartition gone); a partitioned join has its probe side sorted after the shuffle
        // (as DataFusion plans it in one process; Ballista's shuffle can keep the order).
        assert!(after.is::<HashJoinExec>(), "{mode:?}\n{shown}");
        let probe = Arc::clone(after.children()[1]);
        match mode {
            PartitionMode::CollectLeft => {
                assert!(probe.is::<SortedInputExec>(), "{shown}");
                assert!(
                    !shown.contains("RepartitionExec: partitioning=Hash([k@1]"),
                    "{shown}"
                );
            }
            _ => assert!(probe.is::<SortExec>(), "{shown}"),
        }
        let got = run(after).await;
        let mut all: Vec<(i64, i32)> = got.iter().flatten().copied().collect();
        let mut want: Vec<(i64, i32)> = expected.iter().flatten().copied().collect();
        all.sort_unstable();
        want.sort_unstable();
        assert_eq!(all, want, "{mode:?}");
        for partition in got {
            assert!(
                partition.windows(2).all(|w| w[0].1 >= w[1].1),
                "{mode:?} {partition:?}"
            );
        }
    }
}

#[test]
fn a_build_side_key_or_a_top_n_leave_the_plan_alone() {
    let cases = [
        // ORDER BY name: the build side's.
        result_sort(
            joined(products(), orders(), PartitionMode::CollectLeft),
            2,
            None,
        ),
        // ORDER BY d DESC LIMIT 3: the TopK keeps 3 rows a partition.
        result_sort(
            joined(products(), orders(), PartitionMode::CollectLeft),
            1,
            Some(3),
        ),
    ];
    for plan in cases {
        let before = text(&plan);
        assert_eq!(text(&presort(plan, &ConfigOptions::new())), before);
    }
    // A join planned partitioned whose smaller side is over the broadcast threshold: it will
    // stay partitioned.
    let mut options = ConfigOptions::new();
    options
        .extensions
        .insert(ballista_core::config::BallistaConfig::default());
    options
        .set("ballista.optimizer.broadcast_join_threshold_bytes", "16")
        .expect("threshold");
    let plan = result_sort(partitioned(products(), orders()), 1, None);
    let before = text(&plan);
    assert_eq!(text(&presort(Arc::clone(&plan), &options)), before);
    assert_ne!(text(&presort(plan, &ConfigOptions::new())), before);
}
