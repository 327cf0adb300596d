//! Sessions carried by a cookie, for clients that never authenticate: every response to a
//! request without the `tributary_session` cookie sets one. The JDBC driver keeps and sends
//! cookies always, ADBC with `adbc.flight.sql.rpc.with_cookie_middleware=true`; such a client
//! then has a session of its own instead of the shared anonymous one.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

/// Name of the session cookie.
pub(crate) const SESSION_COOKIE: &str = "tributary_session";

/// The session id a request's `cookie` headers carry.
pub(crate) fn session_cookie(headers: &tonic::metadata::MetadataMap) -> Option<String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// Sets the session cookie on responses to requests that did not send one.
#[derive(Debug, Clone, Default)]
pub(crate) struct CookieSessionLayer;

impl<S> Layer<S> for CookieSessionLayer {
    type Service = CookieSession<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CookieSession { inner }
    }
}

/// The service [`CookieSessionLayer`] wraps around the Flight service.
#[derive(Debug, Clone)]
pub(crate) struct CookieSession<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for CookieSession<S>
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let has_cookie = request
            .headers()
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains(&format!("{SESSION_COOKIE}=")));
        // The ready service handles this call; a fresh clone waits for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let mut response = inner.call(request).await?;
            if !has_cookie {
                let cookie = format!(
                    "{SESSION_COOKIE}={}; Path=/; HttpOnly",
                    uuid::Uuid::new_v4().simple()
                );
                if let Ok(value) = HeaderValue::from_str(&cookie) {
                    response.headers_mut().append("set-cookie", value);
                }
            }
            Ok(response)
        })
    }
}
