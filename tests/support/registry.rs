//! A real CNCF Distribution registry (built once from github.com/distribution/distribution/v3 by
//! tests/tools/build.sh registry) on a loopback port with TLS from a throwaway test CA and
//! htpasswd (bcrypt, hashed here) authentication; stopped when dropped. Clients are real too:
//! curl with the test CA, oci-client, and buildah pushing the images the node pulls.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::kubeconfig::unused_port;

pub struct Registry {
    /// `127.0.0.1:PORT`: the registry's name in image references and `auths` keys.
    pub host: String,
    pub ca: PathBuf,
    pub user: String,
    pub password: String,
    dir: PathBuf,
    child: Child,
    bin: PathBuf,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(dir: &Path, program: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} could not start: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl Registry {
    /// Starts a registry that accepts `user`/`password` (fake test values) and waits until it
    /// answers. Fails (never skips) when it cannot.
    pub fn start(user: &str, password: &str) -> Registry {
        let bin = super::tools::tool("registry");
        let port = unused_port();
        let dir = std::env::temp_dir().join(format!("pullsecret-registry-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        // A test CA and a server certificate for 127.0.0.1.
        run(
            &dir,
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca-key.pem",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=pullsecret-reconciler test CA",
            ],
        );
        run(
            &dir,
            "openssl",
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server-key.pem",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
        run(
            &dir,
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
        write_htpasswd(&dir, user, password);
        // buildah's --cert-dir takes a folder of *.crt CA files.
        std::fs::create_dir_all(dir.join("certs")).unwrap();
        std::fs::copy(dir.join("ca.pem"), dir.join("certs/ca.crt")).unwrap();
        let d = dir.display();
        std::fs::write(
            dir.join("config.yml"),
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {d}/data\n\
                 http:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {d}/server.pem\n    key: {d}/server-key.pem\n\
                 auth:\n  htpasswd:\n    realm: pullsecret-test\n    path: {d}/htpasswd\n"
            ),
        )
        .unwrap();
        let child = spawn(&bin, &dir);
        let mut registry = Registry {
            host: format!("127.0.0.1:{port}"),
            ca: dir.join("ca.pem"),
            user: user.to_owned(),
            password: password.to_owned(),
            dir,
            child,
            bin,
        };
        registry.wait_up();
        registry
    }

    /// Rotates the credential at the registry: a new htpasswd and a restart on the same port
    /// and storage (what an operator does), so the old password is refused from now on.
    pub fn set_password(&mut self, password: &str) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        write_htpasswd(&self.dir, &self.user, password);
        self.password = password.to_owned();
        self.child = spawn(&self.bin, &self.dir);
        self.wait_up();
    }

    fn wait_up(&mut self) {
        for _ in 0..100 {
            // Up when it asks for credentials.
            if self.login_status(None) == 401 {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default();
                panic!("the registry exited at start ({status}):\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the registry on {} did not answer in 10s", self.host);
    }

    /// The HTTP status of `GET /v2/` (docker login's check), with Basic credentials if given;
    /// 0 when there was no HTTP answer.
    pub fn login_status(&self, credentials: Option<(&str, &str)>) -> u16 {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
            "--cacert",
        ])
        .arg(&self.ca)
        .arg(format!("https://{}/v2/", self.host));
        if let Some((user, password)) = credentials {
            // From a file, not the command line: credentials stay out of the process list.
            let netrc = self.dir.join(format!("netrc-{}", std::process::id()));
            std::fs::write(&netrc, format!("machine 127.0.0.1 login {user} password {password}\n")).unwrap();
            cmd.arg("--netrc-file").arg(&netrc);
        }
        let out = cmd.output().expect("curl");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
    }
}

/// An htpasswd file with one bcrypt entry (the only hash Distribution accepts), made here rather
/// than with apache2-utils' htpasswd.
fn write_htpasswd(dir: &Path, user: &str, password: &str) {
    let hash = bcrypt::hash(password, 5).unwrap();
    std::fs::write(dir.join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
}

fn spawn(bin: &Path, dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("registry.log"))
        .unwrap();
    Command::new(bin)
        .arg("serve")
        .arg(dir.join("config.yml"))
        .env("OTEL_TRACES_EXPORTER", "none")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()))
}

/// Runs tests/images/build.sh with `args`; its stdout (an image name, or nothing).
pub fn images(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/images/build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "tests/images/build.sh {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

impl Registry {
    /// A docker config JSON with this registry's current credential under `key` (an `auths` key
    /// such as `127.0.0.1:PORT` or `https://127.0.0.1:PORT/team`).
    pub fn dockerconfig_for(&self, key: &str, password: &str) -> String {
        use base64::Engine;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", self.user));
        serde_json::json!({ "auths": { key: { "auth": auth } } }).to_string()
    }

    /// The docker config JSON a `kubectl create secret docker-registry` for this registry holds.
    pub fn dockerconfig(&self) -> String {
        self.dockerconfig_for(&self.host, &self.password)
    }

    /// Pushes a locally built image (tests/images/build.sh) as `repository:tag` with buildah,
    /// trusting the test CA and authenticating from a file; returns the full reference.
    pub fn push_local(&self, local: &str, repository: &str, tag: &str) -> String {
        let authfile = self.dir.join(format!("auth-{}.json", std::process::id()));
        std::fs::write(&authfile, self.dockerconfig()).unwrap();
        let reference = format!("{}/{repository}:{tag}", self.host);
        let certs = self.dir.join("certs");
        images(&[
            "push",
            local,
            &reference,
            certs.to_str().unwrap(),
            authfile.to_str().unwrap(),
        ]);
        reference
    }

    /// Pushes the tiny busybox workload image (`sleep 3600`) as `repository:tag`; each tag is an
    /// image of its own (a pull of a new tag is a real pull, never "already present").
    pub fn push_app(&self, repository: &str, tag: &str) -> String {
        self.push_local(&images(&["app", tag]), repository, tag)
    }

    /// The digest (`sha256:…`) the registry serves for `repository:tag`.
    pub fn digest(&self, repository: &str, tag: &str) -> String {
        let netrc = self.dir.join(format!("netrc-{}", std::process::id()));
        std::fs::write(
            &netrc,
            format!("machine 127.0.0.1 login {} password {}\n", self.user, self.password),
        )
        .unwrap();
        let out = Command::new("curl")
            .args(["-fsS", "-o", "/dev/null", "-D", "-", "--max-time", "5", "--cacert"])
            .arg(&self.ca)
            .arg("--netrc-file")
            .arg(&netrc)
            .args([
                "-H",
                "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
            ])
            .arg(format!("https://{}/v2/{repository}/manifests/{tag}", self.host))
            .output()
            .expect("curl");
        let headers = String::from_utf8_lossy(&out.stdout);
        headers
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("docker-content-digest")
                    .then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no digest for {repository}:{tag}: {headers}"))
    }
}

impl Registry {
    /// A client for this registry: trusts the test CA.
    pub fn client(&self) -> oci_client::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        oci_client::Client::new(oci_client::client::ClientConfig {
            protocol: oci_client::client::ClientProtocol::Https,
            extra_root_certificates: vec![oci_client::client::Certificate {
                encoding: oci_client::client::CertificateEncoding::Pem,
                data: std::fs::read(&self.ca).unwrap(),
            }],
            ..Default::default()
        })
    }

    /// Pushes a small image (one layer) as `repository:tag`, with the registry's own credential,
    /// through oci-client's push: a real client speaking the distribution API.
    pub async fn push(&self, repository: &str, tag: &str) {
        use oci_client::client::{Config, ImageLayer};
        let reference = oci_client::Reference::with_tag(self.host.clone(), repository.to_owned(), tag.to_owned());
        let auth = oci_client::secrets::RegistryAuth::Basic(self.user.clone(), self.password.clone());
        let layer = ImageLayer::oci_v1(format!("layer of {repository}:{tag}").into_bytes(), None);
        let config = Config::oci_v1(
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec(),
            None,
        );
        self.client()
            .push(&reference, &[layer], config, &auth, None)
            .await
            .unwrap_or_else(|e| panic!("pushing {reference}: {e}"));
    }
}
