//! Configuration: built-in defaults, then a TOML file (`--config FILE`, else
//! `<data-dir>/config.toml` when present), then `CSC_`-prefixed environment variables. Secrets
//! (the token PIN) are `SecretString`s and never printed.

use std::path::{Path, PathBuf};

use anyhow::Context;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::{Figment, Metadata, Profile, Provider};
use secrecy::SecretString;
use serde::Deserialize;

/// The default PKCS#11 module: Debian's SoftHSM2.
pub const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The default listen address of `serve`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The environment variables read as configuration (others, such as `CSC_PIN`, are command
/// inputs and not configuration). Public for the test that checks the deploy files use only these.
pub const ENV_KEYS: &[&str] = &[
    "database_url",
    "listen",
    "pkcs11_module",
    "token_label",
    "token_pin",
    "token_pin_file",
    "softhsm_conf",
    "max_body_bytes",
    "access_token_ttl_secs",
    "refresh_token_ttl_secs",
    "sad_ttl_secs",
    "max_transaction_life_secs",
    "max_factor_failures",
    "max_login_failures",
    "login_concurrency",
    "login_queue",
    "online_otp_ttl_secs",
    "otp_outbox",
    "otp_webhook_url",
    "public_url",
    "oauth2_code_ttl_secs",
    "purge_interval_secs",
    "purge_after_secs",
    "audit_seal_file",
    "audit_seal_interval_secs",
    "service_name",
    "service_region",
    "service_lang",
    "service_description",
    "service_logo",
    "tsa_policy_oid",
    "tsa_accuracy_ms",
    "tsa_serial_prefix",
    "log_format",
    "metrics_listen",
    "tls_cert_file",
    "tls_key_file",
    "tls_client_ca_file",
    "tls_client_auth",
    "allow_plain_http",
    "pkcs11_slot",
    "token_serial",
    "hsm_login_per_session",
    "hsm_max_sessions",
    "hsm_key_vendor_attributes",
    "assurance_level",
    "cert_expiry_warning_days",
    "admin_listen",
    "admin_tls_cert_file",
    "admin_tls_key_file",
    "admin_tls_client_ca_file",
    "admin_token_ttl_secs",
];

/// What the operator may set. Every field is optional; [`Config::resolve`] fills the defaults
/// that depend on the data directory.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database_url: Option<String>,
    pub listen: Option<String>,
    pub pkcs11_module: Option<PathBuf>,
    pub token_label: Option<String>,
    pub token_pin: Option<SecretString>,
    pub token_pin_file: Option<PathBuf>,
    pub softhsm_conf: Option<PathBuf>,
    pub max_body_bytes: Option<usize>,
    pub access_token_ttl_secs: Option<u32>,
    pub refresh_token_ttl_secs: Option<u32>,
    pub sad_ttl_secs: Option<u32>,
    pub max_transaction_life_secs: Option<u32>,
    pub max_factor_failures: Option<u16>,
    pub max_login_failures: Option<u16>,
    pub login_concurrency: Option<usize>,
    pub login_queue: Option<usize>,
    pub online_otp_ttl_secs: Option<u32>,
    pub otp_outbox: Option<PathBuf>,
    pub otp_webhook_url: Option<String>,
    pub public_url: Option<String>,
    pub oauth2_code_ttl_secs: Option<u32>,
    pub purge_interval_secs: Option<u32>,
    pub purge_after_secs: Option<u32>,
    pub audit_seal_file: Option<PathBuf>,
    pub audit_seal_interval_secs: Option<u32>,
    pub service_name: Option<String>,
    pub service_region: Option<String>,
    pub service_lang: Option<String>,
    pub service_description: Option<String>,
    pub service_logo: Option<String>,
    pub tsa_policy_oid: Option<String>,
    pub tsa_accuracy_ms: Option<u32>,
    pub tsa_serial_prefix: Option<u32>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub tls_client_ca_file: Option<PathBuf>,
    pub tls_client_auth: Option<crate::tls::ClientAuth>,
    pub allow_plain_http: Option<bool>,
    pub pkcs11_slot: Option<u64>,
    pub token_serial: Option<String>,
    pub hsm_login_per_session: Option<bool>,
    pub hsm_max_sessions: Option<usize>,
    pub hsm_key_vendor_attributes: Option<String>,
    pub log_format: Option<LogFormat>,
    pub metrics_listen: Option<String>,
    pub assurance_level: Option<u8>,
    pub cert_expiry_warning_days: Option<u32>,
    pub admin_listen: Option<String>,
    pub admin_tls_cert_file: Option<PathBuf>,
    pub admin_tls_key_file: Option<PathBuf>,
    pub admin_tls_client_ca_file: Option<PathBuf>,
    pub admin_token_ttl_secs: Option<u32>,
}

/// How the process writes its log on standard error (`log_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines; coloured only when standard error is a terminal.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`), for log shippers.
    Json,
}

/// Whether the setting `key` is text (a string, a path, a secret): probed by deserialising a
/// configuration holding only that key as a string, so a field added later is classified by its
/// own type.
fn takes_text(key: &str) -> bool {
    Figment::from(Serialized::default(key, "text"))
        .extract::<FileConfig>()
        .is_ok()
}

/// The `CSC_` environment variables of the text settings, taken exactly as written: figment's
/// `Env` provider parses values (`CSC_TOKEN_PIN=1234` became a number that a string field
/// refused, and `0123` would have lost its zero), so a PIN, a label, a path or a name comes
/// through this provider instead. Number and boolean settings still go through `Env`.
struct EnvText(Dict);

impl EnvText {
    fn read() -> EnvText {
        EnvText(
            Env::prefixed("CSC_")
                .only(ENV_KEYS)
                .iter()
                .filter(|(k, _)| takes_text(k.as_str()))
                .map(|(k, v)| (k.as_str().to_owned(), Value::from(v)))
                .collect(),
        )
    }
}

impl Provider for EnvText {
    fn metadata(&self) -> Metadata {
        Metadata::named("`CSC_` environment variable(s)")
    }

    fn data(&self) -> figment::Result<figment::value::Map<Profile, Dict>> {
        Ok(Profile::Default.collect(self.0.clone()))
    }
}

/// What `info` says about the service.
#[derive(Debug, Clone)]
pub struct ServiceInfo {
    pub name: String,
    pub logo: String,
    pub region: String,
    pub lang: String,
    pub description: String,
}

/// Where the token PIN comes from.
pub enum PinSource {
    Value(SecretString),
    File(PathBuf),
}

/// The effective configuration.
pub struct Config {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub listen: String,
    pub pkcs11_module: PathBuf,
    pub token_label: String,
    pub token_pin: PinSource,
    /// The SoftHSM2 configuration to point the module at; `None` for other modules.
    pub softhsm_conf: Option<PathBuf>,
    pub max_body_bytes: usize,
    /// Lifetime of a service access token (seconds).
    pub access_token_ttl_secs: u32,
    /// Lifetime of a refresh token (seconds).
    pub refresh_token_ttl_secs: u32,
    /// Lifetime of a SAD (seconds; the spec's default `expiresIn` is 3600).
    pub sad_ttl_secs: u32,
    /// Maximum life of a transaction from its activation, `extendTransaction` renewals
    /// included (seconds): no SAD of it outlives this.
    pub max_transaction_life_secs: u32,
    /// Consecutive wrong PINs/OTPs that lock a credential's activation.
    pub max_factor_failures: u16,
    /// Consecutive failed logins (auth/login, the OAuth 2.0 page) that lock a user.
    pub max_login_failures: u16,
    /// Password checks (Argon2id, 19 MiB each) that run at once, and how many more may wait;
    /// beyond them a login is answered 429 (`sam::PasswordGate`).
    pub login_limits: sam::LoginLimits,
    /// Lifetime of an online OTP (seconds).
    pub online_otp_ttl_secs: u32,
    /// Where online OTPs are delivered.
    pub otp_channel: OtpChannel,
    /// The server's public base URL (`https://rssp.example`), from which `info` derives the
    /// `oauth2` base URI; `None`: derived from each request's Host.
    pub public_url: Option<String>,
    /// Lifetime of an OAuth 2.0 authorization code (seconds).
    pub oauth2_code_ttl_secs: u32,
    /// How often `serve` deletes expired SADs, tokens, online OTPs and OAuth 2.0 codes
    /// (seconds; 0: never).
    pub purge_interval_secs: u32,
    /// How long after expiry such rows are kept (seconds; until then a client still hears
    /// "expired" rather than "invalid").
    pub purge_after_secs: u32,
    /// The append-only file of audit seals (the chain head, MACed under the audit key) that
    /// this process writes: keep it (or a copy) off the database host (README "Audit log").
    pub audit_seal_file: PathBuf,
    /// How often `serve` checks the audit head and seals it if it moved (seconds, at least 1).
    pub audit_seal_interval_secs: u32,
    pub info: ServiceInfo,
    /// The policy OID of every time-stamp token (dotted decimal).
    pub tsa_policy_oid: String,
    /// The accuracy stated in time-stamp tokens (milliseconds; 0: no accuracy field).
    pub tsa_accuracy_ms: u32,
    /// This instance's prefix in time-stamp serial numbers (`sam::tsa`): give each instance
    /// sharing a token its own.
    pub tsa_serial_prefix: u32,
    /// The log's format on standard error.
    pub log_format: LogFormat,
    /// A listen address of its own for `GET /metrics` (then not served on `listen`); `None`:
    /// on `listen`.
    pub metrics_listen: Option<String>,
    /// The JT2A assurance level the SAM enforces (`assurance_level`, default 1; sam::level).
    pub assurance_level: sam::AssuranceLevel,
    /// `serve`'s own TLS (`tls_cert_file` and `tls_key_file` both set); `None`: plain HTTP.
    pub tls: Option<crate::tls::TlsSettings>,
    /// The operator's word that plain HTTP on a non-loopback address is meant (a TLS proxy in
    /// front): silences `serve`'s warning.
    pub allow_plain_http: bool,
    /// What differs between HSMs (README "HSMs"): the slot and serial number the token must
    /// have, per-session login, the session pool's size, vendor attributes of generated keys.
    pub hsm: HsmSettings,
    /// `cert_expiry_warning_days`: a signer certificate whose notAfter is this close is
    /// reported as expiring (`credential list`, `csc_certificates_expiring`, a log warning at
    /// scrape); `0`: never.
    pub cert_expiry_warning_days: u32,
    /// The admin API's listener (`admin_listen`, `admin_tls_*`, `admin_token_ttl_secs`).
    pub admin: AdminSettings,
}

/// The admin API (README "Administration"): its own listener, never the CSC one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSettings {
    /// `admin_listen`; `None`: no admin listener.
    pub listen: Option<String>,
    /// `admin_tls_cert_file` + `admin_tls_key_file` (+ `admin_tls_client_ca_file`: client
    /// certificates required, their subject CN naming the administrator).
    pub tls: Option<crate::tls::TlsSettings>,
    /// `admin_token_ttl_secs`: the lifetime of an admin token (default 900; 0: born expired).
    pub token_ttl_secs: u32,
}

/// The PKCS#11 settings beyond module, label and PIN (README "HSMs").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HsmSettings {
    /// `pkcs11_slot`: the slot id the token must be in.
    pub slot_id: Option<u64>,
    /// `token_serial`: the serial number the token must report.
    pub token_serial: Option<String>,
    /// `hsm_login_per_session`: every pooled session logs in itself.
    pub login_per_session: bool,
    /// `hsm_max_sessions`: the size of the session pool.
    pub max_sessions: usize,
    /// `hsm_key_vendor_attributes`: comma-separated `0xTYPE=true|false|hex:BYTES`.
    pub key_vendor_attributes: String,
}

/// The channel that delivers online OTPs (`credentials/sendOTP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtpChannel {
    /// Lines of JSON appended to a file an operator (or a test) reads: the default, for
    /// development and for gateways that poll a file.
    Outbox(PathBuf),
    /// An HTTP POST of JSON to an SMS or e-mail gateway.
    Webhook(String),
}

impl Config {
    /// Reads the file and the environment and fills the defaults.
    pub fn load(data_dir: &Path, file: Option<&Path>) -> anyhow::Result<Config> {
        let mut figment = Figment::new();
        let default_file = data_dir.join("config.toml");
        match file {
            Some(f) => {
                anyhow::ensure!(f.exists(), "configuration file {} not found", f.display());
                figment = figment.merge(Toml::file(f));
            }
            None if default_file.exists() => figment = figment.merge(Toml::file(default_file)),
            None => {}
        }
        figment = figment
            .merge(
                Env::prefixed("CSC_")
                    .only(ENV_KEYS)
                    .filter(|k| !takes_text(k.as_str())),
            )
            .merge(EnvText::read());
        let raw: FileConfig = figment.extract().context("invalid configuration")?;
        Self::check_tls(&raw)?;
        Self::check_admin_tls(&raw)?;
        anyhow::ensure!(
            raw.assurance_level
                .is_none_or(|n| sam::AssuranceLevel::from_number(n).is_some()),
            "invalid configuration: assurance_level must be 1, 2 or 3"
        );
        Ok(Self::resolve(data_dir, raw))
    }

    /// The TLS keys go together: a certificate needs its key and the other way round, and
    /// client certificates need TLS.
    fn check_tls(raw: &FileConfig) -> anyhow::Result<()> {
        let set = |p: &Option<PathBuf>| p.as_ref().is_some_and(|p| !p.as_os_str().is_empty());
        let (cert, key) = (set(&raw.tls_cert_file), set(&raw.tls_key_file));
        anyhow::ensure!(
            cert == key,
            "invalid configuration: tls_cert_file and tls_key_file must be set together"
        );
        anyhow::ensure!(
            cert || !set(&raw.tls_client_ca_file),
            "invalid configuration: tls_client_ca_file needs tls_cert_file and tls_key_file"
        );
        Ok(())
    }

    /// As [`Config::check_tls`], for the admin listener's keys.
    fn check_admin_tls(raw: &FileConfig) -> anyhow::Result<()> {
        let set = |p: &Option<PathBuf>| p.as_ref().is_some_and(|p| !p.as_os_str().is_empty());
        let (cert, key) = (set(&raw.admin_tls_cert_file), set(&raw.admin_tls_key_file));
        anyhow::ensure!(
            cert == key,
            "invalid configuration: admin_tls_cert_file and admin_tls_key_file must be set together"
        );
        anyhow::ensure!(
            cert || !set(&raw.admin_tls_client_ca_file),
            "invalid configuration: admin_tls_client_ca_file needs admin_tls_cert_file and admin_tls_key_file"
        );
        Ok(())
    }

    fn resolve(data_dir: &Path, raw: FileConfig) -> Config {
        let module = raw
            .pkcs11_module
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MODULE));
        let is_softhsm = module
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains("softhsm"));
        let softhsm_conf = match raw.softhsm_conf {
            Some(p) => Some(p),
            None if is_softhsm => Some(data_dir.join("softhsm2.conf")),
            None => None,
        };
        let token_pin = match (raw.token_pin, raw.token_pin_file) {
            (Some(pin), _) => PinSource::Value(pin),
            (None, Some(file)) => PinSource::File(file),
            (None, None) => PinSource::File(data_dir.join("token.pin")),
        };
        Config {
            data_dir: data_dir.to_path_buf(),
            database_url: raw
                .database_url
                .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("csc.db").display())),
            listen: raw.listen.unwrap_or_else(|| DEFAULT_LISTEN.into()),
            pkcs11_module: module,
            token_label: raw.token_label.unwrap_or_else(|| "csc-server".into()),
            token_pin,
            softhsm_conf,
            max_body_bytes: raw.max_body_bytes.unwrap_or(1024 * 1024),
            access_token_ttl_secs: raw.access_token_ttl_secs.unwrap_or(1800),
            refresh_token_ttl_secs: raw.refresh_token_ttl_secs.unwrap_or(7 * 24 * 3600),
            sad_ttl_secs: raw.sad_ttl_secs.unwrap_or(3600).max(1),
            max_transaction_life_secs: raw.max_transaction_life_secs.unwrap_or(3600).max(1),
            max_factor_failures: raw.max_factor_failures.unwrap_or(5).max(1),
            max_login_failures: raw.max_login_failures.unwrap_or(5).max(1),
            login_limits: {
                let default = sam::LoginLimits::default();
                let concurrency = raw.login_concurrency.unwrap_or(default.concurrency).max(1);
                sam::LoginLimits {
                    concurrency,
                    queue: raw
                        .login_queue
                        .unwrap_or_else(|| concurrency.saturating_mul(4)),
                }
            },
            online_otp_ttl_secs: raw.online_otp_ttl_secs.unwrap_or(300).max(1),
            otp_channel: match raw.otp_webhook_url {
                Some(url) if !url.trim().is_empty() => OtpChannel::Webhook(url),
                _ => OtpChannel::Outbox(
                    raw.otp_outbox
                        .unwrap_or_else(|| data_dir.join("otp-outbox.log")),
                ),
            },
            public_url: raw
                .public_url
                .map(|u| u.trim().trim_end_matches('/').to_owned())
                .filter(|u| !u.is_empty()),
            oauth2_code_ttl_secs: raw.oauth2_code_ttl_secs.unwrap_or(60).max(1),
            purge_interval_secs: raw.purge_interval_secs.unwrap_or(600),
            purge_after_secs: raw.purge_after_secs.unwrap_or(86_400),
            audit_seal_file: raw
                .audit_seal_file
                .unwrap_or_else(|| data_dir.join("audit-seals.jsonl")),
            audit_seal_interval_secs: raw.audit_seal_interval_secs.unwrap_or(1).max(1),
            info: ServiceInfo {
                name: raw
                    .service_name
                    .unwrap_or_else(|| "csc-server remote signing".into()),
                logo: raw
                    .service_logo
                    .unwrap_or_else(|| "https://example.invalid/csc-server.png".into()),
                region: raw.service_region.unwrap_or_else(|| "BE".into()),
                lang: raw.service_lang.unwrap_or_else(|| "en-US".into()),
                description: raw.service_description.unwrap_or_else(|| {
                    "Remote signing with keys held in an HSM (CSC API v1)".into()
                }),
            },
            tsa_policy_oid: raw
                .tsa_policy_oid
                .map(|p| p.trim().to_owned())
                .unwrap_or_else(|| sam::tsa::DEFAULT_POLICY_OID.into()),
            tsa_accuracy_ms: raw.tsa_accuracy_ms.unwrap_or(1000),
            tsa_serial_prefix: raw.tsa_serial_prefix.unwrap_or(0),
            log_format: raw.log_format.unwrap_or_default(),
            metrics_listen: raw
                .metrics_listen
                .map(|a| a.trim().to_owned())
                .filter(|a| !a.is_empty()),
            assurance_level: raw
                .assurance_level
                .and_then(sam::AssuranceLevel::from_number)
                .unwrap_or_default(),
            tls: {
                let set = |p: Option<PathBuf>| p.filter(|p| !p.as_os_str().is_empty());
                match (set(raw.tls_cert_file), set(raw.tls_key_file)) {
                    (Some(cert_file), Some(key_file)) => Some(crate::tls::TlsSettings {
                        cert_file,
                        key_file,
                        client_ca_file: set(raw.tls_client_ca_file),
                        client_auth: raw.tls_client_auth.unwrap_or_default(),
                    }),
                    _ => None,
                }
            },
            allow_plain_http: raw.allow_plain_http.unwrap_or(false),
            hsm: HsmSettings {
                slot_id: raw.pkcs11_slot,
                token_serial: raw
                    .token_serial
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty()),
                login_per_session: raw.hsm_login_per_session.unwrap_or(false),
                max_sessions: raw.hsm_max_sessions.unwrap_or(8).max(1),
                key_vendor_attributes: raw.hsm_key_vendor_attributes.unwrap_or_default(),
            },
            cert_expiry_warning_days: raw.cert_expiry_warning_days.unwrap_or(30),
            admin: AdminSettings {
                listen: raw
                    .admin_listen
                    .map(|a| a.trim().to_owned())
                    .filter(|a| !a.is_empty()),
                tls: {
                    let set = |p: Option<PathBuf>| p.filter(|p| !p.as_os_str().is_empty());
                    match (set(raw.admin_tls_cert_file), set(raw.admin_tls_key_file)) {
                        (Some(cert_file), Some(key_file)) => Some(crate::tls::TlsSettings {
                            cert_file,
                            key_file,
                            client_ca_file: set(raw.admin_tls_client_ca_file),
                            client_auth: crate::tls::ClientAuth::Required,
                        }),
                        _ => None,
                    }
                },
                token_ttl_secs: raw.admin_token_ttl_secs.unwrap_or(900),
            },
        }
    }

    /// The service token lifetimes.
    pub fn token_policy(&self) -> crate::app::TokenPolicy {
        crate::app::TokenPolicy {
            access_ttl: chrono::Duration::seconds(i64::from(self.access_token_ttl_secs)),
            refresh_ttl: chrono::Duration::seconds(i64::from(self.refresh_token_ttl_secs)),
        }
    }

    /// The OAuth 2.0 authorization server's settings.
    pub fn oauth_policy(&self) -> crate::app::OAuthPolicy {
        crate::app::OAuthPolicy {
            public_url: self.public_url.clone(),
            code_ttl: chrono::Duration::seconds(i64::from(self.oauth2_code_ttl_secs)),
            request_ttl: chrono::Duration::minutes(10),
        }
    }

    /// The SAM's policy.
    pub fn sam_policy(&self) -> sam::SamPolicy {
        sam::SamPolicy {
            sad_lifetime: std::time::Duration::from_secs(u64::from(self.sad_ttl_secs)),
            max_transaction_life: std::time::Duration::from_secs(u64::from(
                self.max_transaction_life_secs,
            )),
            max_factor_failures: i32::from(self.max_factor_failures),
            max_login_failures: i32::from(self.max_login_failures),
            online_otp_lifetime: std::time::Duration::from_secs(u64::from(
                self.online_otp_ttl_secs,
            )),
            assurance_level: self.assurance_level,
            ..sam::SamPolicy::default()
        }
    }

    /// The development CA's record in the data directory.
    pub fn ca_file(&self) -> PathBuf {
        self.data_dir.join("dev-ca.json")
    }

    /// The time-stamping authority's record in the data directory (beside the CA's).
    pub fn tsa_file(&self) -> PathBuf {
        self.data_dir.join("tsa.json")
    }

    /// The time-stamping authority's settings (`sam::tsa`): its certificate is issued to
    /// `CN=<service name> TSA` when `init` (or the first start of an older data directory)
    /// creates it.
    pub fn tsa_settings(&self) -> sam::TsaSettings {
        sam::TsaSettings {
            policy_oid: self.tsa_policy_oid.clone(),
            accuracy: Some(std::time::Duration::from_millis(u64::from(
                self.tsa_accuracy_ms,
            )))
            .filter(|a| !a.is_zero()),
            serial_prefix: self.tsa_serial_prefix,
            ..sam::TsaSettings::new(self.tsa_file(), format!("{} TSA", self.info.name))
        }
    }

    /// The token PIN, read from its file when configured so.
    pub fn read_token_pin(&self) -> anyhow::Result<SecretString> {
        match &self.token_pin {
            PinSource::Value(pin) => Ok(pin.clone()),
            PinSource::File(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!(
                        "cannot read the token PIN file {} (run `csc-server init` first, or set CSC_TOKEN_PIN)",
                        path.display()
                    )
                })?;
                Ok(SecretString::from(
                    text.trim_end_matches(['\r', '\n']).to_owned(),
                ))
            }
        }
    }

    /// The HSM configuration for the SAM.
    pub fn hsm_config(&self) -> anyhow::Result<sam::HsmConfig> {
        let key_vendor_attributes = self
            .hsm
            .key_vendor_attributes
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::parse::<sam::VendorAttribute>)
            .collect::<Result<Vec<_>, _>>()
            .context("invalid hsm_key_vendor_attributes")?;
        Ok(sam::HsmConfig {
            module: self.pkcs11_module.clone(),
            token_label: self.token_label.clone(),
            user_pin: self.read_token_pin()?,
            max_sessions: self.hsm.max_sessions,
            slot_id: self.hsm.slot_id,
            token_serial: self.hsm.token_serial.clone(),
            login_per_session: self.hsm.login_per_session,
            key_vendor_attributes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_live_under_the_data_dir() {
        let c = Config::resolve(Path::new("/d"), FileConfig::default());
        assert_eq!(c.database_url, "sqlite:///d/csc.db");
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(
            c.softhsm_conf.as_deref(),
            Some(Path::new("/d/softhsm2.conf"))
        );
        assert!(matches!(&c.token_pin, PinSource::File(p) if p == Path::new("/d/token.pin")));
        assert_eq!(
            c.otp_channel,
            OtpChannel::Outbox(PathBuf::from("/d/otp-outbox.log"))
        );
        assert_eq!((c.public_url, c.oauth2_code_ttl_secs), (None, 60));
        assert_eq!((c.max_login_failures, c.online_otp_ttl_secs), (5, 300));
        assert_eq!(c.audit_seal_file, Path::new("/d/audit-seals.jsonl"));
        assert_eq!(c.audit_seal_interval_secs, 1);
        assert_eq!((c.sad_ttl_secs, c.max_transaction_life_secs), (3600, 3600));
        let p = Config::resolve(Path::new("/d"), FileConfig::default()).sam_policy();
        assert_eq!(
            (p.sad_lifetime.as_secs(), p.max_transaction_life.as_secs()),
            (3600, 3600)
        );
    }

    #[test]
    fn the_maximum_transaction_life_reaches_the_sam() {
        let raw = FileConfig {
            max_transaction_life_secs: Some(900),
            ..FileConfig::default()
        };
        let p = Config::resolve(Path::new("/d"), raw).sam_policy();
        assert_eq!(p.max_transaction_life, std::time::Duration::from_secs(900));
        let zero = FileConfig {
            max_transaction_life_secs: Some(0),
            ..FileConfig::default()
        };
        assert_eq!(
            Config::resolve(Path::new("/d"), zero).max_transaction_life_secs,
            1,
            "at least one second"
        );
    }

    #[test]
    fn login_limits_default() {
        let c = Config::resolve(Path::new("/d"), FileConfig::default());
        assert_eq!(c.login_limits, sam::LoginLimits::default());
    }

    #[test]
    fn the_login_queue_follows_the_concurrency_unless_set() {
        let raw = FileConfig {
            login_concurrency: Some(3),
            ..FileConfig::default()
        };
        let l = Config::resolve(Path::new("/d"), raw).login_limits;
        assert_eq!((l.concurrency, l.queue), (3, 12));
        let raw = FileConfig {
            login_concurrency: Some(0),
            login_queue: Some(0),
            ..FileConfig::default()
        };
        let l = Config::resolve(Path::new("/d"), raw).login_limits;
        assert_eq!((l.concurrency, l.queue), (1, 0));
    }

    #[test]
    fn a_webhook_replaces_the_outbox_and_the_public_url_is_trimmed() {
        let raw = FileConfig {
            otp_webhook_url: Some("https://sms.example/send".into()),
            public_url: Some("https://rssp.example/ ".into()),
            ..FileConfig::default()
        };
        let c = Config::resolve(Path::new("/d"), raw);
        assert_eq!(
            c.otp_channel,
            OtpChannel::Webhook("https://sms.example/send".into())
        );
        assert_eq!(c.public_url.as_deref(), Some("https://rssp.example"));
    }

    #[test]
    fn the_log_format_and_the_metrics_listener_are_read() {
        let c = Config::resolve(Path::new("/d"), FileConfig::default());
        assert_eq!((c.log_format, c.metrics_listen), (LogFormat::Text, None));
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "log_format = \"json\"\nmetrics_listen = \"127.0.0.1:9100\"\n",
        )
        .expect("write");
        let c = Config::load(dir.path(), Some(&f)).expect("load");
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.metrics_listen.as_deref(), Some("127.0.0.1:9100"));
        std::fs::write(&f, "log_format = \"xml\"\n").expect("write");
        assert!(
            Config::load(dir.path(), Some(&f)).is_err(),
            "text or json only"
        );
    }

    #[test]
    fn the_assurance_level_is_1_by_default_and_only_1_2_or_3() {
        let c = Config::resolve(Path::new("/d"), FileConfig::default());
        assert_eq!(c.assurance_level, sam::AssuranceLevel::One);
        assert_eq!(c.sam_policy().assurance_level, sam::AssuranceLevel::One);
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "assurance_level = 3\n").expect("write");
        let c = Config::load(dir.path(), Some(&f)).expect("load");
        assert_eq!(c.sam_policy().assurance_level, sam::AssuranceLevel::Three);
        std::fs::write(&f, "assurance_level = 4\n").expect("write");
        let err = Config::load(dir.path(), Some(&f))
            .err()
            .expect("4 is refused");
        assert!(err.to_string().contains("1, 2 or 3"), "{err:#}");
    }

    #[test]
    fn tls_is_on_with_a_certificate_and_its_key_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("c.toml");
        let load = |text: &str| {
            std::fs::write(&f, text).expect("write");
            Config::load(dir.path(), Some(&f))
        };
        let c = load("").expect("load");
        assert_eq!((c.tls, c.allow_plain_http), (None, false));
        let c = load(
            "tls_cert_file = \"/t/c.pem\"\ntls_key_file = \"/t/k.pem\"\n\
             tls_client_ca_file = \"/t/ca.pem\"\ntls_client_auth = \"optional\"\n\
             allow_plain_http = true\n",
        )
        .expect("load");
        assert_eq!(
            c.tls,
            Some(crate::tls::TlsSettings {
                cert_file: "/t/c.pem".into(),
                key_file: "/t/k.pem".into(),
                client_ca_file: Some("/t/ca.pem".into()),
                client_auth: crate::tls::ClientAuth::Optional,
            })
        );
        assert!(c.allow_plain_http);
        let c = load("tls_cert_file = \"/t/c.pem\"\ntls_key_file = \"/t/k.pem\"\n").expect("load");
        assert_eq!(
            c.tls.map(|t| (t.client_ca_file, t.client_auth)),
            Some((None, crate::tls::ClientAuth::Required))
        );
        for lone in [
            "tls_cert_file = \"/t/c.pem\"\n",
            "tls_key_file = \"/t/k.pem\"\n",
            "tls_client_ca_file = \"/t/ca.pem\"\n",
            "tls_cert_file = \"/t/c.pem\"\ntls_key_file = \"/t/k.pem\"\ntls_client_auth = \"maybe\"\n",
        ] {
            assert!(load(lone).is_err(), "{lone}");
        }
    }

    #[test]
    fn the_admin_listener_is_off_unless_set_and_its_tls_keys_go_together() {
        let c = Config::resolve(Path::new("/d"), FileConfig::default());
        assert_eq!(
            c.admin,
            AdminSettings {
                listen: None,
                tls: None,
                token_ttl_secs: 900
            }
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("c.toml");
        let load = |text: &str| {
            std::fs::write(&f, text).expect("write");
            Config::load(dir.path(), Some(&f))
        };
        let c = load(
            "admin_listen = \"127.0.0.1:9443\"\nadmin_tls_cert_file = \"/t/c.pem\"\n\
             admin_tls_key_file = \"/t/k.pem\"\nadmin_tls_client_ca_file = \"/t/ca.pem\"\n\
             admin_token_ttl_secs = 60\n",
        )
        .expect("load");
        assert_eq!(c.admin.listen.as_deref(), Some("127.0.0.1:9443"));
        assert_eq!(c.admin.token_ttl_secs, 60);
        assert_eq!(
            c.admin.tls,
            Some(crate::tls::TlsSettings {
                cert_file: "/t/c.pem".into(),
                key_file: "/t/k.pem".into(),
                client_ca_file: Some("/t/ca.pem".into()),
                client_auth: crate::tls::ClientAuth::Required,
            })
        );
        // the CSC listener's TLS is not the admin listener's
        assert_eq!(c.tls, None);
        for lone in [
            "admin_tls_cert_file = \"/t/c.pem\"\n",
            "admin_tls_key_file = \"/t/k.pem\"\n",
            "admin_tls_client_ca_file = \"/t/ca.pem\"\n",
        ] {
            assert!(load(lone).is_err(), "{lone}");
        }
    }

    #[test]
    fn a_foreign_module_gets_no_softhsm_conf() {
        let raw = FileConfig {
            pkcs11_module: Some("/opt/vendor/libhsm.so".into()),
            ..FileConfig::default()
        };
        assert!(Config::resolve(Path::new("/d"), raw).softhsm_conf.is_none());
    }

    #[test]
    fn the_file_is_strict_and_the_pin_is_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "listen = \"0.0.0.0:9\"\ntoken_pin = \"s3cret\"\n").expect("write");
        let c = Config::load(dir.path(), Some(&f)).expect("load");
        assert_eq!(c.listen, "0.0.0.0:9");
        let PinSource::Value(pin) = &c.token_pin else {
            panic!("pin from file expected")
        };
        assert!(!format!("{pin:?}").contains("s3cret"));
        std::fs::write(&f, "lisen = \"x\"\n").expect("write");
        assert!(Config::load(dir.path(), Some(&f)).is_err());
    }

    /// `CSC_TOKEN_PIN=1234` was once refused ("invalid type: found unsigned int"). Every
    /// text setting is taken exactly as written (leading zeros, dots and all), while the number
    /// settings still parse.
    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature
    fn text_settings_from_the_environment_are_taken_as_written() {
        figment::Jail::expect_with(|jail| {
            let dir = jail.directory().to_path_buf();
            for (key, value) in [
                ("CSC_TOKEN_PIN", "0123"),
                ("CSC_TOKEN_LABEL", "20261202"),
                ("CSC_LISTEN", "8080"),
                ("CSC_PKCS11_MODULE", "42"),
                ("CSC_OTP_OUTBOX", "007"),
                ("CSC_SERVICE_NAME", "1.50"),
                ("CSC_SERVICE_REGION", "true"),
                ("CSC_TSA_POLICY_OID", "1.2"),
                ("CSC_SAD_TTL_SECS", "90"),
                ("CSC_MAX_FACTOR_FAILURES", "3"),
            ] {
                jail.set_env(key, value);
            }
            let c = Config::load(&dir, None).expect("numeric-looking text is accepted");
            let PinSource::Value(pin) = &c.token_pin else {
                panic!("the PIN from the environment")
            };
            assert_eq!(secrecy::ExposeSecret::expose_secret(pin), "0123");
            assert_eq!(c.token_label, "20261202");
            assert_eq!(c.listen, "8080");
            assert_eq!(c.pkcs11_module, Path::new("42"));
            assert_eq!(c.otp_channel, OtpChannel::Outbox(PathBuf::from("007")));
            assert_eq!(
                (c.info.name.as_str(), c.info.region.as_str()),
                ("1.50", "true")
            );
            assert_eq!(c.tsa_policy_oid, "1.2");
            assert_eq!((c.sad_ttl_secs, c.max_factor_failures), (90, 3));
            // a number setting given text is still an error, naming the variable
            jail.set_env("CSC_SAD_TTL_SECS", "soon");
            let err = format!("{:#}", Config::load(&dir, None).err().expect("refused"));
            assert!(err.contains("SAD_TTL_SECS"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn text_and_number_settings_are_told_apart_by_their_type() {
        for text in [
            "token_pin",
            "token_label",
            "token_pin_file",
            "database_url",
            "service_logo",
        ] {
            assert!(takes_text(text), "{text}");
        }
        for number in ["sad_ttl_secs", "max_body_bytes", "tsa_serial_prefix"] {
            assert!(!takes_text(number), "{number}");
        }
    }

    #[test]
    fn hsm_settings_reach_the_hsm_configuration() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "token_pin = \"1\"\npkcs11_slot = 7\ntoken_serial = \"0042\"\n\
             hsm_login_per_session = true\nhsm_max_sessions = 3\n\
             hsm_key_vendor_attributes = \"0x80000001=true, 0x80000002=hex:0a0b\"\n",
        )
        .expect("write");
        let h = Config::load(dir.path(), Some(&f))
            .expect("load")
            .hsm_config()
            .expect("hsm");
        assert_eq!(
            (h.slot_id, h.token_serial.as_deref()),
            (Some(7), Some("0042"))
        );
        assert_eq!((h.login_per_session, h.max_sessions), (true, 3));
        assert_eq!(
            h.key_vendor_attributes,
            vec![
                "0x80000001=true"
                    .parse::<sam::VendorAttribute>()
                    .expect("attr"),
                "0x80000002=hex:0a0b".parse().expect("attr"),
            ]
        );
        let d = Config::resolve(Path::new("/d"), FileConfig::default()).hsm;
        assert_eq!(
            (
                d.slot_id,
                d.token_serial,
                d.login_per_session,
                d.max_sessions
            ),
            (None, None, false, 8)
        );
        std::fs::write(
            &f,
            "token_pin = \"1\"\nhsm_key_vendor_attributes = \"0x103=false\"\n",
        )
        .expect("write");
        let c = Config::load(dir.path(), Some(&f)).expect("load");
        assert!(c.hsm_config().is_err(), "a standard attribute is refused");
    }
}
