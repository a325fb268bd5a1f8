//! The real components built from pinned Go modules by tests/tools/build.sh (helm, registry,
//! ecr-credential-provider): built once per machine into the user cache, then only looked up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The binary `name` (a folder under tests/tools). A failed build fails the test, saying why.
pub fn tool(name: &str) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/build.sh"))
        .arg(name)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "building {name} from its Go module failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    built.insert(name.to_owned(), path.clone());
    path
}
