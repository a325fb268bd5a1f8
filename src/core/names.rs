//! Kubernetes object name rules, as the API server checks them.

use anyhow::{Result, bail};

/// RFC 1123 subdomain, as the API server requires for Secret names.
pub fn check_object_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 253 {
        bail!("must be 1-253 characters");
    }
    for part in name.split('.') {
        check_label(part)?;
    }
    Ok(())
}

/// RFC 1123 label, as the API server requires for namespace names.
pub fn check_label(name: &str) -> Result<()> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ok_ends = name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > 63 || !ok_chars || !ok_ends {
        bail!("must be lower-case letters, digits and '-', start and end alphanumeric, at most 63 characters");
    }
    Ok(())
}
