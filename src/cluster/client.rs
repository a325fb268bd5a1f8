//! I/O setup: the Kubernetes client, with timeouts and a tower layer that counts every API
//! request by verb, and the response bytes read, for the summary.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use kube::Client;
use kube::client::ClientBuilder;

use crate::core::model::ApiRequests;

/// Counts requests as they leave the client: GETs (gets and list pages) are reads, everything else
/// a write; also tracks the most writes ever in flight at once. kube's own retries of
/// 429/503/504 happen below this layer and are not counted again; the Lease's requests are
/// not counted (the run's own bookkeeping).
#[derive(Clone, Default)]
pub struct RequestCounter {
    reads: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
    writes_in_flight: Arc<AtomicU64>,
    max_writes_in_flight: Arc<AtomicU64>,
    bytes_read: Arc<AtomicU64>,
}

impl RequestCounter {
    pub fn snapshot(&self) -> ApiRequests {
        ApiRequests {
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            max_writes_in_flight: self.max_writes_in_flight.load(Ordering::Relaxed),
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
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

/// A response body that adds the length of every data frame to the counter as it is read.
pub struct CountedBody<B> {
    inner: Pin<Box<B>>,
    bytes: Arc<AtomicU64>,
}

impl<B: Body<Data = Bytes>> Body for CountedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = self.inner.as_mut().poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<S, ReqB, B> tower::Service<http::Request<ReqB>> for Counted<S>
where
    S: tower::Service<http::Request<ReqB>, Response = http::Response<B>>,
    S::Future: Send + 'static,
    B: Body<Data = Bytes>,
{
    type Response = http::Response<CountedBody<B>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqB>) -> Self::Future {
        // Path and query only: names and selectors, never a body.
        tracing::debug!(method = %req.method(), path = req.uri().path(), query = req.uri().query().unwrap_or(""), "api request");
        // The Lease (one run at a time) is the run's own bookkeeping, a constant 2-3 requests:
        // not counted, so a run with nothing to do still reports zero writes.
        if req.uri().path().starts_with("/apis/coordination.k8s.io/") {
            let bytes = Arc::new(AtomicU64::new(0));
            let fut = self.inner.call(req);
            return Box::pin(async move {
                fut.await.map(|resp| {
                    resp.map(|b| CountedBody {
                        inner: Box::pin(b),
                        bytes,
                    })
                })
            });
        }
        let c = &self.counter;
        let bytes = c.bytes_read.clone();
        let count = move |resp: http::Response<B>| {
            resp.map(|b| CountedBody {
                inner: Box::pin(b),
                bytes,
            })
        };
        if req.method() == http::Method::GET {
            c.reads.fetch_add(1, Ordering::Relaxed);
            let fut = self.inner.call(req);
            return Box::pin(async move { fut.await.map(count) });
        }
        c.writes.fetch_add(1, Ordering::Relaxed);
        let now = c.writes_in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        c.max_writes_in_flight.fetch_max(now, Ordering::Relaxed);
        let guard = InFlight(c.writes_in_flight.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let out = fut.await;
            drop(guard);
            out.map(count)
        })
    }
}

/// A client from the kubeconfig or the in-cluster configuration, the namespace the configuration
/// names (the Pod's own namespace in-cluster), and the same connection without kube's automatic
/// retries of 429/503/504 (for requests whose refusal is an answer: evictions).
pub struct Connection {
    pub client: Client,
    pub namespace: String,
    pub once: Client,
    /// For watches: no read timeout (a quiet watch is not a hung one; kube's watcher has its own
    /// idle timeout past the server's watch timeout).
    pub watch: Client,
}

pub async fn connect(counter: &RequestCounter) -> Result<(Client, String)> {
    connect_all(counter).await.map(|c| (c.client, c.namespace))
}

/// How long a request may wait for the API server's next bytes (reads: between chunks, so a
/// long paged list is not cut). No write may outlive the Lease: a renewal deadline of 10 s plus
/// this stays within the Lease's 15 s (tested in `cluster::lease`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn connect_all(counter: &RequestCounter) -> Result<Connection> {
    let mut config = kube::Config::infer()
        .await
        .context("no usable Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster service account)")?;
    // kube leaves the read timeout unset; a hung connection must not eat the whole run deadline.
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(REQUEST_TIMEOUT);
    config.write_timeout = Some(REQUEST_TIMEOUT);
    let namespace = config.default_namespace.clone();
    let mut single = config.clone();
    single.default_retry = false;
    let mut watch = config.clone();
    watch.read_timeout = None;
    let build = |config: kube::Config| -> Result<Client> {
        Ok(ClientBuilder::try_from(config)
            .context("building the Kubernetes client")?
            .with_layer(counter)
            .build())
    };
    Ok(Connection {
        client: build(config)?,
        namespace,
        once: build(single)?,
        watch: build(watch)?,
    })
}
