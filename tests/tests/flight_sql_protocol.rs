//! What the Flight SQL JDBC driver and ADBC require of the server (../shared/FLIGHTSQL.md),
//! checked on what the server actually sends: the JDBC driver cannot run here.

use std::sync::Arc;

use arrow::datatypes::{DataType, Schema};
use arrow::ipc::{MessageHeader, root_as_message};
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetSqlInfo,
    CommandGetTableTypes, CommandGetTables, SqlInfo,
};
use arrow_flight::{FlightInfo, Ticket};
use futures::TryStreamExt;
use tonic::transport::Channel;
use tributary_connector::{Catalogs, ConnectorRegistry, Properties};
use tributary_tests::{connect, free_port, query, start_cluster};

fn catalogs() -> Catalogs {
    let registry =
        ConnectorRegistry::new().register(Arc::new(tributary_connector_tpch::TpchConnectorFactory));
    let mut catalogs = Catalogs::default();
    let props = Properties::from_pairs(
        "tpch.properties",
        [
            ("connector.name", "tpch"),
            ("tpch.column-naming", "STANDARD"),
        ],
    );
    catalogs.insert("tpch", registry.create("tpch", &props).expect("tpch"));
    catalogs
}

fn info_schema(info: &FlightInfo) -> Schema {
    info.clone().try_decode_schema().expect("FlightInfo schema")
}

/// Reads every endpoint's raw FlightData, checking each message on the way.
async fn fetch_checked(client: &mut FlightSqlServiceClient<Channel>, info: &FlightInfo) -> usize {
    let announced = info_schema(info);
    let mut rows = 0;
    for endpoint in &info.endpoint {
        assert!(
            endpoint.location.is_empty(),
            "results are fetched on the same connection"
        );
        let ticket = endpoint.ticket.clone().expect("ticket");
        let mut flight = client.inner_mut().clone();
        let mut request = tonic::Request::new(ticket);
        if let Some(token) = client.token() {
            request.metadata_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("header"),
            );
        }
        let data: Vec<_> = flight
            .do_get(request)
            .await
            .expect("do_get")
            .into_inner()
            .try_collect()
            .await
            .expect("stream");
        for message in &data {
            let header = root_as_message(&message.data_header).expect("IPC message");
            if header.header_type() == MessageHeader::RecordBatch {
                let batch = header
                    .header_as_record_batch()
                    .expect("record batch header");
                assert!(
                    batch.compression().is_none(),
                    "JDBC cannot read compressed IPC"
                );
            }
            assert_ne!(
                header.header_type(),
                MessageHeader::DictionaryBatch,
                "no dictionaries towards JDBC"
            );
        }
        let stream = FlightRecordBatchStream::new_from_flight_data(futures::stream::iter(
            data.into_iter().map(Ok),
        ));
        let batches: Vec<_> = stream.try_collect().await.expect("decode");
        for batch in &batches {
            assert_eq!(
                batch.schema().as_ref(),
                &announced,
                "every stream's schema equals FlightInfo.schema"
            );
            for field in batch.schema().fields() {
                assert!(
                    !matches!(
                        field.data_type(),
                        DataType::Utf8View | DataType::BinaryView | DataType::Dictionary(..)
                    ),
                    "{field}"
                );
            }
            rows += batch.num_rows();
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_sends_what_jdbc_and_adbc_require() {
    let url = start_cluster(catalogs(), 2, 2, None).await;
    let mut client = connect(&url, "jdbc", "secret").await;
    assert!(
        client.token().is_some(),
        "handshake answers with a bearer token"
    );

    // Results: ordered, uncompressed, schema as announced, across several endpoints.
    let info = client.execute("SELECT l_orderkey, l_comment FROM tpch.tiny.lineitem ORDER BY l_orderkey, l_linenumber".into(), None).await.expect("query");
    assert!(info.ordered);
    assert_eq!(fetch_checked(&mut client, &info).await, 60_175);
    // No row count when announced as its final stage started (streaming_results); a job this
    // small may have finished before.
    assert!(
        matches!(info.total_records, -1 | 60_175),
        "{}",
        info.total_records
    );
    let info = client
        .execute(
            "SELECT o_orderstatus, count(*) FROM tpch.tiny.orders GROUP BY o_orderstatus".into(),
            None,
        )
        .await
        .expect("query");
    assert_eq!(fetch_checked(&mut client, &info).await, 3);

    // Prepared statements: a SELECT reports its schema at prepare time, parameters are typed.
    let mut prepared = client
        .prepare(
            "SELECT n_name FROM tpch.tiny.nation WHERE n_nationkey = ?".into(),
            None,
        )
        .await
        .expect("prepare");
    let dataset = prepared.dataset_schema().expect("dataset schema").clone();
    assert_eq!(dataset.fields().len(), 1);
    let parameters = prepared
        .parameter_schema()
        .expect("parameter schema")
        .clone();
    assert_eq!(parameters.fields().len(), 1);
    assert!(parameters.field(0).is_nullable());
    assert_ne!(parameters.field(0).data_type(), &DataType::Null);
    let params = arrow::record_batch::RecordBatch::try_new(
        Arc::new(parameters.clone()),
        vec![Arc::new(arrow::array::Int64Array::from(vec![3]))],
    )
    .expect("params");
    prepared.set_parameters(params).expect("bind");
    let info = prepared.execute().await.expect("execute prepared");
    assert_eq!(fetch_checked(&mut client, &info).await, 1);
    prepared.close().await.expect("close");
    // A statement without rows has an empty dataset schema (JDBC then treats it as an update).
    let mut set = client
        .prepare(
            "SET SESSION join_distribution_type = 'PARTITIONED'".into(),
            None,
        )
        .await
        .expect("prepare SET");
    assert!(set.dataset_schema().expect("schema").fields().is_empty());
    assert_eq!(set.execute_update().await.expect("update"), 0);

    // Metadata: every command answers, with exactly the schema it announces.
    let infos = [
        client.get_catalogs().await.expect("catalogs"),
        client
            .get_db_schemas(CommandGetDbSchemas {
                catalog: None,
                db_schema_filter_pattern: None,
            })
            .await
            .expect("schemas"),
        client
            .get_tables(CommandGetTables {
                catalog: Some("tpch".into()),
                db_schema_filter_pattern: Some("tiny".into()),
                table_name_filter_pattern: Some("nat%".into()),
                table_types: vec![],
                include_schema: true,
            })
            .await
            .expect("tables"),
        client.get_table_types().await.expect("table types"),
        client.get_sql_info(vec![]).await.expect("sql info"),
        client
            .get_primary_keys(CommandGetPrimaryKeys {
                catalog: Some("tpch".into()),
                db_schema: Some("tiny".into()),
                table: "nation".into(),
            })
            .await
            .expect("primary keys: empty, not an error"),
    ];
    for info in &infos {
        fetch_checked(&mut client, info).await;
    }
    assert_eq!(
        info_schema(&infos[0]),
        *CommandGetCatalogs {}.into_builder().schema()
    );
    assert_eq!(
        info_schema(&infos[3]),
        *CommandGetTableTypes {}.into_builder().schema()
    );
    let tables = read_all(&mut client, &infos[2]).await;
    assert_eq!(tables.num_rows(), 1, "tpch.tiny.nation only");

    // SqlInfo: the ids JDBC reads once, all present.
    let all: Vec<SqlInfo> = vec![
        SqlInfo::FlightSqlServerName,
        SqlInfo::FlightSqlServerVersion,
        SqlInfo::FlightSqlServerReadOnly,
    ];
    let info = client.get_sql_info(all).await.expect("sql info");
    assert_eq!(read_all(&mut client, &info).await.num_rows(), 3);
    let _ = CommandGetSqlInfo::default();

    // Errors map to status codes with usable messages.
    let err = client
        .execute("SELEC 1".into(), None)
        .await
        .expect_err("bad SQL");
    assert!(err.to_string().contains("line 1, column 1"), "{err}");
    let err = client
        .execute("SELECT * FROM tpch.tiny.nope".into(), None)
        .await
        .expect_err("unknown table");
    assert!(err.to_string().contains("nope"), "{err}");
    assert_eq!(
        query(&mut client, "SELECT count(*) FROM tpch.tiny.region").await[0].num_rows(),
        1
    );
}

async fn read_all(
    client: &mut FlightSqlServiceClient<Channel>,
    info: &FlightInfo,
) -> arrow::record_batch::RecordBatch {
    let mut batches = Vec::new();
    for endpoint in &info.endpoint {
        let ticket: Ticket = endpoint.ticket.clone().expect("ticket");
        batches.extend(
            client
                .do_get(ticket)
                .await
                .expect("do_get")
                .try_collect::<Vec<_>>()
                .await
                .expect("stream"),
        );
    }
    arrow::compute::concat_batches(&Arc::new(info_schema(info)), &batches).expect("concat")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn password_file_rejects_wrong_credentials() {
    let dir = std::env::temp_dir().join(format!("tributary-auth-test-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("passwords");
    std::fs::write(&file, "alice:wonderland\n").expect("write");
    let url = start_cluster(catalogs(), 1, 1, Some(file)).await;
    let mut client = connect(&url, "alice", "wonderland").await;
    assert_eq!(query(&mut client, "SELECT 1").await[0].num_rows(), 1);

    let channel = Channel::from_shared(url.clone())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut intruder = FlightSqlServiceClient::new(channel.clone());
    let err = intruder
        .handshake("alice", "guess")
        .await
        .expect_err("wrong password");
    assert!(
        err.to_string().contains("Unauthenticated")
            || err.to_string().contains("invalid credentials"),
        "{err}"
    );
    let mut anonymous = FlightSqlServiceClient::new(channel);
    let err = anonymous
        .execute("SELECT 1".into(), None)
        .await
        .expect_err("no credentials");
    assert!(err.to_string().contains("authentication required"), "{err}");
}

async fn show_session_value(client: &mut FlightSqlServiceClient<Channel>, name: &str) -> String {
    let batches = query(client, "SHOW SESSION").await;
    let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("concat");
    let names = batch
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .expect("names");
    let values = batch
        .column(1)
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .expect("values");
    (0..batch.num_rows())
        .find(|&i| names.value(i) == name)
        .map(|i| values.value(i).to_owned())
        .expect("property listed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cookies_give_sessions_to_clients_that_do_not_authenticate() {
    let url = start_cluster(catalogs(), 1, 2, None).await;
    // Wait for the cluster with an authenticated client, then use clients that never handshake.
    connect(&url, "probe", "x").await;
    let channel = Channel::from_shared(url.clone())
        .expect("url")
        .connect()
        .await
        .expect("connect");

    // A response to a request without the cookie sets one.
    let mut raw = arrow_flight::flight_service_client::FlightServiceClient::new(channel.clone());
    let response = raw
        .list_actions(arrow_flight::Empty {})
        .await
        .expect("list actions");
    let cookie = response
        .metadata()
        .get("set-cookie")
        .expect("set-cookie")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(cookie.starts_with("tributary_session="), "{cookie}");

    let mut a = FlightSqlServiceClient::new(channel.clone());
    a.set_header("cookie", "tributary_session=first");
    let mut b = FlightSqlServiceClient::new(channel);
    b.set_header("cookie", "tributary_session=second");
    query(&mut a, "SET SESSION join_distribution_type = 'BROADCAST'").await;
    assert_eq!(
        show_session_value(&mut a, "join_distribution_type").await,
        "BROADCAST"
    );
    assert_eq!(
        show_session_value(&mut b, "join_distribution_type").await,
        "AUTOMATIC"
    );
}
