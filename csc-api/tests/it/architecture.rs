//! The house rule of README "Architecture", checked: `csc-api` speaks HTTP only. It depends on
//! neither `storage` nor `cm-pkcs11` (not even for its tests), and its source never reaches
//! the SAM's store: every rule, row and key is behind a `sam` function.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn csc_api_depends_on_neither_storage_nor_the_crypto_module() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .expect("Cargo.toml");
    let toml: toml::Table = manifest.parse().expect("TOML");
    for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
        if let Some(deps) = toml.get(section).and_then(|d| d.as_table()) {
            for forbidden in ["storage", "cm-pkcs11"] {
                assert!(
                    !deps.contains_key(forbidden),
                    "csc-api [{section}] names {forbidden}: the HTTP layer reaches it only through sam"
                );
            }
        }
    }
}

#[test]
fn csc_api_source_never_reaches_the_store() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() > 10, "the source was found");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source");
        for forbidden in [".store()", "storage::", "cm_pkcs11::"] {
            assert!(
                !text.contains(forbidden),
                "{} uses {forbidden}: call a sam function instead",
                file.display()
            );
        }
    }
}
