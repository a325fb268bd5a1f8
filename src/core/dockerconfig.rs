//! The `.dockerconfigjson` document, read once, the kubelet's way: a JSON object with a non-empty
//! `auths` map; each entry's credential is a non-empty `auth` (base64 of `user:password`, decoded
//! as the kubelet decodes it) or else `username` + `password`. Validation of sources, registry
//! verification and `explain` all read it through [`parse`]. Errors name the entry and the
//! problem, never a value.

use serde_json::Value;

use crate::core::kubelet::{decode_auth, decode_auth_bytes};

/// One `auths` entry with the credential the kubelet would use. Never printed: the password is
/// a credential.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    /// The `auths` key (a registry pattern).
    pub server: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// The entries of a docker config, in key order; `Err` says what is wrong (without a value).
pub fn parse(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    // serde_json's messages give line and column, never the offending text.
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON ({e})"))?;
    let auths = doc
        .as_object()
        .ok_or("expected a JSON object")?
        .get("auths")
        .ok_or("no \"auths\" map")?
        .as_object()
        .ok_or("\"auths\" is not a map")?;
    if auths.is_empty() {
        return Err("\"auths\" is empty".into());
    }
    auths
        .iter()
        .map(|(server, entry)| {
            let (username, password) =
                credential(entry).map_err(|problem| format!("auths entry {server:?}: {problem}"))?;
            Ok(Entry {
                server: server.clone(),
                username,
                password,
            })
        })
        .collect()
}

/// An entry's (user, password): as the kubelet, a non-empty `auth` wins over username/password,
/// and must decode its way.
fn credential(entry: &Value) -> Result<(String, String), &'static str> {
    let entry = entry.as_object().ok_or("not an object")?;
    let text = |k: &str| entry.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    if let Some(auth) = entry.get("auth").filter(|a| a.as_str() != Some("")) {
        let auth = auth.as_str().ok_or("\"auth\" is not a string")?;
        if decode_auth_bytes(auth).is_none() {
            return Err("\"auth\" is not valid base64 as the kubelet decodes it (padded, or unpadded without '=')");
        }
        match decode_auth(auth) {
            Some((user, password)) if !user.is_empty() => Ok((user, password)),
            Some(_) => Err("\"auth\" decodes to an empty user name"),
            None => Err("\"auth\" does not decode to user:password"),
        }
    } else if let (Some(user), Some(password)) = (text("username"), text("password")) {
        Ok((user.to_owned(), password.to_owned()))
    } else {
        Err("needs \"auth\" (base64 of user:password) or \"username\" and \"password\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_wins_over_username_and_unpadded_auth_decodes_as_the_kubelet_does() {
        // "u:fake-p" without its padding, beside a username/password that must be ignored.
        let json = r#"{"auths":{"r.io":{"auth":"dTpmYWtlLXA","username":"x","password":"y"},"s.io":{"username":"a","password":"fake-b"}}}"#;
        let entries = parse(json.as_bytes()).unwrap();
        let got: Vec<(&str, &str, &str)> = entries
            .iter()
            .map(|e| (e.server.as_str(), e.username.as_str(), e.password.as_str()))
            .collect();
        assert_eq!(got, [("r.io", "u", "fake-p"), ("s.io", "a", "fake-b")]);
        assert!(!format!("{entries:?}").contains("fake-"));
    }

    #[test]
    fn every_problem_is_named_without_its_value() {
        for (json, want) in [
            ("[1]", "expected a JSON object"),
            ("{}", "no \"auths\" map"),
            (r#"{"auths":{}}"#, "\"auths\" is empty"),
            (
                r#"{"auths":{"r.io":{"auth":"!!secret!!"}}}"#,
                "auths entry \"r.io\": \"auth\" is not valid base64",
            ),
            (r#"{"auths":{"r.io":{"password":"secret-pw"}}}"#, "needs \"auth\""),
        ] {
            let e = parse(json.as_bytes()).unwrap_err();
            assert!(e.contains(want), "{json}: {e}");
            assert!(!e.contains("secret"), "{e}");
        }
    }
}
