//! Fills the "loaded" database through the `storage` crate before its server starts: other
//! users with credentials (fake key ids: they are never signed with) and a long, valid audit
//! chain appended with `append_audit_batch`, under the integrity keys of the data directory's
//! token (so the server accepts what was written).

use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use storage::{
    AuthMode, CredentialId, CredentialStatus, FactorKind, IntegrityKeys, NewAuditEvent,
    NewCredential, NewUser, Role, Scal, Store, StoreOptions, UserId,
};

/// Credentials per filler user.
const CREDENTIALS_PER_USER: usize = 100;
/// Rows per write transaction.
const CREDENTIAL_BATCH: usize = 5_000;
const AUDIT_BATCH: usize = 10_000;

fn random_hex(n: usize) -> anyhow::Result<String> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("OS RNG: {e}"))?;
    Ok(hex::encode(b))
}

/// What was added and how long it took.
#[derive(Debug, Clone)]
pub struct Populated {
    pub users: usize,
    pub credentials: usize,
    pub audit_records: usize,
    pub credentials_secs: f64,
    pub audit_secs: f64,
    pub db_bytes: u64,
}

/// Adds `credentials` credentials (100 per filler user, each with a PIN factor) and
/// `audit_records` audit records to the SQLite database at `url`. The bench user's RSA
/// credential `template` lends its certificate chain and PIN verifier, so rows have their real
/// size.
pub fn populate(
    url: &str,
    template: &str,
    credentials: usize,
    audit_records: usize,
    keys: &IntegrityKeys,
) -> anyhow::Result<Populated> {
    let store = Store::open(url, StoreOptions::default())
        .context("cannot open loaded.db")?
        .with_keys(keys.clone());
    let template_id: CredentialId = template
        .parse()
        .map_err(|_| anyhow::anyhow!("bad credential id {template}"))?;
    let (chain, verifier, password_hash) = store.read(|c| {
        let cred = c
            .credential(&template_id)?
            .ok_or(storage::StorageError::NotFound)?;
        let pin = c
            .factor(&template_id, FactorKind::Pin)?
            .ok_or(storage::StorageError::NotFound)?;
        let user = c
            .user(&cred.user_id)?
            .ok_or(storage::StorageError::NotFound)?;
        Ok((cred.cert_chain_der()?, pin.verifier, user.password_hash))
    })?;

    let t0 = Instant::now();
    let users = credentials.div_ceil(CREDENTIALS_PER_USER);
    let mut user_ids: Vec<UserId> = Vec::with_capacity(users);
    store.write(|c| {
        for i in 0..users {
            let u = c.create_user(&NewUser {
                name: format!("load-user-{i:06}"),
                password_hash: password_hash.clone(),
                role: Role::Signer,
            })?;
            user_ids.push(u.id);
        }
        Ok(())
    })?;
    let mut made = 0usize;
    let mut ids: Vec<String> = Vec::with_capacity(credentials.min(10_000));
    while made < credentials {
        let n = CREDENTIAL_BATCH.min(credentials - made);
        let mut rows = Vec::with_capacity(n);
        for i in made..made + n {
            rows.push(NewCredential {
                id: CredentialId::new(),
                user_id: *user_ids
                    .get(i / CREDENTIALS_PER_USER)
                    .context("fewer users than credentials need")?,
                key_id: random_hex(16)?,
                key_spec: if i % 2 == 0 { "rsa-2048" } else { "ec-p256" }.into(),
                cert_chain: chain.clone(),
                cert_serial: Some(random_hex(16)?),
                scal: Scal::One,
                multisign: 1,
                status: CredentialStatus::Enabled,
                auth_mode: AuthMode::Explicit,
                description: None,
            });
        }
        store.write(|c| {
            for r in &rows {
                c.create_credential(r)?;
                c.set_factor(&r.id, FactorKind::Pin, &verifier)?;
            }
            Ok(())
        })?;
        if ids.len() < 10_000 {
            ids.extend(
                rows.iter()
                    .take(10_000 - ids.len())
                    .map(|r| r.id.to_string()),
            );
        }
        made += n;
    }
    let credentials_secs = t0.elapsed().as_secs_f64();

    // Audit records shaped like the server's own signature records.
    let t1 = Instant::now();
    let mut written = 0usize;
    let subject_of = |i: usize| ids.get(i % ids.len().max(1)).cloned().unwrap_or_default();
    while written < audit_records {
        let n = AUDIT_BATCH.min(audit_records - written);
        let mut events = Vec::with_capacity(n);
        for i in written..written + n {
            let digest = random_hex(32)?;
            events.push(
                NewAuditEvent::new(
                    storage::AuditEvent::SignatureSignHash,
                    format!("load-user-{:06}", (i / 7) % users.max(1)),
                    subject_of(i),
                    "success",
                )
                .with_detail(json!({
                    "sad": &digest[..8],
                    "count": 1,
                    "certificateSerial": &digest[8..40],
                    "signAlgo": "1.2.840.10045.4.3.2",
                    "hashAlgo": "2.16.840.1.101.3.4.2.1",
                    "mechanism": "ECDSA-SHA256",
                    "digests": [digest],
                })),
            );
        }
        store.write(|c| c.append_audit_batch(&events).map(|_| ()))?;
        written += n;
    }
    let audit_secs = t1.elapsed().as_secs_f64();
    drop(store);
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    let db_bytes = ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{path}{s}")).ok())
        .map(|m| m.len())
        .sum();
    Ok(Populated {
        users,
        credentials,
        audit_records,
        credentials_secs,
        audit_secs,
        db_bytes,
    })
}

/// `Store::verify_audit_chain` in this process: (records, seconds).
pub fn verify_in_process(url: &str, keys: &IntegrityKeys) -> anyhow::Result<(u64, f64)> {
    let store = Store::open(url, StoreOptions::default())?.with_keys(keys.clone());
    let t = Instant::now();
    let verdict = store.verify_audit_chain()?;
    let secs = t.elapsed().as_secs_f64();
    match verdict {
        storage::AuditVerdict::Intact { records } => Ok((records, secs)),
        storage::AuditVerdict::Broken { seq, reason } => {
            anyhow::bail!("the audit chain is broken at {seq}: {reason}")
        }
    }
}
