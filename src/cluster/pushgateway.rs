//! Stage 8, metrics: the run's exposition text (`core::metrics`) POSTed to a Prometheus
//! Pushgateway (`PULLSECRET_PUSHGATEWAY_URL`), for alerting on a batch job that stopped
//! refreshing. The POST replaces only the metrics it carries. A failed push is a warning, never a
//! change of exit code.

use std::time::Duration;

/// The Pushgateway `job` grouping label.
pub const JOB: &str = "pullsecret-reconciler";
/// The whole push (connect, send, answer) must finish within this.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

use crate::config::Pushgateway;

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

/// POSTs `body` to the Pushgateway (https with the system's CAs). `Err` is a one-line
/// description for a warning.
pub async fn push(target: &Pushgateway, body: String) -> Result<(), String> {
    let url = push_url(target);
    let client = reqwest::Client::builder()
        .timeout(PUSH_TIMEOUT)
        .build()
        .map_err(|e| format!("setting up the client for {url}: {}", error_chain(&e)))?;
    let response = client
        .post(&url)
        .header(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")
        .body(body)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                format!("no answer from {url} within {}s", PUSH_TIMEOUT.as_secs())
            } else {
                format!("sending to {url}: {}", error_chain(&e))
            }
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    // The Pushgateway explains a refusal in a short text body; keep its first line.
    let answer: String = response
        .text()
        .await
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(300)
        .collect();
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
