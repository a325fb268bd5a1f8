//! A fault-injecting TCP proxy between the reconciler and the real API server, for faults the
//! control plane cannot produce on demand: slow responses, hangs and dropped connections.
//! TLS passes through untouched (the serving certificate names 127.0.0.1, whatever the port).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Forward everything.
    Pass = 0,
    /// Forward, but hold every chunk from the server for `delay`.
    Slow = 1,
    /// Accept connections and forward nothing, ever (a hung server).
    Hang = 2,
    /// Close every connection at once (a stopped server).
    Drop = 3,
}

pub struct Proxy {
    pub port: u16,
    mode: Arc<AtomicU8>,
    delay_ms: Arc<AtomicU64>,
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(Mode::Pass as u8));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let accepted = Arc::new(AtomicU64::new(0));
        let (m, d, a) = (mode.clone(), delay_ms.clone(), accepted.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let (m, d, upstream) = (m.clone(), d.clone(), upstream.clone());
                tokio::spawn(async move {
                    let _ = serve(client, &upstream, m, d).await;
                });
            }
        });
        Proxy {
            port,
            mode,
            delay_ms,
            accepted,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn set(&self, mode: Mode, delay: Duration) {
        self.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// A copy of `kubeconfig` whose server is this proxy.
    pub fn kubeconfig(&self, kubeconfig: &Path, dir: &Path) -> PathBuf {
        let path = dir.join(format!("kubeconfig-proxy-{}", self.port));
        super::kubeconfig::with_server(kubeconfig, self.port, &path);
        path
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn mode(m: &AtomicU8) -> Mode {
    match m.load(Ordering::SeqCst) {
        1 => Mode::Slow,
        2 => Mode::Hang,
        3 => Mode::Drop,
        _ => Mode::Pass,
    }
}

async fn serve(mut client: TcpStream, upstream: &str, m: Arc<AtomicU8>, d: Arc<AtomicU64>) -> std::io::Result<()> {
    match mode(&m) {
        Mode::Drop => return Ok(()),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return Ok(());
        }
        _ => {}
    }
    let server = TcpStream::connect(upstream).await?;
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = {
        let (r, w) = server.into_split();
        (r, w)
    };
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = cr.read(&mut buf).await?;
            if n == 0 || mode(&m) == Mode::Drop {
                return std::io::Result::Ok(());
            }
            sw.write_all(&buf[..n]).await?;
        }
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = sr.read(&mut buf).await?;
            match mode(&m) {
                Mode::Drop => return std::io::Result::Ok(()),
                Mode::Hang => tokio::time::sleep(Duration::from_secs(3600)).await,
                Mode::Slow => tokio::time::sleep(Duration::from_millis(d.load(Ordering::SeqCst))).await,
                Mode::Pass => {}
            }
            if n == 0 {
                return Ok(());
            }
            cw.write_all(&buf[..n]).await?;
        }
    };
    tokio::select! {
        r = up => r,
        r = down => r,
    }
}
