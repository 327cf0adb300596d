//! The scheduler's HTTP server: `/metrics` (Prometheus), Trino's `/v1/info`,
//! `/v1/info/state`, `/v1/query[/{id}]` (JSON; `DELETE` kills), the web UI under `/ui/`
//! (`ui.rs`, server-rendered HTML, no script or network needed) and `/healthz`, `/readyz`.

mod ui;

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use tributary_telemetry::{Health, encode_metrics, serve_http};

use crate::auth::Authenticator;
use crate::error::{Result, SchedulerError};
use crate::monitor::{KillOutcome, Monitor, now_ms};

/// Starts the HTTP server on `addr`; returns the bound address. With a password file, the UI
/// and `/v1/…` need the same basic credentials as Flight SQL (`/metrics`, `/healthz` and
/// `/readyz` stay open for Prometheus and probes: counts only, no SQL).
pub(crate) async fn start(
    addr: SocketAddr,
    monitor: Monitor,
    auth: Authenticator,
) -> Result<SocketAddr> {
    let protected = Router::new()
        .route("/", get(|| async { Redirect::temporary("/ui/") }))
        .route("/v1/info", get(info))
        .route("/v1/info/state", get(|| async { Json("ACTIVE") }))
        .route("/v1/node", get(nodes))
        .route("/v1/query", get(queries))
        .route("/v1/query/{id}", get(query).delete(kill))
        .route("/ui/", get(ui_queries))
        .route("/ui/query/{id}", get(ui_query))
        .route("/ui/executors", get(ui_executors))
        .layer(axum::middleware::from_fn(move |request, next| {
            authenticate(auth.clone(), request, next)
        }));
    let routes = protected
        .route("/metrics", get(metrics))
        .with_state(monitor);
    serve_http(addr, routes, Health::default())
        .await
        .map_err(|e| SchedulerError::Config(e.to_string()))
}

/// Lets a request through when no authentication is configured or its basic credentials or
/// JWT bearer token are valid; asks the browser for credentials otherwise.
async fn authenticate(
    auth: Authenticator,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !auth.required() {
        return next.run(request).await;
    }
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let valid = match header.strip_prefix("Bearer ") {
        Some(token) => auth.check_jwt(token.trim()).is_ok(),
        None => header.starts_with("Basic ") && auth.check_basic(header).is_ok(),
    };
    if valid {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"Tributary\"")],
        "authentication required\n",
    )
        .into_response()
}

async fn metrics(State(monitor): State<Monitor>) -> Response {
    monitor.refresh_gauges().await;
    match encode_metrics(&monitor.metrics.registry) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn info(State(monitor): State<Monitor>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "nodeVersion": { "version": env!("CARGO_PKG_VERSION") },
        "environment": "tributary",
        "coordinator": true,
        "starting": false,
        "uptime": format!("{:.2}s", (now_ms() - monitor.started_ms()) as f64 / 1000.0),
    }))
}

async fn nodes(State(monitor): State<Monitor>) -> Json<serde_json::Value> {
    Json(serde_json::json!(monitor.nodes().await))
}

/// Filters of the query list (`/v1/query?state=RUNNING&user=…&query=…`, and the UI's).
#[derive(Debug, Default, Deserialize)]
struct Filter {
    state: Option<String>,
    user: Option<String>,
    #[serde(alias = "q")]
    query: Option<String>,
}

impl Filter {
    fn keeps(&self, q: &crate::monitor::QueryInfo) -> bool {
        let state_ok = self
            .state
            .as_deref()
            .filter(|s| !s.is_empty())
            .is_none_or(|s| q.state.as_str().eq_ignore_ascii_case(s));
        let user_ok = self
            .user
            .as_deref()
            .filter(|s| !s.is_empty())
            .is_none_or(|u| q.user == u);
        let text_ok = self
            .query
            .as_deref()
            .filter(|s| !s.is_empty())
            .is_none_or(|t| {
                q.query.to_lowercase().contains(&t.to_lowercase()) || q.query_id.contains(t)
            });
        state_ok && user_ok && text_ok
    }
}

async fn queries(
    State(monitor): State<Monitor>,
    Query(filter): Query<Filter>,
) -> Json<serde_json::Value> {
    let list: Vec<serde_json::Value> = monitor
        .queries()
        .await
        .into_iter()
        .filter(|q| filter.keeps(q))
        .map(|mut q| {
            q.stages.clear();
            let elapsed = q.elapsed_ms();
            let mut value = serde_json::json!(q);
            value["elapsedMs"] = elapsed.into();
            value
        })
        .collect();
    Json(serde_json::Value::Array(list))
}

async fn query(State(monitor): State<Monitor>, Path(id): Path<String>) -> Response {
    match monitor.query(&id).await {
        Some(q) => {
            let tasks = monitor.query_tasks(&id).await;
            let elapsed = q.elapsed_ms();
            let mut value = serde_json::json!(q);
            value["elapsedMs"] = elapsed.into();
            value["tasks"] = serde_json::json!(tasks);
            Json(value).into_response()
        }
        None => (StatusCode::NOT_FOUND, format!("query {id} not found\n")).into_response(),
    }
}

async fn kill(State(monitor): State<Monitor>, Path(id): Path<String>) -> Response {
    // Trino's DELETE /v1/query/{id} cancels (USER_CANCELED); kill_query kills.
    match monitor
        .queries
        .kill(&id, "cancelled through the HTTP API", false)
    {
        KillOutcome::Killed => StatusCode::NO_CONTENT.into_response(),
        KillOutcome::NotRunning => (
            StatusCode::NOT_FOUND,
            format!("query {id} is not running\n"),
        )
            .into_response(),
        KillOutcome::Committing => (
            StatusCode::CONFLICT,
            format!("query {id} is committing its write and can no longer be cancelled\n"),
        )
            .into_response(),
    }
}

async fn ui_queries(State(monitor): State<Monitor>, Query(filter): Query<Filter>) -> Html<String> {
    let queries: Vec<_> = monitor
        .queries()
        .await
        .into_iter()
        .filter(|q| filter.keeps(q))
        .collect();
    let nodes = monitor.nodes().await;
    Html(ui::queries_page(
        &queries,
        &nodes,
        filter.state.as_deref().unwrap_or(""),
        filter.user.as_deref().unwrap_or(""),
        filter.query.as_deref().unwrap_or(""),
    ))
}

async fn ui_query(State(monitor): State<Monitor>, Path(id): Path<String>) -> Response {
    let Some(query) = monitor.query(&id).await else {
        return (StatusCode::NOT_FOUND, Html(ui::not_found(&id))).into_response();
    };
    let tasks = monitor.query_tasks(&id).await;
    Html(ui::query_page(&query, &tasks)).into_response()
}

async fn ui_executors(State(monitor): State<Monitor>) -> Html<String> {
    Html(ui::executors_page(&monitor.nodes().await))
}
