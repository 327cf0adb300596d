//! `tributary executor drain`: drains a running executor (or returns it to service) through
//! its HTTP state API, as Kubernetes' preStop hook does, and waits for it to exit.

use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct DrainArgs {
    /// The executor's HTTP port (its --http-port).
    #[arg(long, env = "TRIBUTARY_HTTP_PORT", default_value_t = 8081)]
    pub(crate) http_port: u16,
    /// The executor's HTTP address instead (default http://127.0.0.1:<http-port>).
    #[arg(long)]
    pub(crate) url: Option<String>,
    /// Return a draining executor to service instead.
    #[arg(long)]
    pub(crate) cancel: bool,
    /// Wait until the executor has exited.
    #[arg(long)]
    pub(crate) wait: bool,
    /// How long --wait waits, in seconds.
    #[arg(long, default_value_t = 600)]
    pub(crate) timeout_seconds: u64,
}

/// `tributary executor drain`: asks the executor's HTTP server to drain (or to stop
/// draining) and, with `--wait`, waits until it has exited.
pub(crate) async fn drain(args: DrainArgs) -> Result<(), String> {
    let base = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:{}", args.http_port));
    let url = format!("{}/v1/info/state", base.trim_end_matches('/'));
    let wanted = if args.cancel {
        "ACTIVE"
    } else {
        "SHUTTING_DOWN"
    };
    let client = reqwest::Client::new();
    let response = client
        .put(&url)
        .header("content-type", "application/json")
        .body(format!("\"{wanted}\""))
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot reach the executor at {url}: {} (an executor bound to another address \
                 takes --url http://<its bind host>:<its --http-port>)",
                tributary_telemetry::error_chain(&e)
            )
        })?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!("{url} refused {wanted}: {status} {}", text.trim()));
    }
    eprintln!("executor at {base}: {}", text.trim().trim_matches('"'));
    if !args.wait || args.cancel {
        return Ok(());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(args.timeout_seconds);
    loop {
        match client.get(&url).send().await {
            // Gone: the executor has exited.
            Err(e) if e.is_connect() => {
                eprintln!("executor at {base} has exited");
                return Ok(());
            }
            Ok(r) => {
                let state = r.text().await.unwrap_or_default();
                if state.trim().trim_matches('"') == "ACTIVE" {
                    return Err(format!("the drain of {base} was cancelled"));
                }
            }
            Err(_) => {}
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "{base} has not exited after {} s",
                args.timeout_seconds
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
