//! Kubeconfig edits through kube's own `Kubeconfig` type (written back as JSON, which is YAML).

use std::path::Path;

use kube::config::{AuthInfo, Kubeconfig};

fn read(path: &Path) -> Kubeconfig {
    Kubeconfig::read_from(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn write(kc: &Kubeconfig, path: &Path) {
    std::fs::write(path, serde_json::to_vec_pretty(kc).unwrap()).unwrap();
}

/// A loopback port nothing listens on (bound, then released), for a server that does not exist.
pub fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The API server URL of the current context's cluster.
pub fn server(path: &Path) -> String {
    let kc = read(path);
    let cluster = kc.clusters.first().and_then(|c| c.cluster.as_ref()).expect("a cluster");
    cluster.server.clone().expect("a server URL")
}

/// A copy of `src` that talks to `https://127.0.0.1:{port}` instead.
pub fn with_server(src: &Path, port: u16, dst: &Path) {
    let mut kc = read(src);
    for c in kc.clusters.iter_mut().filter_map(|c| c.cluster.as_mut()) {
        c.server = Some(format!("https://127.0.0.1:{port}"));
    }
    write(&kc, dst);
}

/// A copy of `src` whose every user authenticates with the bearer `token` instead.
pub fn with_token(src: &Path, token: &str, dst: &Path) {
    let mut kc = read(src);
    for u in &mut kc.auth_infos {
        u.auth_info = Some(AuthInfo {
            token: Some(token.to_owned().into()),
            ..AuthInfo::default()
        });
    }
    write(&kc, dst);
}
