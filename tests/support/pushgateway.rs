//! A real Prometheus Pushgateway (Debian's `prometheus-pushgateway`, installed by .ci/run) on a
//! loopback port, one per test, stopped when dropped; and a scrape of what it holds.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::kubeconfig::unused_port;

pub struct Pushgateway {
    pub url: String,
    child: tokio::process::Child,
    _dir: TempDir,
}

/// A folder removed on drop (the Pushgateway's working directory).
struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary: `PULLSECRET_PUSHGATEWAY_BIN`, else Debian's.
fn binary() -> PathBuf {
    std::env::var_os("PULLSECRET_PUSHGATEWAY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus-pushgateway"))
}

impl Pushgateway {
    /// Starts one and waits until it answers `/-/ready`. Fails (never skips) when it cannot.
    pub async fn start() -> Pushgateway {
        let bin = binary();
        assert!(
            bin.exists(),
            "the Pushgateway tests need {} (Debian: apt-get install prometheus-pushgateway; \
             .ci/run installs it), or PULLSECRET_PUSHGATEWAY_BIN",
            bin.display()
        );
        let port = unused_port();
        let dir = std::env::temp_dir().join(format!("pullsecret-pushgateway-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let child = tokio::process::Command::new(&bin)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .current_dir(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut pg = Pushgateway {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _dir: TempDir(dir),
        };
        for _ in 0..100 {
            if get(&format!("{}/-/ready", pg.url)).await.is_ok_and(|(s, _)| s == 200) {
                return pg;
            }
            if let Some(status) = pg.child.try_wait().unwrap() {
                panic!("the Pushgateway exited at start: {status}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the Pushgateway on {} did not become ready in 10s", pg.url);
    }

    /// Every sample it serves, as (name{labels}, value) lines of its own /metrics.
    pub async fn scrape(&self) -> String {
        let (status, body) = get(&format!("{}/metrics", self.url)).await.unwrap();
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The value of `name` in the pushed group whose labels include every one of `labels`.
    pub async fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        sample(&self.scrape().await, name, labels)
    }
}

/// The value of the sample `name{…}` whose labels include all of `labels`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (labelset, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        labels
            .iter()
            .all(|(k, v)| labelset.split(',').any(|pair| pair == format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

async fn get(url: &str) -> Result<(u16, String), String> {
    let client = Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(HttpConnector::new());
    let uri: http::Uri = url.parse().map_err(|e| format!("{e}"))?;
    let response = client.get(uri).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
