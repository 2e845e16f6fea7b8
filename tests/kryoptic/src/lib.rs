//! Empty: this package only exists to build the kryoptic PKCS#11 module (see Cargo.toml).
