use super::*;
use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{JoinType, NullEquality};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::expressions::col;
use datafusion::physical_plan::{collect_partitioned, displayable};

/// The products: ids 1..=5 (a build side).
fn products() -> Arc<dyn ExecutionPlan> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
            Arc::new(StringArray::from(vec!["a", "b", "c", "d", "e"])),
        ],
    )
    .expect("test batch");
    MemorySourceConfig::try_new_exec(&[vec![batch]], schema, None).expect("memory exec")
}

/// Orders in 2 partitions of 2 batches each: (order_id, product_id, day); product 9 matches
/// no product, days repeat.
fn orders() -> Arc<dyn ExecutionPlan> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("product_id", DataType::Int64, false),
        Field::new("day", DataType::Int64, false),
    ]));
    let batch = |first: i64| {
        let ids: Vec<i64> = (first..first + 20).collect();
        let products: Vec<i64> = ids
            .iter()
            .map(|i| if i % 7 == 0 { 9 } else { i % 5 + 1 })
            .collect();
        let days: Vec<i64> = ids.iter().map(|i| (i * 37) % 11).collect();
        RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(Int64Array::from(products)),
                Arc::new(Int64Array::from(days)),
            ],
        )
        .expect("test batch")
    };
    let partitions = vec![vec![batch(0), batch(20)], vec![batch(40), batch(60)]];
    MemorySourceConfig::try_new_exec(&partitions, schema, None).expect("memory exec")
}

fn join(
    build: Arc<dyn ExecutionPlan>,
    probe: Arc<dyn ExecutionPlan>,
    build_key: &str,
    probe_key: &str,
    join_type: JoinType,
    mode: PartitionMode,
) -> Arc<dyn ExecutionPlan> {
    let on = vec![(
        col(build_key, &build.schema()).expect("build key"),
        col(probe_key, &probe.schema()).expect("probe key"),
    )];
    Arc::new(
        HashJoinExec::try_new(
            build,
            probe,
            on,
            None,
            &join_type,
            None,
            mode,
            NullEquality::NullEqualsNothing,
            false,
        )
        .expect("join"),
    )
}

/// `plan`'s columns `names`, in that order.
fn project(plan: Arc<dyn ExecutionPlan>, names: &[&str]) -> Arc<dyn ExecutionPlan> {
    let exprs: Vec<(Arc<dyn datafusion::physical_expr::PhysicalExpr>, String)> = names
        .iter()
        .map(|name| {
            (
                col(name, &plan.schema()).expect("column"),
                (*name).to_owned(),
            )
        })
        .collect();
    Arc::new(ProjectionExec::try_new(exprs, plan).expect("projection"))
}

/// `plan` sorted by `keys` (column, descending), partition by partition unless `merge`.
fn sort(plan: Arc<dyn ExecutionPlan>, keys: &[(&str, bool)], merge: bool) -> SortExec {
    let ordering = LexOrdering::new(keys.iter().map(|(name, descending)| PhysicalSortExpr {
        expr: col(name, &plan.schema()).expect("key"),
        options: SortOptions {
            descending: *descending,
            nulls_first: false,
        },
    }))
    .expect("keys");
    SortExec::new(ordering, plan).with_preserve_partitioning(!merge)
}

/// The result sort of `SELECT o.order_id, o.day, p.name FROM products p JOIN orders o ON
/// p.id = o.product_id ORDER BY o.day DESC, o.order_id`, products broadcast.
fn ordered_join(mode: PartitionMode, join_type: JoinType) -> Arc<dyn ExecutionPlan> {
    let joined = join(products(), orders(), "id", "product_id", join_type, mode);
    let projected = project(joined, &["order_id", "day", "name"]);
    Arc::new(sort(
        projected,
        &[("day", true), ("order_id", false)],
        false,
    ))
}

fn text(plan: &Arc<dyn ExecutionPlan>) -> String {
    displayable(plan.as_ref()).indent(false).to_string()
}

async fn rows(plan: &Arc<dyn ExecutionPlan>) -> Vec<Vec<RecordBatch>> {
    collect_partitioned(Arc::clone(plan), Arc::new(TaskContext::default()))
        .await
        .expect("execute")
}

/// Each partition's rows as one batch.
fn partitions(batches: Vec<Vec<RecordBatch>>) -> Vec<RecordBatch> {
    batches
        .into_iter()
        .map(|partition| {
            let schema = partition[0].schema();
            datafusion::arrow::compute::concat_batches(&schema, &partition).expect("concat")
        })
        .collect()
}

#[tokio::test]
async fn a_sort_of_a_broadcast_joins_probe_columns_runs_below_the_join_with_the_same_answer() {
    let plan = ordered_join(PartitionMode::CollectLeft, JoinType::Inner);
    let (presorted, moves) = presort_below_joins(Arc::clone(&plan)).expect("presort");
    let shown = text(&presorted);
    let lines: Vec<&str> = shown.lines().collect();
    assert!(lines[0].starts_with("ProjectionExec"), "{shown}");
    assert!(
        lines[1].starts_with("  HashJoinExec: mode=CollectLeft"),
        "{shown}"
    );
    assert!(
        lines[3].starts_with("    SortExec: expr=[day@2 DESC NULLS LAST, order_id@0 ASC NULLS LAST], preserve_partitioning=[true]"),
        "{shown}"
    );
    assert_eq!(shown.matches("SortExec").count(), 1, "{shown}");
    assert_eq!(presorted.output_ordering(), plan.output_ordering());
    // The sort ran at position 3 (projection, join, products before it); planned at 0.
    assert_eq!(
        moves,
        vec![Moved {
            runs_at: 3,
            planned_at: 0
        }]
    );
    let expected = partitions(rows(&plan).await);
    let got = partitions(rows(&presorted).await);
    assert_eq!(got, expected);
    // Product 9 matches nothing: the join drops those orders, after the sort now.
    let matched = (0..80).filter(|id| id % 7 != 0).count();
    assert_eq!(
        expected.iter().map(RecordBatch::num_rows).sum::<usize>(),
        matched
    );
}

#[tokio::test]
async fn the_sort_goes_below_the_deepest_broadcast_join_its_keys_pass() {
    // Days (a second build side) joined to the orders, then the products to that.
    let schema = Arc::new(Schema::new(vec![Field::new("d", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(Int64Array::from((0..11).collect::<Vec<i64>>()))],
    )
    .expect("test batch");
    let days = MemorySourceConfig::try_new_exec(&[vec![batch]], schema, None).expect("days");
    let inner = join(
        days,
        orders(),
        "d",
        "day",
        JoinType::Inner,
        PartitionMode::CollectLeft,
    );
    let outer = join(
        products(),
        inner,
        "id",
        "product_id",
        JoinType::Inner,
        PartitionMode::CollectLeft,
    );
    let projected = project(outer, &["order_id", "day", "name"]);
    let plan: Arc<dyn ExecutionPlan> = Arc::new(sort(
        projected,
        &[("day", true), ("order_id", false)],
        false,
    ));
    let (presorted, moves) = presort_below_joins(Arc::clone(&plan)).expect("presort");
    let shown = text(&presorted);
    let sort_line = shown
        .lines()
        .position(|l| l.contains("SortExec"))
        .expect("sort");
    let scan_of_orders = shown
        .lines()
        .position(|l| l.contains("DataSourceExec") && l.contains("partitions=2"))
        .expect("orders");
    assert_eq!(sort_line + 1, scan_of_orders, "{shown}");
    assert_eq!(moves.len(), 1);
    assert_eq!(
        partitions(rows(&presorted).await),
        partitions(rows(&plan).await)
    );
}

#[test]
fn sorts_it_cannot_move_are_left_where_they_are() {
    let unchanged = |plan: Arc<dyn ExecutionPlan>, why: &str| {
        let before = text(&plan);
        let (after, moves) = presort_below_joins(plan).expect("presort");
        assert_eq!(text(&after), before, "{why}");
        assert!(moves.is_empty(), "{why}");
    };
    unchanged(
        ordered_join(PartitionMode::Partitioned, JoinType::Inner),
        "a partitioned join",
    );
    unchanged(
        ordered_join(PartitionMode::CollectLeft, JoinType::Left),
        "a left join emits unmatched build rows at the end",
    );
    let joined = || {
        project(
            join(
                products(),
                orders(),
                "id",
                "product_id",
                JoinType::Inner,
                PartitionMode::CollectLeft,
            ),
            &["order_id", "day", "name"],
        )
    };
    unchanged(
        Arc::new(sort(joined(), &[("day", true), ("name", false)], false)),
        "a key from the build side",
    );
    unchanged(
        Arc::new(sort(joined(), &[("day", true)], true)),
        "a sort merging the partitions into one",
    );
    unchanged(
        Arc::new(sort(joined(), &[("day", true)], false).with_fetch(Some(3))),
        "a top-k",
    );
    unchanged(
        Arc::new(sort(orders(), &[("day", true)], false)),
        "no join below",
    );
}

#[test]
fn metrics_are_reported_in_the_order_of_the_plan_the_scheduler_has() {
    /// Each operator with metrics, by name, in pre-order: what the task's metrics are.
    fn operators(plan: &Arc<dyn ExecutionPlan>, names: &mut Vec<String>) {
        if plan.metrics().is_some() {
            names.push(plan.name().to_owned());
        }
        plan.children()
            .into_iter()
            .for_each(|c| operators(c, names));
    }
    /// A metrics set standing for the operator named `name`, with `rows` output rows.
    fn set(name: &str, rows: usize) -> MetricsSet {
        let mut set = MetricsSet::new();
        let count = Count::new();
        count.add(rows);
        set.push(Arc::new(Metric::new(
            MetricValue::Count {
                name: name.to_owned().into(),
                count,
            },
            None,
        )));
        let output = Count::new();
        output.add(rows);
        set.push(Arc::new(Metric::new(MetricValue::OutputRows(output), None)));
        set
    }
    let plan = ordered_join(PartitionMode::CollectLeft, JoinType::Inner);
    let mut planned = Vec::new();
    operators(&plan, &mut planned);
    let (presorted, moves) = presort_below_joins(plan).expect("presort");
    let mut ran = Vec::new();
    operators(&presorted, &mut ran);
    assert_ne!(ran, planned);
    let reported = planned_order(ran.iter().map(|name| set(name, 80)).collect(), &moves);
    let names: Vec<String> = reported
        .iter()
        .map(|s| {
            s.iter()
                .find_map(|m| match m.value() {
                    MetricValue::Count { name, .. } if name != PRESORTED_ROWS => {
                        Some(name.to_string())
                    }
                    _ => None,
                })
                .expect("name")
        })
        .collect();
    assert_eq!(names, planned);
    // The sort's set says it sorted the probe rows below the join.
    assert_eq!(
        reported[0]
            .sum_by_name(PRESORTED_ROWS)
            .map(|v| v.as_usize()),
        Some(80)
    );
    assert!(
        reported[1..]
            .iter()
            .all(|s| s.sum_by_name(PRESORTED_ROWS).is_none())
    );
}
