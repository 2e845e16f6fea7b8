//! Diesel schema, identical for both backends (see `migrations/{sqlite,postgres}`).
//!
//! Only SQL types that `#[derive(MultiConnection)]` supports are used: Text, Integer, BigInt,
//! Bool, Binary and Timestamp. Enums are stored as Text and converted in `models`.

diesel::table! {
    users (id) {
        id -> Text,
        name -> Text,
        password_hash -> Text,
        role -> Text,
        failed_logins -> Integer,
        locked -> Bool,
        created_at -> Timestamp,
        mac -> Nullable<Binary>,
        disabled -> Bool,
    }
}

diesel::table! {
    credentials (id) {
        id -> Text,
        user_id -> Text,
        key_id -> Text,
        key_spec -> Text,
        cert_chain -> Text,
        cert_serial -> Nullable<Text>,
        scal -> Integer,
        multisign -> Integer,
        status -> Text,
        auth_mode -> Text,
        description -> Nullable<Text>,
        created_at -> Timestamp,
        factors -> Text,
        mac -> Nullable<Binary>,
    }
}

diesel::table! {
    credential_factors (credential_id, kind) {
        credential_id -> Text,
        kind -> Text,
        verifier -> Text,
        failures -> Integer,
        locked -> Bool,
        last_otp_step -> Nullable<BigInt>,
        mac -> Nullable<Binary>,
    }
}

diesel::table! {
    auth_tokens (token_hash) {
        token_hash -> Binary,
        kind -> Text,
        user_id -> Nullable<Text>,
        client_id -> Nullable<Text>,
        scope -> Text,
        expires_at -> Timestamp,
        revoked -> Bool,
        created_at -> Timestamp,
        parent_hash -> Nullable<Binary>,
        mac -> Nullable<Binary>,
        family -> Nullable<Binary>,
    }
}

diesel::table! {
    sads (sad_hash) {
        sad_hash -> Binary,
        user_id -> Text,
        credential_id -> Text,
        token_hash -> Binary,
        remaining -> Integer,
        expires_at -> Timestamp,
        hashes -> Nullable<Text>,
        revoked -> Bool,
        created_at -> Timestamp,
        mac -> Nullable<Binary>,
        authorized_at -> Timestamp,
    }
}

diesel::table! {
    audit_log (seq) {
        seq -> BigInt,
        at -> Timestamp,
        event -> Text,
        actor -> Text,
        subject -> Text,
        outcome -> Text,
        detail -> Text,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    audit_head (id) {
        id -> Integer,
        seq -> BigInt,
        hash -> Text,
        keyed_from -> BigInt,
        keyed_mac -> Nullable<Text>,
    }
}

diesel::table! {
    online_otps (credential_id) {
        credential_id -> Text,
        code_hash -> Binary,
        expires_at -> Timestamp,
        created_at -> Timestamp,
    }
}

diesel::table! {
    oauth_clients (client_id) {
        client_id -> Text,
        name -> Text,
        redirect_uris -> Text,
        secret_hash -> Nullable<Binary>,
        created_at -> Timestamp,
        mac -> Nullable<Binary>,
    }
}

diesel::table! {
    oauth_requests (request_hash) {
        request_hash -> Binary,
        client_id -> Text,
        params -> Text,
        user_id -> Nullable<Text>,
        expires_at -> Timestamp,
        created_at -> Timestamp,
        mac -> Nullable<Binary>,
    }
}

diesel::table! {
    oauth_codes (code_hash) {
        code_hash -> Binary,
        client_id -> Text,
        user_id -> Text,
        scope -> Text,
        redirect_uri -> Text,
        redirect_uri_given -> Bool,
        code_challenge -> Nullable<Text>,
        credential_id -> Nullable<Text>,
        num_signatures -> Nullable<Integer>,
        hashes -> Nullable<Text>,
        remember -> Bool,
        expires_at -> Timestamp,
        used -> Bool,
        issued_hash -> Nullable<Binary>,
        created_at -> Timestamp,
        mac -> Nullable<Binary>,
    }
}

diesel::table! {
    client_delegations (client_id, user_id) {
        client_id -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        mac -> Nullable<Binary>,
    }
}

diesel::joinable!(auth_tokens -> users (user_id));
diesel::joinable!(client_delegations -> users (user_id));
diesel::joinable!(credentials -> users (user_id));
diesel::joinable!(online_otps -> credentials (credential_id));
diesel::joinable!(credential_factors -> credentials (credential_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    credentials,
    credential_factors,
    online_otps,
    auth_tokens,
    sads,
    audit_log,
    audit_head,
    oauth_clients,
    oauth_requests,
    oauth_codes,
    client_delegations,
);
