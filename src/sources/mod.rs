//! Stage 2, credentials: load the configured source (thin I/O: one GET per source Secret, or a
//! file read) and validate it (pure). Nothing here ever formats a credential into a message.

pub mod provider;

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde::Serialize;
use serde_json::Value;

use crate::config::Source;
pub use crate::core::model::Credential;
use crate::core::{DOCKERCONFIGJSON_KEY, DOCKERCONFIGJSON_TYPE};
const DOCKERCFG_TYPE: &str = "kubernetes.io/dockercfg";
const DOCKERCFG_KEY: &str = ".dockercfg";

/// What the source stage hands on: the credentials, and when short-lived ones expire.
#[derive(Debug, Default)]
pub struct Loaded {
    pub credentials: Vec<Credential>,
    /// Per registry, from credential-provider plugins (empty for the other modes).
    pub expiries: Vec<crate::core::model::Expiry>,
}

/// Reads and validates every configured source. Any failure means the run must write nothing.
pub async fn load(
    source: &Source,
    client: &kube::Client,
    source_namespace: &str,
    deadline: tokio::time::Instant,
) -> Result<Loaded> {
    if let Source::CredentialProvider {
        config: path,
        bin_dir,
        images,
        service_account,
        target,
    } = source
    {
        let settings = crate::sources::provider::CredentialProviderSource {
            config: path,
            bin_dir,
            images,
            service_account: (service_account.0.as_deref(), &service_account.1),
        };
        let (data, expiries) = crate::sources::provider::load(client, source_namespace, &settings, deadline).await?;
        let credential = Credential {
            target: target.clone(),
            origin: format!("credential-provider:{path}"),
            source_secret: None,
            data,
        };
        return Ok(Loaded {
            credentials: vec![credential],
            expiries,
        });
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), source_namespace);
    let credentials = load_static(source, &secrets, source_namespace).await?;
    Ok(Loaded {
        credentials,
        expiries: Vec::new(),
    })
}

async fn load_static(source: &Source, secrets: &Api<Secret>, source_namespace: &str) -> Result<Vec<Credential>> {
    match source {
        Source::CredentialProvider { .. } => Ok(Vec::new()),
        Source::Secrets(mappings) => {
            let mut out = Vec::with_capacity(mappings.len());
            for m in mappings {
                let what = format!("source Secret {source_namespace}/{}", m.source);
                let secret = secrets
                    .get_opt(&m.source)
                    .await
                    .with_context(|| format!("reading {what}"))?
                    .ok_or_else(|| anyhow!("{what} does not exist"))?;
                out.push(Credential {
                    target: m.target.clone(),
                    origin: format!("secret:{source_namespace}/{}", m.source),
                    source_secret: Some((source_namespace.to_owned(), m.source.clone())),
                    data: from_secret(&secret, &what)?,
                });
            }
            Ok(out)
        }
        Source::Inline { json, target } => Ok(vec![Credential {
            target: target.clone(),
            origin: "env:PULLSECRET_DOCKERCONFIGJSON".into(),
            source_secret: None,
            data: validate(json.0.as_bytes(), "PULLSECRET_DOCKERCONFIGJSON")?,
        }]),
        Source::File { path, target } => {
            let what = format!("PULLSECRET_DOCKERCONFIGJSON_FILE ({path})");
            let bytes = std::fs::read(path).with_context(|| format!("{what}: cannot read the file"))?;
            Ok(vec![Credential {
                target: target.clone(),
                origin: format!("file:{path}"),
                source_secret: None,
                data: validate(&bytes, &what)?,
            }])
        }
        Source::Registry {
            server,
            username,
            password,
            email,
            target,
        } => Ok(vec![Credential {
            target: target.clone(),
            origin: format!("registry:{server}"),
            source_secret: None,
            data: from_registry(server, username, &password.0, email.as_deref()),
        }]),
    }
}

/// Extracts and validates the docker config of a source Secret; a legacy `kubernetes.io/dockercfg`
/// is converted to the `{"auths": …}` form.
pub fn from_secret(secret: &Secret, what: &str) -> Result<Vec<u8>> {
    let ty = secret.type_.as_deref().unwrap_or("Opaque");
    let data = secret.data.as_ref();
    let key = |k: &str| data.and_then(|d| d.get(k)).map(|b| b.0.as_slice());
    match ty {
        DOCKERCONFIGJSON_TYPE => {
            let bytes = key(DOCKERCONFIGJSON_KEY).ok_or_else(|| anyhow!("{what} has no {DOCKERCONFIGJSON_KEY} key"))?;
            validate(bytes, what)
        }
        DOCKERCFG_TYPE => {
            let bytes = key(DOCKERCFG_KEY).ok_or_else(|| anyhow!("{what} has no {DOCKERCFG_KEY} key"))?;
            let auths: Value = serde_json::from_slice(bytes)
                .map_err(|e| anyhow!("{what}: {DOCKERCFG_KEY} is not valid JSON ({e})"))?;
            let converted = serde_json::to_vec(&serde_json::json!({ "auths": auths }))?;
            validate(&converted, what)
        }
        other => bail!("{what} has type {other}; expected {DOCKERCONFIGJSON_TYPE} (or legacy {DOCKERCFG_TYPE})"),
    }
}

/// Checks a docker config JSON ([`crate::core::dockerconfig`]) and returns its bytes unchanged,
/// so copies are byte-identical.
pub fn validate(bytes: &[u8], what: &str) -> Result<Vec<u8>> {
    crate::core::dockerconfig::parse(bytes).map_err(|problem| anyhow!("{what}: {problem}"))?;
    Ok(bytes.to_vec())
}

/// Builds the docker config `kubectl create secret docker-registry` writes, field for field.
pub fn from_registry(server: &str, username: &str, password: &str, email: Option<&str>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Entry<'a> {
        username: &'a str,
        password: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        email: Option<&'a str>,
        auth: String,
    }
    #[derive(Serialize)]
    struct DockerConfig<'a> {
        auths: BTreeMap<&'a str, Entry<'a>>,
    }
    let auth = STANDARD.encode(format!("{username}:{password}"));
    let config = DockerConfig {
        auths: BTreeMap::from([(
            server,
            Entry {
                username,
                password,
                email,
                auth,
            },
        )]),
    };
    // Serialising plain strings into JSON cannot fail.
    serde_json::to_vec(&config).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    const FAKE: &str = r#"{"auths":{"registry.example.com":{"auth":"ZmFrZS11c2VyOmZha2UtcGFzc3dvcmQ="}}}"#;

    fn err(bytes: &str) -> String {
        format!(
            "{:#}",
            validate(bytes.as_bytes(), "TEST_SOURCE").expect_err("should fail")
        )
    }

    fn secret(ty: &str, key: &str, value: &str) -> Secret {
        Secret {
            type_: Some(ty.into()),
            data: Some(BTreeMap::from([(
                key.to_owned(),
                ByteString(value.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        }
    }

    #[test]
    fn accepts_auth_or_username_password_and_keeps_bytes() {
        assert_eq!(validate(FAKE.as_bytes(), "x").unwrap(), FAKE.as_bytes());
        validate(br#"{"auths":{"r":{"username":"u","password":"p"}}}"#, "x").unwrap();
        validate(br#"{"auths":{"r":{"auth":"dTpw"}}}"#, "x").unwrap(); // unpadded base64 of u:p
    }

    #[test]
    fn every_invalid_shape_is_named() {
        let cases = [
            ("not json", "not valid JSON"),
            ("[]", "expected a JSON object"),
            ("{}", "no \"auths\" map"),
            (r#"{"auths":[]}"#, "\"auths\" is not a map"),
            (r#"{"auths":{}}"#, "\"auths\" is empty"),
            (r#"{"auths":{"r":"x"}}"#, "not an object"),
            (r#"{"auths":{"r":{"auth":"***"}}}"#, "not valid base64"),
            (
                r#"{"auths":{"r":{"auth":"dTpwYQ="}}}"#,
                "not valid base64 as the kubelet decodes it",
            ),
            (r#"{"auths":{"r":{"auth":"bm9jb2xvbg=="}}}"#, "user:password"),
            (r#"{"auths":{"r":{"auth":"OnB3"}}}"#, "empty user name"),
            (r#"{"auths":{"r":{"auth":1}}}"#, "not a string"),
            (r#"{"auths":{"r":{"username":"u"}}}"#, "needs"),
        ];
        for (input, want) in cases {
            let e = err(input);
            assert!(e.contains(want) && e.contains("TEST_SOURCE"), "{input}: {e}");
        }
    }

    #[test]
    fn errors_never_echo_credentials() {
        let secret_auth = STANDARD.encode("user-without-colon-hunter2");
        let e = err(&format!(r#"{{"auths":{{"r":{{"auth":"{secret_auth}"}}}}}}"#));
        assert!(!e.contains(&secret_auth) && !e.contains("hunter2"), "{e}");
        let e = err(r#"{"auths":{"r":{"username":"hunter2user"}}, oops"#);
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn secret_types_and_keys() {
        let ok = secret(DOCKERCONFIGJSON_TYPE, DOCKERCONFIGJSON_KEY, FAKE);
        assert_eq!(from_secret(&ok, "s").unwrap(), FAKE.as_bytes());
        let legacy = secret(DOCKERCFG_TYPE, DOCKERCFG_KEY, r#"{"r":{"auth":"dTpw"}}"#);
        let converted: Value = serde_json::from_slice(&from_secret(&legacy, "s").unwrap()).unwrap();
        assert_eq!(converted["auths"]["r"]["auth"], "dTpw");
        let e = format!(
            "{:#}",
            from_secret(&secret("Opaque", "x", "y"), "Secret ns/s").unwrap_err()
        );
        assert!(e.contains("Secret ns/s has type Opaque"), "{e}");
        let e = format!(
            "{:#}",
            from_secret(&secret(DOCKERCONFIGJSON_TYPE, "other", FAKE), "S").unwrap_err()
        );
        assert!(e.contains("no .dockerconfigjson key"), "{e}");
    }

    #[test]
    fn registry_config_matches_kubectl() {
        let bytes = from_registry("https://index.docker.io/v1/", "fake-user", "fake-pass", None);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"auths":{"https://index.docker.io/v1/":{"username":"fake-user","password":"fake-pass","auth":"ZmFrZS11c2VyOmZha2UtcGFzcw=="}}}"#
        );
        let with_email = from_registry("r", "u", "p", Some("a@example.com"));
        assert!(
            String::from_utf8(with_email)
                .unwrap()
                .contains(r#""email":"a@example.com""#)
        );
        validate(&from_registry("r", "u", "p", None), "x").unwrap();
    }

    #[test]
    fn debug_redacts_data() {
        let c = Credential {
            target: "t".into(),
            origin: "o".into(),
            source_secret: None,
            data: FAKE.into(),
        };
        assert!(!format!("{c:?}").contains("ZmFrZ"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// Arbitrary bytes never panic the parser, and an error never repeats the input.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            if let (Err(e), Ok(text)) = (validate(&bytes, "FUZZ"), std::str::from_utf8(&bytes)) {
                let (message, text) = (format!("{e:#}"), text.trim());
                proptest::prop_assert!(text.len() < 12 || !message.contains(text), "{}", message);
            }
        }

        #[test]
        fn an_error_never_repeats_its_input(text in "[ -~]{12,80}") {
            if let Err(e) = validate(text.as_bytes(), "FUZZ") {
                let message = format!("{e:#}");
                proptest::prop_assert!(!message.contains(text.trim()) || text.trim().len() < 12, "{}", message);
            }
        }

        #[test]
        fn arbitrary_entries_never_echo_the_auth(auth in "[A-Za-z0-9+/=:]{12,40}", user in "[a-z]{0,8}") {
            let doc = format!(r#"{{"auths":{{"r":{{"auth":"{auth}","username":"{user}"}}}}}}"#);
            if let Err(e) = validate(doc.as_bytes(), "FUZZ") {
                let message = format!("{e:#}");
                proptest::prop_assert!(!message.contains(&auth), "{}", message);
            }
        }
    }
}
