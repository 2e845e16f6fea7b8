//! A black-box CSC v1.0.4.0 conformance suite: talks HTTP to a base URL and checks the rules of
//! the specification one by one. The catalogue and the `csc-conformance` binary arrive with the
//! conformance issue; this crate holds its place in the workspace.

/// The specification version the suite checks against.
pub const SPEC_UNDER_TEST: &str = csc_types::SPECS_VERSION;
