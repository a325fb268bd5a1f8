//! I/O setup: the Kubernetes client, with timeouts and a tower layer that counts every API
//! request by verb for the summary.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, Result};
use kube::Client;
use kube::client::ClientBuilder;

use crate::report::ApiRequests;

/// Counts requests as they leave the client: GETs (gets and list pages) are reads, everything else
/// a write; also tracks the most writes ever in flight at once. kube's own retries of
/// 429/503/504 happen below this layer and are not counted again.
#[derive(Clone, Default)]
pub struct RequestCounter {
    reads: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
    writes_in_flight: Arc<AtomicU64>,
    max_writes_in_flight: Arc<AtomicU64>,
}

impl RequestCounter {
    pub fn snapshot(&self) -> ApiRequests {
        ApiRequests {
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            max_writes_in_flight: self.max_writes_in_flight.load(Ordering::Relaxed),
        }
    }
}

/// Decrements the in-flight count when a write's response (or error) arrives, or it is dropped.
struct InFlight(Arc<AtomicU64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S> tower::Layer<S> for RequestCounter {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            counter: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
    counter: RequestCounter,
}

impl<S, B> tower::Service<http::Request<B>> for Counted<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // Path and query only: names and selectors, never a body.
        tracing::debug!(method = %req.method(), path = req.uri().path(), query = req.uri().query().unwrap_or(""), "api request");
        if req.method() == http::Method::GET {
            self.counter.reads.fetch_add(1, Ordering::Relaxed);
            return Box::pin(self.inner.call(req));
        }
        let c = &self.counter;
        c.writes.fetch_add(1, Ordering::Relaxed);
        let now = c.writes_in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        c.max_writes_in_flight.fetch_max(now, Ordering::Relaxed);
        let guard = InFlight(c.writes_in_flight.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let out = fut.await;
            drop(guard);
            out
        })
    }
}

/// Builds a client from the kubeconfig or the in-cluster configuration, and returns the namespace
/// the configuration names (the Pod's own namespace in-cluster).
pub async fn connect(counter: &RequestCounter) -> Result<(Client, String)> {
    let mut config = kube::Config::infer()
        .await
        .context("no usable Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster service account)")?;
    // kube leaves the read timeout unset; a hung connection must not eat the whole run deadline.
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(30));
    config.write_timeout = Some(Duration::from_secs(30));
    let namespace = config.default_namespace.clone();
    let client = ClientBuilder::try_from(config)
        .context("building the Kubernetes client")?
        .with_layer(counter)
        .build();
    Ok((client, namespace))
}
