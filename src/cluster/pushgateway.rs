//! Stage 8, metrics: the run's exposition text (`core::metrics`) POSTed to a Prometheus
//! Pushgateway (`PULLSECRET_PUSHGATEWAY_URL`), for alerting on a batch job that stopped
//! refreshing. The POST replaces only the metrics it carries. A failed push is a warning, never a
//! change of exit code.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;

/// The Pushgateway `job` grouping label.
pub const JOB: &str = "pullsecret-reconciler";
/// The whole push (connect, send, answer) must finish within this.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and under which grouping key run metrics are pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushgateway {
    /// `scheme://host[:port][/path]`, without a trailing slash.
    pub url: String,
    /// The `cluster` grouping label (PULLSECRET_CLUSTER_NAME).
    pub cluster: Option<String>,
}

/// `…/metrics/job/pullsecret-reconciler[/cluster/NAME]`; a cluster name outside the URL-safe
/// characters is sent base64url-encoded, as the Pushgateway specifies (`cluster@base64/…`).
pub fn push_url(target: &Pushgateway) -> String {
    use base64::Engine as _;
    let mut url = format!("{}/metrics/job/{JOB}", target.url);
    if let Some(cluster) = &target.cluster {
        let plain = cluster
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if plain {
            url.push_str(&format!("/cluster/{cluster}"));
        } else {
            let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cluster);
            url.push_str(&format!("/cluster@base64/{encoded}"));
        }
    }
    url
}

/// POSTs `body` to the Pushgateway. `Err` is a one-line description for a warning.
pub async fn push(target: &Pushgateway, body: String) -> Result<(), String> {
    let url = push_url(target);
    let send = async {
        if url.starts_with("https://") {
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_native_roots()
                .map_err(|e| format!("no CA certificates to check {url} with: {e}"))?
                .https_only()
                .enable_http1()
                .build();
            send(https, &url, body).await
        } else {
            send(HttpConnector::new(), &url, body).await
        }
    };
    tokio::time::timeout(PUSH_TIMEOUT, send)
        .await
        .map_err(|_| format!("no answer from {url} within {}s", PUSH_TIMEOUT.as_secs()))?
}

async fn send<C>(connector: C, url: &str, body: String) -> Result<(), String>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let request = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("building the request to {url}: {e}"))?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("sending to {url}: {}", error_chain(&e)))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    // The Pushgateway explains a refusal in a short text body; keep its first line.
    let answer: String = response
        .into_body()
        .collect()
        .await
        .map(|b| {
            String::from_utf8_lossy(&b.to_bytes())
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(300)
                .collect()
        })
        .unwrap_or_default();
    Err(format!("{url} answered {status}: {answer}"))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_key_by_cluster_name() {
        let mut pg = Pushgateway {
            url: "http://pg:9091".into(),
            cluster: None,
        };
        assert_eq!(push_url(&pg), "http://pg:9091/metrics/job/pullsecret-reconciler");
        pg.cluster = Some("prod-eu-1".into());
        assert_eq!(
            push_url(&pg),
            "http://pg:9091/metrics/job/pullsecret-reconciler/cluster/prod-eu-1"
        );
        pg.cluster = Some("prod/eu 1".into());
        assert_eq!(
            push_url(&pg),
            "http://pg:9091/metrics/job/pullsecret-reconciler/cluster@base64/cHJvZC9ldSAx"
        );
    }
}
