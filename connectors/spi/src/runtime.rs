//! A catalog's own small tokio runtime. Connectors run their source I/O on it, whichever
//! runtime calls in (the scheduler's, an executor's, a test's), so connection pools and
//! clients tied to a runtime stay valid, and DataFusion's synchronous catalog methods
//! (`schema_names`, `register_table`, …) can wait for I/O without blocking the runtime they
//! are called from.

use std::future::Future;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::{JoinError, JoinHandle};

/// A runtime owned by one catalog; it may be dropped anywhere (also inside another runtime).
#[derive(Debug)]
pub struct CatalogRuntime {
    runtime: Option<Runtime>,
    handle: Handle,
}

impl CatalogRuntime {
    /// A runtime with `threads` worker threads named after the catalog.
    pub fn new(name: &str, threads: usize) -> std::io::Result<Self> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(name.to_owned())
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        Ok(Self {
            runtime: Some(runtime),
            handle,
        })
    }

    /// The runtime's handle (to enter it while building clients tied to it).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs a future on the catalog's runtime and waits for it asynchronously.
    pub async fn run<T, F>(&self, fut: F) -> Result<T, JoinError>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.handle.spawn(fut).await
    }

    /// Runs a future on the catalog's runtime from synchronous code.
    pub fn block_on<T, F>(&self, fut: F) -> Result<T, JoinError>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        futures::executor::block_on(self.handle.spawn(fut))
    }

    /// Spawns a task on the catalog's runtime.
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(fut)
    }
}

impl Drop for CatalogRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
