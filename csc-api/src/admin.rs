//! The operator commands of `csc-server`: non-interactive so that scripts and tests can drive
//! them. Secrets come from the environment or one line of standard input, never from the
//! command line (where `ps` would show them), and are never printed.

use std::fs;
use std::io::{BufRead, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sam::{KeySpec, NewCredentialRequest, OtpChoice, Sam, audit_event, secrets};
use secrecy::SecretString;
use serde_json::{Value, json};
use storage::{
    AuditVerdict, AuthMode, Credential, CredentialId, NewOAuthClient, NewUser, Role, Scal, Store,
    StoreOptions, User, secret_hash,
};

use crate::config::{Config, PinSource};

/// Who the audit log names for operator commands.
pub const OPERATOR: &str = "operator:cli";

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

/// Points the SoftHSM2 module at its configuration under the data directory, creating it when
/// `create` is set. The commands call it first thing.
///
/// # Safety
///
/// Sets `SOFTHSM2_CONF` (see [`sam::point_softhsm_at`]): call it before any other thread of the
/// process exists, i.e. first thing in `main`, before a runtime or thread pool starts.
#[allow(unsafe_code)]
pub unsafe fn prepare_softhsm(cfg: &Config, create: bool) -> anyhow::Result<()> {
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

/// Opens the store and the SAM of an initialised data directory.
///
/// # Safety
///
/// Sets `SOFTHSM2_CONF` (see [`sam::point_softhsm_at`]): call it before any other thread of the
/// process exists, i.e. first thing in `main`, before a runtime or thread pool starts.
#[allow(unsafe_code)]
pub unsafe fn open(cfg: &Config) -> anyhow::Result<Sam> {
    // SAFETY: our caller guarantees that no other thread exists yet (`# Safety` above).
    unsafe { prepare_softhsm(cfg, false) }?;
    let store = Store::open(&cfg.database_url, StoreOptions::default()).with_context(|| {
        format!(
            "cannot open the database {} (run `csc-server init` first?)",
            redact_url(&cfg.database_url)
        )
    })?;
    Ok(Sam::open(&cfg.hsm_config()?, store, &cfg.ca_file())
        .context("cannot open the SAM")?
        .with_policy(cfg.sam_policy())
        .with_otp_notifier(crate::notify::from_config(&cfg.otp_channel)?))
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// `csc-server init`: the data directory, the SoftHSM2 token with a generated PIN readable only
/// by the owner, the database and the development CA. Idempotent.
///
/// # Safety
///
/// Sets `SOFTHSM2_CONF` (see [`sam::point_softhsm_at`]): call it before any other thread of the
/// process exists, i.e. first thing in `main`, before a runtime or thread pool starts.
#[allow(unsafe_code)]
pub unsafe fn init(cfg: &Config) -> anyhow::Result<(Sam, Value)> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&cfg.data_dir)
        .with_context(|| format!("cannot create {}", cfg.data_dir.display()))?;
    // SAFETY: our caller guarantees that no other thread exists yet (`# Safety` above).
    unsafe { prepare_softhsm(cfg, true) }?;
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
    let store = Store::open_or_create(&cfg.database_url, StoreOptions::default())
        .with_context(|| format!("cannot open {}", redact_url(&cfg.database_url)))?;
    let sam = Sam::open(&cfg.hsm_config()?, store, &cfg.ca_file())
        .context("cannot open the SAM")?
        .with_policy(cfg.sam_policy())
        .with_otp_notifier(crate::notify::from_config(&cfg.otp_channel)?);
    if token_created {
        sam.store().write(|c| {
            c.append_audit(&audit_event(
                "token.init",
                OPERATOR,
                &cfg.token_label,
                "success",
                json!({}),
            ))
        })?;
    }
    let report = json!({
        "dataDir": cfg.data_dir.display().to_string(),
        "database": redact_url(&cfg.database_url),
        "tokenLabel": cfg.token_label,
        "tokenCreated": token_created,
        "caCertificate": STANDARD.encode(sam.ca_certificate_der()),
    });
    Ok((sam, report))
}

fn valid_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// `csc-server user add NAME`.
pub fn user_add(sam: &Sam, name: &str, password: &SecretString) -> anyhow::Result<User> {
    if !valid_user_name(name) {
        bail!("a user name has 1 to 64 characters among letters, digits and . _ - @");
    }
    {
        use secrecy::ExposeSecret;
        if password.expose_secret().chars().count() < 8 {
            bail!("the password must have at least 8 characters");
        }
    }
    let verifier = secrets::hash_secret(password)?;
    let new = NewUser {
        name: name.to_owned(),
        password_hash: verifier,
        role: Role::Signer,
    };
    let user = sam
        .store()
        .write(|c| {
            let user = c.create_user(&new)?;
            c.append_audit(&audit_event(
                "user.create",
                OPERATOR,
                name,
                "success",
                json!({}),
            ))?;
            Ok(user)
        })
        .map_err(|e| match e {
            storage::StorageError::Conflict(_) => anyhow::anyhow!("user {name:?} already exists"),
            e => e.into(),
        })?;
    Ok(user)
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
    }))
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

/// `csc-server credential create`.
pub fn credential_create(
    sam: &Sam,
    user_name: &str,
    opts: CredentialOptions,
    pin: SecretString,
) -> anyhow::Result<Value> {
    let created = sam.create_credential(
        NewCredentialRequest {
            user_name: user_name.to_owned(),
            spec: opts.spec,
            scal: opts.scal,
            multisign: opts.multisign,
            pin,
            otp: opts.otp,
            auth_mode: opts.auth_mode,
            description: None,
        },
        OPERATOR,
    )?;
    let user = sam
        .store()
        .read(|c| c.user(&created.credential.user_id))?
        .context("the user vanished")?;
    let mut out = credential_json(&user, &created.credential)?;
    out["otp"] = match opts.otp {
        OtpChoice::None => Value::Null,
        OtpChoice::Totp => json!("offline"),
        OtpChoice::Online => json!("online"),
    };
    if let Some(uri) = created.otpauth_uri {
        out["otpauth"] = Value::String(uri);
    }
    Ok(out)
}

/// `csc-server credential unlock ID`: lifts the lock of the credential's PIN and OTP after too
/// many failures (Part I 7.1.2.5.1), audited.
pub fn credential_unlock(sam: &Sam, id: &str) -> anyhow::Result<Value> {
    let id: CredentialId = id
        .parse()
        .map_err(|_| anyhow::anyhow!("{id:?} is not a credential ID"))?;
    let unlocked = sam.unlock_credential(&id, OPERATOR)?;
    Ok(json!({
        "credentialID": id.to_string(),
        "unlocked": unlocked.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
    }))
}

/// `csc-server user unlock NAME`: lifts a login lock and clears the failure count, audited.
pub fn user_unlock(sam: &Sam, name: &str) -> anyhow::Result<Value> {
    let user = sam
        .store()
        .write(|c| {
            let Some(user) = c.user_by_name(name)? else {
                return Ok(None);
            };
            c.set_user_lock(&user.id, 0, false)?;
            c.append_audit(&audit_event(
                "user.unlock",
                OPERATOR,
                name,
                "success",
                json!({ "wasLocked": user.locked, "failedLogins": user.failed_logins }),
            ))?;
            Ok(Some(user))
        })?
        .ok_or_else(|| anyhow::anyhow!("no user named {name:?}"))?;
    Ok(json!({ "user": user.name, "wasLocked": user.locked, "locked": false }))
}

/// A redirect URI a client may register: absolute (a scheme), no fragment, no spaces
/// (RFC 6749 §3.1.2). Matched exactly at authorization time.
fn valid_redirect_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let web = matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https");
    scheme_ok
        && !rest.is_empty()
        && (!web || rest.starts_with("//") && rest.len() > 2)
        && !uri.contains('#')
        && uri.len() <= 2000
        && !uri.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `csc-server client add NAME --redirect-uri URI... [--confidential]`: registers an OAuth 2.0
/// client (spec §8.3: client id, redirect URIs, and a secret for a confidential client). The
/// secret is printed once and stored only as its SHA-256. Audited as `client.register`.
pub fn client_add(
    sam: &Sam,
    name: &str,
    redirect_uris: &[String],
    confidential: bool,
) -> anyhow::Result<Value> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        bail!("a client name has 1 to 100 printable characters");
    }
    if redirect_uris.is_empty() {
        bail!("give at least one --redirect-uri");
    }
    if let Some(bad) = redirect_uris.iter().find(|u| !valid_redirect_uri(u)) {
        bail!("{bad:?} is not an absolute redirect URI without a fragment");
    }
    let client_id = secrets::random_token(16)?;
    let secret = if confidential {
        Some(format!("csc_cs_{}", secrets::random_token(32)?))
    } else {
        None
    };
    let new = NewOAuthClient {
        client_id: client_id.clone(),
        name: name.to_owned(),
        redirect_uris: redirect_uris.to_vec(),
        secret_hash: secret.as_ref().map(|s| secret_hash(s.as_bytes()).to_vec()),
    };
    sam.store().write(|c| {
        c.create_oauth_client(&new)?;
        c.append_audit(&audit_event(
            "client.register",
            OPERATOR,
            &client_id,
            "success",
            json!({ "name": name, "redirectURIs": redirect_uris, "confidential": confidential }),
        ))
    })?;
    let mut out = json!({
        "client_id": client_id,
        "name": name,
        "redirect_uris": redirect_uris,
        "confidential": confidential,
    });
    if let Some(s) = secret {
        out["client_secret"] = Value::String(s);
    }
    Ok(out)
}

/// `csc-server client list`: the registered clients (never a secret).
pub fn client_list(sam: &Sam) -> anyhow::Result<Value> {
    let clients = sam.store().read(|c| c.list_oauth_clients())?;
    Ok(Value::Array(
        clients
            .iter()
            .map(|c| {
                json!({
                    "client_id": c.client_id,
                    "name": c.name,
                    "redirect_uris": c.redirect_uris,
                    "confidential": c.is_confidential(),
                })
            })
            .collect(),
    ))
}

/// `csc-server credential list [NAME]`.
pub fn credential_list(sam: &Sam, user_name: Option<&str>) -> anyhow::Result<Value> {
    if let Some(name) = user_name
        && sam.store().read(|c| c.user_by_name(name))?.is_none()
    {
        bail!("no user named {name:?}");
    }
    let rows = sam.store().read(|c| c.list_credentials(user_name))?;
    let list = rows
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
    let credential = sam.import_certificate_chain(&id, chain, OPERATOR)?;
    let user = sam
        .store()
        .read(|c| c.user(&credential.user_id))?
        .context("the user vanished")?;
    credential_json(&user, &credential)
}

/// `csc-server credential destroy ID`.
pub fn credential_destroy(sam: &Sam, id: &str) -> anyhow::Result<Value> {
    let id: CredentialId = id
        .parse()
        .map_err(|_| anyhow::anyhow!("{id:?} is not a credential ID"))?;
    sam.destroy_credential_key(&id, OPERATOR)?;
    Ok(json!({ "credentialID": id.to_string(), "status": "disabled", "keyDestroyed": true }))
}

/// `csc-server audit verify`: `Ok(true)` when the chain is intact.
pub fn audit_verify(sam: &Sam) -> anyhow::Result<(bool, Value)> {
    Ok(match sam.store().verify_audit_chain()? {
        AuditVerdict::Intact { records } => (true, json!({ "intact": true, "records": records })),
        AuditVerdict::Broken { seq, reason } => (
            false,
            json!({ "intact": false, "firstBrokenRecord": seq, "reason": reason }),
        ),
    })
}

/// The demo signer's name.
pub const DEMO_USER: &str = "demo";

/// `csc-server demo` (before serving): a demo user with one credential of each common kind,
/// created once. Password and PIN come from `CSC_PASSWORD`/`CSC_PIN` or the documented
/// defaults.
pub fn demo_setup(sam: &Sam) -> anyhow::Result<Value> {
    let password = std::env::var("CSC_PASSWORD").unwrap_or_else(|_| "demo-password".into());
    let pin = std::env::var("CSC_PIN").unwrap_or_else(|_| "123456".into());
    let user = match sam.store().read(|c| c.user_by_name(DEMO_USER))? {
        Some(u) => u,
        None => user_add(sam, DEMO_USER, &SecretString::from(password))?,
    };
    let existing = sam.store().read(|c| c.list_credentials(Some(DEMO_USER)))?;
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
    let rows = sam.store().read(|c| c.list_credentials(Some(DEMO_USER)))?;
    let ids: Vec<Value> = rows
        .iter()
        .map(|(_, c)| json!({ "credentialID": c.id.to_string(), "keyAlgo": c.key_spec, "SCAL": c.scal.as_str() }))
        .collect();
    Ok(json!({ "user": user.name, "credentials": ids }))
}
