//! Test harness: a real Tributary cluster inside the test process (the embedded Ballista
//! scheduler with the Flight SQL service, and Ballista executors with their own Flight and
//! gRPC servers), reached over loopback like any client would.

use std::path::PathBuf;
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use tonic::transport::Channel;
use tributary_connector::Catalogs;
use tributary_executor::{ExecutorOptions, run_executor};
use tributary_scheduler::{SchedulerOptions, start_scheduler};

/// A port free right now on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts a scheduler and `executors` executors (each with `vcores` task slots); returns the
/// Flight SQL URL.
pub async fn start_cluster(
    catalogs: Catalogs,
    executors: usize,
    vcores: usize,
    password_file: Option<PathBuf>,
) -> String {
    let scheduler_port = free_port();
    let flight_port = free_port();
    let options = SchedulerOptions {
        flight_sql_addr: format!("127.0.0.1:{flight_port}").parse().expect("addr"),
        scheduler_addr: format!("127.0.0.1:{scheduler_port}").parse().expect("addr"),
        external_host: "127.0.0.1".into(),
        authenticator: password_file.map(|file| {
            tributary_scheduler::Authenticator::from_password_file(&file).expect("password file")
        }),
        result_ttl_seconds: 600,
        client_timeout: tributary_scheduler::CLIENT_TIMEOUT,
        session_defaults: Default::default(),
        results_from_executors: false,
        http_addr: None,
        http_optional: false,
        history: None,
        executor_timeout_seconds: 15,
        retry: tributary_scheduler::RetryPolicy::Task { attempts: 4 },
        resource_groups: None,
        access_control: None,
        flight_sql_tls: None,
        internal: Default::default(),
        local_executors: Vec::new(),
    };
    start_scheduler(options, catalogs.clone())
        .await
        .expect("scheduler");
    for _ in 0..executors {
        let options = ExecutorOptions {
            scheduler: format!("127.0.0.1:{scheduler_port}"),
            bind_host: "127.0.0.1".into(),
            external_host: None,
            flight_port: free_port(),
            grpc_port: free_port(),
            work_dir: None,
            vcores,
            job_data_ttl_seconds: 600,
            http_addr: None,
            drain: None,
            drain_timeout: std::time::Duration::ZERO,
            memory: Default::default(),
            internal: Default::default(),
        };
        let catalogs = catalogs.clone();
        tokio::spawn(async move { run_executor(options, catalogs).await });
    }
    format!("http://127.0.0.1:{flight_port}")
}

/// Connects, authenticates and waits until the cluster answers a query.
pub async fn connect(url: &str, user: &str, password: &str) -> FlightSqlServiceClient<Channel> {
    for _ in 0..150 {
        if let Ok(channel) = Channel::from_shared(url.to_owned())
            .expect("url")
            .connect()
            .await
        {
            let mut client = FlightSqlServiceClient::new(channel);
            client.handshake(user, password).await.expect("handshake");
            if client.execute("SELECT 1".into(), None).await.is_ok() {
                return client;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("cluster did not start at {url}");
}

/// Runs a query and reads every endpoint, in order.
pub async fn query(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> Vec<RecordBatch> {
    let info = client
        .execute(sql.to_owned(), None)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("ticket");
        let stream = client.do_get(ticket).await.expect("do_get");
        batches.extend(stream.try_collect::<Vec<_>>().await.expect("stream"));
    }
    batches
}
