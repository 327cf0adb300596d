//! Every split of a multi-partition connector scan is read exactly once per query, across
//! several executors and several tasks per stage, even when a task fails and is retried.
//!
//! A real cluster in this process: the embedded Ballista scheduler plus two Ballista
//! executors (each with its own Flight and gRPC servers), queried over Flight SQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Decimal128Type, Int64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::CatalogProvider;
use datafusion::error::DataFusionError;
use futures::{StreamExt, TryStreamExt};
use tributary_connector::{
    Catalogs, Connector, ConnectorFactory, ConnectorRegistry, Properties,
    Result as ConnectorResult, SplitReader, SplitStream,
};
use tributary_connector_tpch::{ColumnNaming, TpchReader, TpchTable};
use tributary_tests::{connect, query, start_cluster};

/// Reads that failed on purpose.
static INJECTED_FAILURES: AtomicUsize = AtomicUsize::new(0);
/// Splits opened, by every executor, all queries together.
static SPLITS_OPENED: AtomicUsize = AtomicUsize::new(0);

/// A tpch catalog whose split `orders/3-of-8` fails once with an I/O error, the kind of
/// failure Ballista retries.
#[derive(Debug)]
struct FlakyFactory;

impl ConnectorFactory for FlakyFactory {
    fn name(&self) -> &'static str {
        "flaky"
    }

    fn create(
        &self,
        catalog: &str,
        properties: &Properties,
    ) -> ConnectorResult<Arc<dyn Connector>> {
        let inner = tributary_connector_tpch::TpchConnectorFactory
            .create(catalog, &with_connector(properties, "tpch"))?;
        Ok(Arc::new(Flaky { inner }))
    }
}

fn with_connector(properties: &Properties, name: &str) -> Properties {
    let pairs: Vec<(String, String)> = properties
        .keys()
        .map(|k| {
            (
                k.to_owned(),
                if k == "connector.name" {
                    name.to_owned()
                } else {
                    properties.get(k).unwrap_or_default().to_owned()
                },
            )
        })
        .collect();
    Properties::from_pairs(
        properties.path(),
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )
}

#[derive(Debug)]
struct Flaky {
    inner: Arc<dyn Connector>,
}

impl Connector for Flaky {
    fn catalog_provider(&self) -> Arc<dyn CatalogProvider> {
        Arc::new(FlakyCatalog(self.inner.catalog_provider()))
    }

    fn decode_reader(&self, table: &[u8]) -> ConnectorResult<Arc<dyn SplitReader>> {
        let reader =
            TpchReader::decode(table).map_err(tributary_connector::ConnectorError::from)?;
        Ok(Arc::new(FlakyReader(reader)))
    }
}

/// The catalog is the tpch one: scans are planned by tpch, and executors decode them
/// through `Flaky::decode_reader`, which wraps the reader.
#[derive(Debug)]
struct FlakyCatalog(Arc<dyn CatalogProvider>);

impl CatalogProvider for FlakyCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.0.schema_names()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn datafusion::catalog::SchemaProvider>> {
        self.0.schema(name)
    }
}

#[derive(Debug)]
struct FlakyReader(TpchReader);

impl SplitReader for FlakyReader {
    fn kind(&self) -> &'static str {
        "flaky"
    }

    fn table_schema(&self) -> SchemaRef {
        self.0.table_schema()
    }

    fn encode_table(&self) -> ConnectorResult<Vec<u8>> {
        self.0.encode_table()
    }

    fn read(
        &self,
        split: &str,
        projection: &[usize],
        batch_size: usize,
        limit: Option<usize>,
    ) -> ConnectorResult<SplitStream> {
        SPLITS_OPENED.fetch_add(1, Ordering::SeqCst);
        if split == "orders/3-of-8" && INJECTED_FAILURES.fetch_add(1, Ordering::SeqCst) == 0 {
            let error = DataFusionError::IoError(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected: source went away",
            ));
            return Ok(futures::stream::iter([Err(error)]).boxed());
        }
        self.0.read(split, projection, batch_size, limit)
    }
}

fn catalogs() -> Catalogs {
    let registry = ConnectorRegistry::new()
        .register(Arc::new(tributary_connector_tpch::TpchConnectorFactory))
        .register(Arc::new(FlakyFactory));
    let mut catalogs = Catalogs::default();
    let tpch = [
        ("connector.name", "tpch"),
        ("tpch.column-naming", "STANDARD"),
        ("tpch.splits-per-table", "8"),
        ("tpch.min-rows-per-split", "100"),
    ];
    let flaky = [
        ("connector.name", "flaky"),
        ("tpch.column-naming", "STANDARD"),
        ("tpch.splits-per-table", "8"),
        ("tpch.min-rows-per-split", "100"),
    ];
    catalogs.insert(
        "tpch",
        registry
            .create("tpch", &Properties::from_pairs("tpch.properties", tpch))
            .expect("tpch"),
    );
    catalogs.insert(
        "flaky",
        registry
            .create("flaky", &Properties::from_pairs("flaky.properties", flaky))
            .expect("flaky"),
    );
    catalogs
}

/// count(*) and sum(o_totalprice) of tpch.tiny.orders, computed here from the generator.
async fn expected_orders() -> (i64, i128) {
    let reader = TpchReader::new(TpchTable::Orders, 0.01, ColumnNaming::Standard);
    let batches: Vec<RecordBatch> = reader
        .read("orders/1-of-1", &[3], 8192, None)
        .expect("read")
        .try_collect()
        .await
        .expect("batches");
    let rows = batches.iter().map(RecordBatch::num_rows).sum::<usize>() as i64;
    let sum = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_primitive::<Decimal128Type>()
                .values()
                .to_vec()
        })
        .sum();
    (rows, sum)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_split_is_read_exactly_once_across_executors_and_retries() {
    // Two slots each: a stage of 8 partitions runs as several tasks on both executors.
    let url = start_cluster(catalogs(), 2, 2, None).await;
    let mut client = connect(&url, "test", "test").await;
    let (rows, sum) = expected_orders().await;
    assert_eq!(rows, 15_000);

    let before = SPLITS_OPENED.load(Ordering::SeqCst);
    let batches = query(
        &mut client,
        "SELECT count(*), sum(o_totalprice) FROM flaky.tiny.orders",
    )
    .await;
    let batch = &batches[0];
    assert_eq!(batch.column(0).as_primitive::<Int64Type>().value(0), rows);
    assert_eq!(
        batch.column(1).as_primitive::<Decimal128Type>().value(0),
        sum
    );
    assert_eq!(
        INJECTED_FAILURES.load(Ordering::SeqCst),
        2,
        "the failing split was read again after the injected failure"
    );
    assert!(
        SPLITS_OPENED.load(Ordering::SeqCst) - before >= 9,
        "8 splits plus at least one retried"
    );

    // Shapes that put scans in several stages: group by, self-join, union, limit, subquery.
    let checks = [
        (
            "SELECT count(*) FROM (SELECT o_orderstatus, count(*) c FROM flaky.tiny.orders GROUP BY o_orderstatus) t",
            3,
        ),
        (
            "SELECT sum(c) FROM (SELECT o_orderstatus, count(*) c FROM flaky.tiny.orders GROUP BY o_orderstatus) t",
            rows,
        ),
        (
            "SELECT count(*) FROM flaky.tiny.orders a JOIN tpch.tiny.orders b ON a.o_orderkey = b.o_orderkey",
            rows,
        ),
        (
            "SELECT count(*) FROM (SELECT o_orderkey FROM flaky.tiny.orders UNION ALL SELECT o_orderkey FROM tpch.tiny.orders) u",
            2 * rows,
        ),
        (
            "SELECT count(*) FROM (SELECT * FROM flaky.tiny.orders LIMIT 100) l",
            100,
        ),
        (
            "SELECT count(*) FROM flaky.tiny.orders WHERE o_totalprice > (SELECT avg(o_totalprice) FROM tpch.tiny.orders) OR true",
            rows,
        ),
        ("SELECT count(*) FROM tpch.tiny.lineitem", 60_175),
    ];
    for (sql, expected) in checks {
        let batches = query(&mut client, sql).await;
        assert_eq!(
            batches[0].column(0).as_primitive::<Int64Type>().value(0),
            expected,
            "{sql}"
        );
    }

    // Sums are where duplicated splits show (counts of distinct values hide them).
    let batches = query(
        &mut client,
        "SELECT sum(l_extendedprice), count(*) FROM tpch.tiny.lineitem",
    )
    .await;
    let first = batches[0]
        .column(0)
        .as_primitive::<Decimal128Type>()
        .value(0);
    for _ in 0..3 {
        let again = query(
            &mut client,
            "SELECT sum(l_extendedprice), count(*) FROM tpch.tiny.lineitem",
        )
        .await;
        assert_eq!(
            again[0].column(0).as_primitive::<Decimal128Type>().value(0),
            first,
            "sums are stable from run to run"
        );
        assert!(!again[0].column(0).is_null(0));
    }
}
