//! The operator commands of `csc-server`: non-interactive so that scripts and tests can drive
//! them. Secrets come from the environment or one line of standard input, never from the
//! command line (where `ps` would show them), and are never printed.

use std::fs;
use std::io::{BufRead, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sam::{
    Action, Actor, AuditSealer, AuditUpgrade, AuditVerdict, AuthMode, Credential, CredentialId,
    KeySpec, NewCredentialRequest, OtpChoice, Role, Sam, Scal, User, secrets,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::config::{Config, PinSource};

/// The name the CLI acts under: the person at the server's own host, with the data directory
/// and the token PIN (the bootstrap path). Its audit records name the role it acts as:
/// `operator:cli`, `security-officer:cli`, `auditor:cli`.
pub const CLI_NAME: &str = "cli";

/// The role every command of this process acts as (`--as ROLE`); unset: each command acts in
/// the role its act needs ([`sam::Action::default_role`]), since whoever runs the CLI on the
/// host holds the data directory and the token PIN anyway (README "Roles": the CLI is the bootstrap
/// path; the admin API is where roles separate people).
static ACT_AS: std::sync::OnceLock<Role> = std::sync::OnceLock::new();

/// Sets the role of `--as` (once, in `main`).
pub fn act_as(role: Role) {
    let _ = ACT_AS.set(role);
}

/// The actor of a CLI command doing `action`.
pub fn cli_actor(action: Action) -> Actor {
    Actor::new(
        CLI_NAME,
        ACT_AS.get().copied().unwrap_or(action.default_role()),
    )
}

/// Reads a secret from `env_var`, else one line of standard input.
pub fn read_secret(env_var: &str, what: &str) -> anyhow::Result<SecretString> {
    if let Ok(v) = std::env::var(env_var) {
        return Ok(SecretString::from(v));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("cannot read the {what} from standard input"))?;
    let secret = line.trim_end_matches(['\r', '\n']).to_owned();
    if secret.is_empty() {
        bail!("no {what}: set {env_var} or write it as one line on standard input");
    }
    Ok(SecretString::from(secret))
}

fn write_private_file(path: &Path, content: &str) -> anyhow::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(content.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Points the SoftHSM2 module at its configuration under the data directory; with `create`,
/// makes the data directory and the configuration when missing (`init`, `demo`). `main` calls
/// it first thing; [`open`] and [`init`] then need no environment change.
///
/// # Safety
///
/// Sets `SOFTHSM2_CONF` (see [`sam::point_softhsm_at`]): call it before any other thread of the
/// process exists, i.e. first thing in `main`, before a runtime or thread pool starts.
#[allow(unsafe_code)]
pub unsafe fn prepare_softhsm(cfg: &Config, create: bool) -> anyhow::Result<()> {
    if create {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cfg.data_dir)
            .with_context(|| format!("cannot create {}", cfg.data_dir.display()))?;
    }
    let Some(conf) = &cfg.softhsm_conf else {
        return Ok(());
    };
    if !conf.exists() {
        if !create {
            bail!(
                "SoftHSM2 configuration {} not found: run `csc-server init` first",
                conf.display()
            );
        }
        let tokens = cfg.data_dir.join("softhsm-tokens");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&tokens)?;
        let text = format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        );
        fs::write(conf, text).with_context(|| format!("cannot write {}", conf.display()))?;
    }
    // SAFETY: our caller guarantees that no other thread exists yet (`# Safety` above).
    unsafe { sam::point_softhsm_at(conf) };
    Ok(())
}

/// Opens the SAM (database and token) of an initialised data directory, after
/// [`prepare_softhsm`].
pub fn open(cfg: &Config) -> anyhow::Result<Sam> {
    connect(cfg, false)
}

/// The SAM over the configured database (created when `create`) and token.
fn connect(cfg: &Config, create: bool) -> anyhow::Result<Sam> {
    let sam = Sam::connect(
        &cfg.hsm_config()?,
        &cfg.database_url,
        create,
        &cfg.ca_file(),
    )
    .map_err(|e| match e {
        e @ sam::SamError::Database { .. } if !create => {
            anyhow::anyhow!("{e} (run `csc-server init` first?)")
        }
        e => anyhow::Error::new(e).context("cannot open the SAM"),
    })?;
    let sam = sam
        .with_policy(cfg.sam_policy())
        .with_login_limits(cfg.login_limits)
        .with_otp_notifier(crate::notify::from_config(&cfg.otp_channel)?);
    // the time-stamping authority: loaded, or created when its file is missing (by `init`, or
    // by the first command run on a data directory from before it)
    let sam = sam
        .with_tsa(&cfg.tsa_settings())
        .context("cannot set up the time-stamping authority")?;
    // the key that signs audit exports: found in the token, or created (same upgrade path)
    sam.with_audit_seal_key()
        .context("cannot set up the audit seal key")
}

/// `csc-server init`: the data directory, the SoftHSM2 token with a generated PIN readable only
/// by the owner, the database and the development CA; then a seal of the audit head in the
/// configured seal file. Idempotent. After
/// [`prepare_softhsm`] with `create`.
pub fn init(cfg: &Config) -> anyhow::Result<(Sam, Value)> {
    init_with(cfg, None)
}

/// [`init`], and with `security_officer` (name, password) the first security officer
/// ([`init_security_officer`]), reported as `securityOfficer`.
pub fn init_with(
    cfg: &Config,
    security_officer: Option<(&str, &SecretString)>,
) -> anyhow::Result<(Sam, Value)> {
    let mut token_created = false;
    if cfg.softhsm_conf.is_some() {
        // a token this server owns: create it (and its PINs) unless it exists
        let user_pin = match &cfg.token_pin {
            PinSource::File(path) if !path.exists() => {
                let pin = secrets::random_token(24)?;
                write_private_file(path, &pin)?;
                SecretString::from(pin)
            }
            _ => cfg.read_token_pin()?,
        };
        let so_pin_file = cfg.data_dir.join("token.so-pin");
        let so_pin = if so_pin_file.exists() {
            SecretString::from(fs::read_to_string(&so_pin_file)?.trim().to_owned())
        } else {
            let pin = secrets::random_token(24)?;
            write_private_file(&so_pin_file, &pin)?;
            SecretString::from(pin)
        };
        token_created = sam::init_token(&cfg.pkcs11_module, &cfg.token_label, &so_pin, &user_pin)?;
    }
    let sam = connect(cfg, true)?;
    let mut sealer = sam
        .audit_sealer(&cfg.audit_seal_file)
        .context("cannot open the audit seal file")?;
    if token_created {
        sam.record_token_init(&cfg.token_label, &cli_actor(Action::TokenInit))?;
    }
    let officer = match security_officer {
        Some((name, password)) => init_security_officer(&sam, name, password)?,
        None => Value::Null,
    };
    seal_now(&mut sealer);
    let report = json!({
        "securityOfficer": officer,
        "dataDir": cfg.data_dir.display().to_string(),
        "database": sam::redact_url(&cfg.database_url),
        "tokenLabel": cfg.token_label,
        "tokenCreated": token_created,
        "caCertificate": STANDARD.encode(sam.ca_certificate_der()),
        "tsaCertificate": sam.tsa_certificate_der().map(|c| STANDARD.encode(c)),
    });
    Ok((sam, report))
}

/// `csc-server user add NAME`: a signer.
pub fn user_add(sam: &Sam, name: &str, password: &SecretString) -> anyhow::Result<User> {
    user_add_with_role(sam, name, password, Role::Signer)
}

/// `csc-server user add NAME --role ROLE`: an operator adds signers, the security officer the
/// administrative users (`sam::roles`).
pub fn user_add_with_role(
    sam: &Sam,
    name: &str,
    password: &SecretString,
    role: Role,
) -> anyhow::Result<User> {
    Ok(sam.add_user(name, password, role, &cli_actor(Action::UserCreate(role)))?)
}

/// `csc-server init [--security-officer NAME]`: the first security officer (JT2A Part I 7.1.1.1),
/// once. Returns its name and whether it was created now; a user of that name in another role is
/// refused (one person, one role).
pub fn init_security_officer(
    sam: &Sam,
    name: &str,
    password: &SecretString,
) -> anyhow::Result<Value> {
    if let Some(existing) = sam.user_by_name(name)? {
        if existing.role != Role::SecurityOfficer {
            bail!(
                "user {name:?} exists as {}: a security officer is a user of its own",
                existing.role.as_str()
            );
        }
        return Ok(json!({ "name": name, "created": false }));
    }
    user_add_with_role(sam, name, password, Role::SecurityOfficer)?;
    Ok(json!({ "name": name, "created": true }))
}

/// Sets `key` of a JSON object (the outputs below are all objects).
fn set(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        map.insert(key.to_owned(), value);
    }
}

/// The JSON an operator sees for a credential.
pub fn credential_json(user: &User, c: &Credential) -> anyhow::Result<Value> {
    let chain = Sam::chain_base64(c)?;
    Ok(json!({
        "credentialID": c.id.to_string(),
        "user": user.name,
        "keyAlgo": c.key_spec,
        "SCAL": c.scal.as_str(),
        "multisign": c.multisign,
        "status": c.status.to_string(),
        "authMode": c.auth_mode.as_str(),
        "certificateSerial": c.cert_serial,
        "certificate": chain.first(),
        "certificates": chain,
        "certificateStatus": certificate_status(c)?,
        "certificateNotAfter": certificate_not_after(c)?,
    }))
}

/// The signer certificate's notAfter (RFC 3339, UTC), `null` without one: what an operator
/// watches for renewal (`csc_certificates_expiring` counts those close to it).
fn certificate_not_after(c: &Credential) -> anyhow::Result<Option<String>> {
    let chain = c.cert_chain_der()?;
    let Some(der) = chain.first() else {
        return Ok(None);
    };
    let cert = openssl::x509::X509::from_der(der)?;
    Ok(crate::certinfo::to_naive(cert.not_after()).map(|t| {
        t.and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }))
}

/// `pending` (no certificate yet: `credential create --csr` until `credential import-chain`, README
/// "Certificates from your CA"), else `valid` or `expired` (the signer certificate's validity
/// period, now).
fn certificate_status(c: &Credential) -> anyhow::Result<&'static str> {
    let chain = c.cert_chain_der()?;
    let Some(der) = chain.first() else {
        return Ok("pending");
    };
    let cert = openssl::x509::X509::from_der(der)?;
    Ok(if crate::certinfo::is_valid_at(&cert, sam::utc_now()) {
        "valid"
    } else {
        "expired"
    })
}

/// What `csc-server credential create` asks for besides the user and the PIN.
#[derive(Debug, Clone, Copy)]
pub struct CredentialOptions {
    pub spec: KeySpec,
    pub scal: Scal,
    pub multisign: u32,
    /// `--otp` (TOTP, offline) or `--online-otp` (sendOTP); SCAL 2 needs one.
    pub otp: OtpChoice,
    /// `--auth-mode explicit|oauth2code`.
    pub auth_mode: AuthMode,
}

impl CredentialOptions {
    /// The SAM's request for `user_name`'s new credential with these options.
    fn request(&self, user_name: &str, pin: SecretString) -> NewCredentialRequest {
        NewCredentialRequest {
            user_name: user_name.to_owned(),
            spec: self.spec,
            scal: self.scal,
            multisign: self.multisign,
            pin,
            otp: self.otp,
            auth_mode: self.auth_mode,
            description: None,
        }
    }
}

/// What `credential create` prints of a new credential: its JSON, its OTP kind and, once, the
/// TOTP seed's URI.
pub(crate) fn created_json(
    sam: &Sam,
    credential: &Credential,
    otp: OtpChoice,
    otpauth_uri: Option<SecretString>,
) -> anyhow::Result<Value> {
    let user = sam.owner_of(credential)?;
    let mut out = credential_json(&user, credential)?;
    let otp = match otp {
        OtpChoice::None => Value::Null,
        OtpChoice::Totp => json!("offline"),
        OtpChoice::Online => json!("online"),
    };
    set(&mut out, "otp", otp);
    if let Some(uri) = otpauth_uri {
        // the TOTP seed's one appearance outside the token: printed once, for the signer
        set(
            &mut out,
            "otpauth",
            Value::String(uri.expose_secret().to_owned()),
        );
    }
    Ok(out)
}

/// `csc-server credential create`.
pub fn credential_create(
    sam: &Sam,
    user_name: &str,
    opts: CredentialOptions,
    pin: SecretString,
) -> anyhow::Result<Value> {
    let created = sam.create_credential(
        opts.request(user_name, pin),
        &cli_actor(Action::CredentialCreate),
    )?;
    created_json(sam, &created.credential, opts.otp, created.otpauth_uri)
}

/// `csc-server credential create ... --csr [--subject DN]` (README "Certificates from your CA"):
/// the key is generated for the operator's CA; prints what `credential create` prints (no
/// certificate, `certificateStatus` `pending`) and `csr`, the PKCS#10 request (PEM) signed in the
/// token.
pub fn credential_create_for_csr(
    sam: &Sam,
    user_name: &str,
    opts: CredentialOptions,
    pin: SecretString,
    subject: Option<&str>,
) -> anyhow::Result<Value> {
    let pending = sam.create_credential_for_csr(
        opts.request(user_name, pin),
        subject,
        &cli_actor(Action::CredentialCreate),
    )?;
    let mut out = created_json(sam, &pending.credential, opts.otp, pending.otpauth_uri)?;
    set(&mut out, "csr", Value::String(pending.csr_pem));
    Ok(out)
}

/// `csc-server credential csr ID [--subject DN]`: a PKCS#10 request (PEM) over the
/// credential's key, signed in the token: `{"credentialID", "csr"}`.
pub fn credential_csr(sam: &Sam, id: &str, subject: Option<&str>) -> anyhow::Result<Value> {
    let id: CredentialId = id
        .parse()
        .map_err(|_| anyhow::anyhow!("{id:?} is not a credential ID"))?;
    let csr = sam.certificate_request(&id, subject, &cli_actor(Action::CredentialCsr))?;
    Ok(json!({ "credentialID": id.to_string(), "csr": csr }))
}

/// `csc-server credential unlock ID`: lifts the lock of the credential's PIN and OTP after too
/// many failures (Part I 7.1.2.5.1), audited.
pub fn credential_unlock(sam: &Sam, id: &str) -> anyhow::Result<Value> {
    let id: CredentialId = id
        .parse()
        .map_err(|_| anyhow::anyhow!("{id:?} is not a credential ID"))?;
    let unlocked = sam.unlock_credential(&id, &cli_actor(Action::CredentialUnlock))?;
    Ok(json!({
        "credentialID": id.to_string(),
        "unlocked": unlocked.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
    }))
}

/// `csc-server user unlock NAME`: lifts a login lock and clears the failure count, audited.
pub fn user_unlock(sam: &Sam, name: &str) -> anyhow::Result<Value> {
    let user = sam.unlock_user(name, &cli_actor(sam.act_on_user(Action::UserUnlock, name)?))?;
    Ok(json!({ "user": user.name, "wasLocked": user.locked, "locked": false }))
}

/// `csc-server user disable NAME`: login refused and every token and SAD of the user revoked,
/// in one transaction; no client acts for the user. Audited as `user.disable`.
pub fn user_disable(sam: &Sam, name: &str) -> anyhow::Result<Value> {
    let user = sam.disable_user(
        name,
        &cli_actor(sam.act_on_user(Action::UserDisable, name)?),
    )?;
    Ok(json!({ "user": user.name, "wasDisabled": user.disabled, "disabled": true }))
}

/// `csc-server user enable NAME`: lifts `user disable` (a login lock stays). Audited as
/// `user.enable`.
pub fn user_enable(sam: &Sam, name: &str) -> anyhow::Result<Value> {
    let user = sam.enable_user(name, &cli_actor(sam.act_on_user(Action::UserEnable, name)?))?;
    Ok(json!({ "user": user.name, "wasDisabled": user.disabled, "disabled": false }))
}

/// `csc-server client delegate CLIENT USER`: the client's own tokens (`client_credentials`)
/// may act for USER. Audited as `client.delegate`.
pub fn client_delegate(sam: &Sam, client_id: &str, user: &str) -> anyhow::Result<Value> {
    let added = sam.delegate_client(client_id, user, &cli_actor(Action::ClientDelegate))?;
    Ok(json!({ "client_id": client_id, "user": user, "delegated": true, "changed": added }))
}

/// `csc-server client undelegate CLIENT USER`: withdraws it. Audited as `client.undelegate`.
pub fn client_undelegate(sam: &Sam, client_id: &str, user: &str) -> anyhow::Result<Value> {
    let removed = sam.undelegate_client(client_id, user, &cli_actor(Action::ClientUndelegate))?;
    Ok(json!({ "client_id": client_id, "user": user, "delegated": false, "changed": removed }))
}

/// `csc-server client add NAME --redirect-uri URI... [--confidential]`: registers an OAuth 2.0
/// client. The secret is printed once and stored only as its SHA-256. Audited as
/// `client.register`.
pub fn client_add(
    sam: &Sam,
    name: &str,
    redirect_uris: &[String],
    confidential: bool,
) -> anyhow::Result<Value> {
    let client = sam.register_client(
        name,
        redirect_uris,
        confidential,
        &cli_actor(Action::ClientRegister),
    )?;
    let mut out = json!({
        "client_id": client.client_id,
        "name": name.trim(),
        "redirect_uris": redirect_uris,
        "confidential": confidential,
    });
    if let Some(s) = client.secret {
        set(&mut out, "client_secret", Value::String(s));
    }
    Ok(out)
}

/// `csc-server client list`: the registered clients (never a secret), each with the users
/// delegated to it (`delegated_users`, by name).
pub fn client_list(sam: &Sam) -> anyhow::Result<Value> {
    let (clients, delegations) = sam.clients_as(&cli_actor(Action::ClientList))?;
    Ok(Value::Array(
        clients
            .iter()
            .map(|c| {
                let users: Vec<&str> = delegations
                    .iter()
                    .filter(|(client, _)| *client == c.client_id)
                    .map(|(_, user)| user.as_str())
                    .collect();
                json!({
                    "client_id": c.client_id,
                    "name": c.name,
                    "redirect_uris": c.redirect_uris,
                    "confidential": c.is_confidential(),
                    "delegated_users": users,
                })
            })
            .collect(),
    ))
}

/// `csc-server credential list [NAME]`.
pub fn credential_list(sam: &Sam, user_name: Option<&str>) -> anyhow::Result<Value> {
    let list = sam
        .credentials_with_owners_as(&cli_actor(Action::CredentialList), user_name)?
        .iter()
        .map(|(u, c)| credential_json(u, c))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Value::Array(list))
}

/// `csc-server credential import-chain ID FILE`: a PEM bundle, signer first.
pub fn credential_import_chain(sam: &Sam, id: &str, pem_file: &Path) -> anyhow::Result<Value> {
    let id: CredentialId = id
        .parse()
        .map_err(|_| anyhow::anyhow!("{id:?} is not a credential ID"))?;
    let pem = fs::read(pem_file).with_context(|| format!("cannot read {}", pem_file.display()))?;
    let chain = sam::ca::pem_chain_to_der(&pem)?;
    let credential =
        sam.import_certificate_chain(&id, chain, &cli_actor(Action::CredentialImportChain))?;
    credential_json(&sam.owner_of(&credential)?, &credential)
}

/// `csc-server credential destroy ID`.
pub fn credential_destroy(sam: &Sam, id: &str) -> anyhow::Result<Value> {
    let id: CredentialId = id
        .parse()
        .map_err(|_| anyhow::anyhow!("{id:?} is not a credential ID"))?;
    sam.destroy_credential_key(&id, &cli_actor(Action::CredentialDestroy))?;
    Ok(json!({ "credentialID": id.to_string(), "status": "disabled", "keyDestroyed": true }))
}

fn parse_credential_id(id: &str) -> anyhow::Result<CredentialId> {
    id.parse()
        .map_err(|_| anyhow::anyhow!("{id:?} is not a credential ID"))
}

/// `csc-server credential disable ID`: the credential as it is now.
pub fn credential_disable(sam: &Sam, id: &str) -> anyhow::Result<Value> {
    let credential = sam.disable_credential(
        &parse_credential_id(id)?,
        &cli_actor(Action::CredentialDisable),
    )?;
    credential_json(&sam.owner_of(&credential)?, &credential)
}

/// `csc-server credential enable ID`: the credential as it is now.
pub fn credential_enable(sam: &Sam, id: &str) -> anyhow::Result<Value> {
    let credential = sam.enable_credential(
        &parse_credential_id(id)?,
        &cli_actor(Action::CredentialEnable),
    )?;
    credential_json(&sam.owner_of(&credential)?, &credential)
}

/// `csc-server credential revoke ID --reason TEXT`: the credential, `revoked`.
pub fn credential_revoke(sam: &Sam, id: &str, reason: &str) -> anyhow::Result<Value> {
    let credential = sam.revoke_credential(
        &parse_credential_id(id)?,
        reason,
        &cli_actor(Action::CredentialRevoke),
    )?;
    let mut out = credential_json(&sam.owner_of(&credential)?, &credential)?;
    if let Some(map) = out.as_object_mut() {
        map.insert("keyDestroyed".into(), json!(true));
    }
    Ok(out)
}

/// `csc-server credential rekey ID [--key SPEC] [--csr [--subject DN]]`: the credential with
/// its new certificate (or `csr`), and `oldKeyDestroyed`.
pub fn credential_rekey(
    sam: &Sam,
    id: &str,
    spec: Option<KeySpec>,
    certifier: sam::RekeyCertifier<'_>,
) -> anyhow::Result<Value> {
    let rekeyed = sam.rekey_credential(
        &parse_credential_id(id)?,
        spec,
        certifier,
        &cli_actor(Action::CredentialRekey),
    )?;
    let mut out = credential_json(&sam.owner_of(&rekeyed.credential)?, &rekeyed.credential)?;
    if let Some(map) = out.as_object_mut() {
        map.insert("oldKeyDestroyed".into(), json!(true));
        if let Some(csr) = rekeyed.csr_pem {
            map.insert("csr".into(), json!(csr));
        }
    }
    Ok(out)
}

/// `csc-server credential migrate-otp`: the one-time upgrade of a database made before TOTP
/// seeds moved into the token (README "Upgrading"): every plain seed is imported into the token
/// and its verifier rewritten; until then such a TOTP verifies nothing. `Ok(true)` when nothing
/// failed. Audited per credential as `otp.migrate`.
pub fn credential_migrate_otp(sam: &Sam) -> anyhow::Result<(bool, Value)> {
    let report = sam.migrate_otp_seeds(&cli_actor(Action::OtpMigrate))?;
    let failed: Vec<Value> = report
        .failed
        .iter()
        .map(|(id, error)| json!({ "credentialID": id.to_string(), "error": error }))
        .collect();
    Ok((
        failed.is_empty(),
        json!({
            "migrated": report.migrated.len(),
            "credentials": report.migrated.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "failed": failed,
        }),
    ))
}

/// The seal files `audit verify` checks: those given with `--seals` (each must exist), else the
/// configured seal file (`audit_seal_file`) when it exists; none when no seal was ever written
/// there (then only the chain is checked, and the report says `"seals": 0`).
pub fn seal_files(cfg: &Config, given: Vec<PathBuf>) -> Vec<PathBuf> {
    if !given.is_empty() {
        return given;
    }
    if cfg.audit_seal_file.exists() {
        vec![cfg.audit_seal_file.clone()]
    } else {
        Vec::new()
    }
}

/// `csc-server audit verify [--seals PATH]...`: `Ok(true)` when the chain verifies under the
/// audit key and every seal verifies and matches its record (Part II 3.2.2.4, Part I 7.1.4.3).
/// Damage is reported with the first broken record, also as one line on standard error.
pub fn audit_verify(sam: &Sam, seal_files: &[PathBuf]) -> anyhow::Result<(bool, Value)> {
    let report = sam.verify_audit_as(&cli_actor(Action::AuditVerify), seal_files)?;
    let files: Vec<String> = seal_files.iter().map(|p| p.display().to_string()).collect();
    Ok(match report.verdict {
        AuditVerdict::Intact { records } => (
            true,
            json!({
                "intact": true,
                "records": records,
                "seals": report.seals,
                "sealFiles": files,
                "keyedFrom": report.keyed_from,
            }),
        ),
        AuditVerdict::Broken { seq, reason } => {
            eprintln!("audit log damaged: first broken record {seq}: {reason}");
            (
                false,
                json!({
                    "intact": false,
                    "firstBrokenRecord": seq,
                    "reason": reason,
                    "seals": report.seals,
                    "sealFiles": files,
                    "keyedFrom": report.keyed_from,
                }),
            )
        }
    })
}

/// `integrity seal`: the one-time upgrade step of a database made before row integrity.
pub fn integrity_seal(sam: &Sam) -> anyhow::Result<Value> {
    let report = sam.seal_database(&cli_actor(Action::IntegritySeal))?;
    let sealed: serde_json::Map<String, Value> = report
        .sealed
        .into_iter()
        .map(|(table, n)| (table, json!(n)))
        .collect();
    Ok(json!({
        "sealed": sealed,
        "setPinAgain": report.legacy_pin_credentials,
    }))
}

/// `csc-server audit upgrade [--seals PATH]...`: once, after upgrading a database begun by a
/// version without keyed audit links, confirms the switch point (after verifying the whole chain
/// and the seals, as `audit verify`). `Ok(false)` when refused (damaged).
pub fn audit_upgrade(sam: &Sam, seal_files: &[PathBuf]) -> anyhow::Result<(bool, Value)> {
    Ok(
        match sam.confirm_audit_switch(seal_files, &cli_actor(Action::AuditUpgrade))? {
            AuditUpgrade::AllKeyed => (true, json!({ "keyedFrom": 1, "confirmed": false })),
            AuditUpgrade::Confirmed { keyed_from, now } => (
                true,
                json!({ "keyedFrom": keyed_from, "plainRecords": keyed_from - 1, "confirmed": now }),
            ),
            AuditUpgrade::Refused { seq, reason } => {
                eprintln!("audit log damaged: first broken record {seq}: {reason}");
                (
                    false,
                    json!({ "intact": false, "firstBrokenRecord": seq, "reason": reason }),
                )
            }
        },
    )
}

/// Runs an operator command on the SAM of `cfg`, then seals the audit head in the configured
/// seal file if the command appended records (the seal file is opened first, so a command that
/// could not seal does nothing). A failed seal after the command is reported on standard error.
pub fn sealed_command<T>(
    cfg: &Config,
    command: impl FnOnce(&Sam) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let sam = open(cfg)?;
    let mut sealer = sam
        .audit_sealer_from_now(&cfg.audit_seal_file)
        .context("cannot open the audit seal file")?;
    let out = command(&sam);
    seal_now(&mut sealer);
    out
}

/// Seals the head if it moved; a failure is reported on standard error (the work it seals is
/// done).
pub fn seal_now(sealer: &mut AuditSealer) {
    if let Err(e) = sealer.seal_if_moved() {
        eprintln!(
            "warning: the audit head could not be sealed in {}: {e}",
            sealer.path().display()
        );
    }
}

/// The demo signer's name.
pub const DEMO_USER: &str = "demo";

/// `csc-server demo` (before serving): a demo user with one credential of each common kind,
/// created once. Password and PIN come from `CSC_PASSWORD`/`CSC_PIN` or the documented
/// defaults.
pub fn demo_setup(sam: &Sam) -> anyhow::Result<Value> {
    let password = std::env::var("CSC_PASSWORD").unwrap_or_else(|_| "demo-password".into());
    let pin = std::env::var("CSC_PIN").unwrap_or_else(|_| "123456".into());
    let user = match sam.user_by_name(DEMO_USER)? {
        Some(u) => u,
        None => user_add(sam, DEMO_USER, &SecretString::from(password))?,
    };
    let existing = sam.credentials_with_owners(Some(DEMO_USER))?;
    if existing.is_empty() {
        for (spec, scal, multisign, otp) in [
            (KeySpec::Rsa2048, Scal::One, 1, OtpChoice::None),
            (KeySpec::EcP256, Scal::One, 1, OtpChoice::None),
            // SCAL 2: PIN and an online OTP (credentials/sendOTP, then DATA_DIR/otp-outbox.log)
            (KeySpec::Rsa2048, Scal::Two, 10, OtpChoice::Online),
        ] {
            credential_create(
                sam,
                DEMO_USER,
                CredentialOptions {
                    spec,
                    scal,
                    multisign,
                    otp,
                    auth_mode: AuthMode::Explicit,
                },
                SecretString::from(pin.clone()),
            )?;
        }
    }
    let rows = sam.credentials_with_owners(Some(DEMO_USER))?;
    let ids: Vec<Value> = rows
        .iter()
        .map(|(_, c)| json!({ "credentialID": c.id.to_string(), "keyAlgo": c.key_spec, "SCAL": c.scal.as_str() }))
        .collect();
    Ok(json!({ "user": user.name, "credentials": ids }))
}

/// `csc-server audit export [--from N] [--to N] [--out FILE] [--seals PATH]...` (Part
/// I 7.1.5): records `from..=to` with the seals of `seal_files` in that range, as signed JSON
/// lines (`sam::audit_export`), to `out` (standard output when `None`), acting as the auditor by
/// default. Refused, with nothing written, when the log or a seal does not verify.
pub fn audit_export(
    sam: &Sam,
    seal_files: &[PathBuf],
    from: Option<i64>,
    to: Option<i64>,
    out: Option<&Path>,
) -> anyhow::Result<Value> {
    let actor = cli_actor(Action::AuditExport);
    let summary = match out {
        Some(path) => {
            // written beside, then renamed: a failed export leaves no file that looks whole
            let tmp = path.with_extension("partial");
            let file = fs::File::create(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            let mut writer = std::io::BufWriter::new(file);
            let exported = sam.export_audit_as(&actor, seal_files, from, to, &mut writer);
            let done = exported.map_err(anyhow::Error::new).and_then(|summary| {
                let file = writer.into_inner().map_err(|e| e.into_error())?;
                file.sync_all()?;
                fs::rename(&tmp, path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Ok(summary)
            });
            if done.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            done?
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            sam.export_audit_as(&actor, seal_files, from, to, &mut lock)?
        }
    };
    Ok(json!({
        "exported": true,
        "from": summary.from,
        "to": summary.to,
        "records": summary.count,
        "seals": summary.seals,
        "out": out.map(|p| p.display().to_string()),
    }))
}

/// `csc-server audit seal-key`: the audit seal key's public key (PEM), what an auditor verifies
/// exports with; acting as the auditor by default.
pub fn audit_seal_key(sam: &Sam) -> anyhow::Result<String> {
    Ok(sam.audit_seal_public_key_pem(&cli_actor(Action::AuditExport))?)
}

/// `csc-server audit verify-export FILE --seal-key PEM`: checks an export with the seal key's
/// public key alone (`sam::verify_audit_export`); opens neither a token nor a database, so it
/// runs on any machine. `Ok(true)` and a summary when intact; `Ok(false)` with the first
/// failing line and why (also one line on standard error) otherwise.
pub fn audit_verify_export(file: &Path, seal_key: &Path) -> anyhow::Result<(bool, Value)> {
    let pem = fs::read(seal_key).with_context(|| format!("cannot read {}", seal_key.display()))?;
    let export = fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut reader = std::io::BufReader::new(export);
    Ok(match sam::verify_audit_export(&mut reader, &pem) {
        Ok(report) => (
            true,
            json!({
                "intact": true,
                "from": report.from,
                "to": report.to,
                "records": report.records,
                "seals": report.seals,
                "exportedAt": report.exported_at,
                "sealKey": report.seal_key,
            }),
        ),
        Err(e) => {
            eprintln!("audit export damaged: {e}");
            (
                false,
                json!({ "intact": false, "line": e.line, "reason": e.reason }),
            )
        }
    })
}
