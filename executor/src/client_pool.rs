//! Connections to other executors for shuffle reads, kept between tasks. Ballista's own pool
//! (`ballista_executor::client_pool`) is private, and wrapping its execution engine
//! (`observe.rs`) means building that engine ourselves, so this is the same idea: idle
//! clients per (host, port, config), most recently used first, dropped after `idle_timeout`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ballista_core::client::BallistaClient;
use ballista_core::client_pool::{BallistaClientPool, PooledClient};
use ballista_core::error::Result;
use ballista_core::extension::BallistaConfigGrpcEndpoint;
use ballista_core::utils::GrpcClientConfig;

type Key = (String, u16, GrpcClientConfig);
type Idle = Arc<Mutex<HashMap<Key, VecDeque<(BallistaClient, Instant)>>>>;

/// A pool of executor clients.
#[derive(Clone)]
pub(crate) struct ClientPool {
    idle: Idle,
    idle_timeout: Duration,
    /// Tributary's endpoint settings (internal TLS and secret), before any a session asks for.
    endpoint: Option<Arc<BallistaConfigGrpcEndpoint>>,
}

impl std::fmt::Debug for ClientPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientPool").finish_non_exhaustive()
    }
}

impl ClientPool {
    /// A pool evicting clients idle longer than `idle_timeout`, on every acquire and from a
    /// background task (so connections to executors that went away are closed too).
    pub(crate) fn with_eviction(
        idle_timeout: Duration,
        endpoint: Option<Arc<BallistaConfigGrpcEndpoint>>,
    ) -> Self {
        let pool = Self {
            idle: Idle::default(),
            idle_timeout,
            endpoint,
        };
        let weak = Arc::downgrade(&pool.idle);
        let interval = Duration::from_secs((idle_timeout.as_secs() / 3).max(15));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            loop {
                ticker.tick().await;
                let Some(idle) = weak.upgrade() else { break };
                ClientPool {
                    idle,
                    idle_timeout,
                    endpoint: None,
                }
                .evict();
            }
        });
        pool
    }

    fn evict(&self) {
        let deadline = Instant::now().checked_sub(self.idle_timeout);
        let Some(deadline) = deadline else { return };
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|_, clients| {
            while clients.front().is_some_and(|(_, since)| *since < deadline) {
                clients.pop_front();
            }
            !clients.is_empty()
        });
    }
}

#[async_trait::async_trait]
impl BallistaClientPool for ClientPool {
    async fn acquire(
        &self,
        host: &str,
        port: u16,
        config: &GrpcClientConfig,
        customize_endpoint: Option<Arc<BallistaConfigGrpcEndpoint>>,
    ) -> Result<PooledClient> {
        self.evict();
        let key = (host.to_owned(), port, config.clone());
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&key)
            .and_then(VecDeque::pop_back)
            .map(|(client, _)| client);
        let client = match idle {
            Some(client) => client,
            None => {
                BallistaClient::try_new(
                    host,
                    port,
                    config.max_message_size,
                    config.use_tls,
                    self.endpoint.clone().or(customize_endpoint),
                    config.io_retries_times,
                    config.io_retry_wait_time_ms,
                    config.initial_connection_window_size,
                    config.initial_stream_window_size,
                )
                .await?
            }
        };
        let pool = Arc::clone(&self.idle);
        Ok(PooledClient::new(
            client,
            Box::new(move |client| {
                pool.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(key)
                    .or_default()
                    .push_back((client, Instant::now()));
            }),
        ))
    }

    async fn evict_idle(&self) {
        self.evict();
    }
}
