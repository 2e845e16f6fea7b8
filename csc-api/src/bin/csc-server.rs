//! `csc-server`: the operator's command line and the server itself. The command contract is a
//! public interface (README "Commands"): change it only compatibly.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use csc_api::{admin, backup, config::Config, server};
use sam::{AuthMode, Scal};
use sam::{KeySpec, OtpChoice};

/// mimalloc: per-thread free lists instead of glibc's arenas (malloc was 17% of the server's
/// CPU under signHash load; README "Benchmark").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "csc-server",
    version,
    about = "CSC v1 and v2 remote signing server"
)]
struct Cli {
    /// Data directory (database, SoftHSM2 token, PIN files, development CA).
    #[arg(
        long,
        global = true,
        env = "CSC_DATA_DIR",
        default_value = "./csc-data"
    )]
    data_dir: PathBuf,
    /// TOML configuration file (default: DATA_DIR/config.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The role this command acts as (signer, operator, security-officer, auditor), named in
    /// its audit records; default: the role the command needs. A role that may not do the
    /// command is refused (and the refusal audited).
    #[arg(long = "as", global = true, value_name = "ROLE", value_parser = parse_role)]
    act_as: Option<sam::Role>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the data directory, the token, the database and the development CA (idempotent);
    /// and the first security officer when CSC_SO_PASSWORD is set or --security-officer given
    /// (password: CSC_SO_PASSWORD, else one line of standard input).
    Init {
        /// The first security officer's user name (default `security-officer`).
        #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "security-officer")]
        security_officer: Option<String>,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage credentials (keys in the HSM with their certificates).
    Credential {
        #[command(subcommand)]
        command: CredentialCommand,
    },
    /// Manage OAuth 2.0 clients (signature applications).
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Check the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Row integrity: the upgrade step of a database made before it.
    Integrity {
        #[command(subcommand)]
        command: IntegrityCommand,
    },
    /// Serve the CSC API.
    Serve {
        /// Address to listen on.
        #[arg(long)]
        listen: Option<String>,
    },
    /// init + a demo user with credentials + serve.
    Demo {
        /// Address to listen on.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Probe a running server's GET /health (a container health check needs no curl); exits 0
    /// when it answers 200, else 1.
    Health {
        /// The URL to probe (default: http://LISTEN/health with the configured `listen`, an
        /// unspecified address such as 0.0.0.0 probed on loopback).
        #[arg(long)]
        url: Option<String>,
    },
    /// Write an online backup of an SQLite data directory to FILE (a tar archive: the database
    /// copied consistently while `serve` runs, the CA and TSA files, the SoftHSM2 token; never
    /// the token PIN nor the seal file). PostgreSQL: use pg_dump (README "Backups").
    Backup {
        /// The archive to write (must not exist).
        file: PathBuf,
    },
    /// Restore a backup into a fresh data directory (--data-dir); the token PIN must be in
    /// place first. Refused when the backup is older than the configured seal file's seals.
    Restore {
        /// The archive written by `csc-server backup`.
        file: PathBuf,
        /// Restore even a backup older than the live audit seals (the audit log rolls back;
        /// the old seal file is moved aside and the restore audited as such).
        #[arg(long)]
        allow_rollback: bool,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user (a signer unless --role); the password comes from CSC_PASSWORD, else one
    /// line of standard input.
    Add {
        name: String,
        /// signer (default), operator, security-officer or auditor: one role per user.
        #[arg(long, value_parser = parse_role, default_value = "signer")]
        role: sam::Role,
    },
    /// Lift the lock set by too many failed logins (and clear the count).
    Unlock { name: String },
    /// Disable a user: login refused, every token and SAD revoked, no client acts for them.
    Disable { name: String },
    /// Lift `user disable` (a login lock stays).
    Enable { name: String },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client; prints its client_id and, for a confidential client, its secret
    /// (shown once, stored only as a hash).
    Add {
        /// Shown to signers on the consent page.
        name: String,
        /// An exact redirect URI (repeat for several; the first is the default).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uri: Vec<String>,
        /// A confidential client (has a secret; may use client_credentials). Without it: a
        /// public client, which must use PKCE (S256).
        #[arg(long)]
        confidential: bool,
    },
    /// List the registered clients as a JSON array (with the users delegated to each).
    List,
    /// Let the client's own tokens (client_credentials) act for user USER.
    Delegate { client_id: String, user: String },
    /// Withdraw `client delegate`.
    Undelegate { client_id: String, user: String },
}

#[derive(Clone, Copy, ValueEnum)]
enum KeyArg {
    #[value(name = "rsa-2048")]
    Rsa2048,
    #[value(name = "rsa-3072")]
    Rsa3072,
    #[value(name = "rsa-4096")]
    Rsa4096,
    #[value(name = "ec-p256")]
    EcP256,
    #[value(name = "ec-p384")]
    EcP384,
}

impl From<KeyArg> for KeySpec {
    fn from(k: KeyArg) -> Self {
        match k {
            KeyArg::Rsa2048 => KeySpec::Rsa2048,
            KeyArg::Rsa3072 => KeySpec::Rsa3072,
            KeyArg::Rsa4096 => KeySpec::Rsa4096,
            KeyArg::EcP256 => KeySpec::EcP256,
            KeyArg::EcP384 => KeySpec::EcP384,
        }
    }
}

#[derive(Subcommand)]
enum CredentialCommand {
    /// Generate a key in the HSM for user NAME and certify it; the PIN comes from CSC_PIN, else
    /// one line of standard input. Prints one JSON object.
    Create {
        name: String,
        #[arg(long, value_enum)]
        key: KeyArg,
        /// Sole control assurance level: 1, or 2 (signatures bound to the authorized hashes).
        #[arg(long, default_value = "1", value_parser = ["1", "2"])]
        scal: String,
        /// How many signatures one authorization may allow.
        #[arg(long, default_value_t = 1)]
        multisign: u32,
        /// Add a TOTP second factor; its otpauth URI is printed once.
        #[arg(long, conflicts_with = "online_otp")]
        otp: bool,
        /// Add an online OTP second factor: codes the server sends on credentials/sendOTP.
        #[arg(long)]
        online_otp: bool,
        /// explicit (PIN/OTP sent to credentials/authorize) or oauth2code (authorized only on
        /// the OAuth 2.0 consent page).
        #[arg(long, default_value = "explicit", value_parser = ["explicit", "oauth2code"])]
        auth_mode: String,
        /// Leave the key for your own CA: no certificate now (the credential cannot sign until
        /// `credential import-chain`); prints `csr`, a PKCS#10 request signed in the token.
        #[arg(long)]
        csr: bool,
        /// The subject of the request (RFC 4514, e.g. "CN=Alice Example,O=Example,C=BE");
        /// default CN=NAME.
        #[arg(long, requires = "csr")]
        subject: Option<String>,
    },
    /// Print a PKCS#10 certificate request (PEM, in JSON) over a credential's key, signed in
    /// the token, for your CA; `credential import-chain` installs what it issues.
    Csr {
        credential_id: String,
        /// The subject (RFC 4514); default CN=<the credential's user>.
        #[arg(long)]
        subject: Option<String>,
    },
    /// Lift the lock of a credential's PIN and OTP after too many wrong attempts.
    Unlock { credential_id: String },
    /// List credentials (of user NAME only, when given) as a JSON array.
    List { name: Option<String> },
    /// Replace a credential's certificate chain with a PEM bundle (signer first) issued
    /// elsewhere; refused unless it certifies the key in the token.
    ImportChain {
        credential_id: String,
        file: PathBuf,
    },
    /// Destroy a credential's key in the HSM and disable the credential.
    Destroy { credential_id: String },
    /// Suspend a credential: it signs nothing, and every SAD issued for it is revoked now.
    Disable { credential_id: String },
    /// Lift `credential disable` (refused for a revoked credential).
    Enable { credential_id: String },
    /// Revoke a credential for good: disabled forever, its SADs revoked, its key destroyed in
    /// the HSM.
    Revoke {
        credential_id: String,
        /// Why (kept in the audit record).
        #[arg(long)]
        reason: String,
    },
    /// Give a credential a new key generated in the HSM and a new certificate, keeping its ID;
    /// its SADs are revoked and the old key destroyed.
    Rekey {
        credential_id: String,
        /// The new key's algorithm; default the old one's.
        #[arg(long, value_enum)]
        key: Option<KeyArg>,
        /// Leave the new key for your own CA: prints `csr`; pending until `import-chain`.
        #[arg(long)]
        csr: bool,
        /// The subject of the request (RFC 4514); default CN=<the credential's user>.
        #[arg(long, requires = "csr")]
        subject: Option<String>,
    },
    /// One-time upgrade of a database made before TOTP seeds moved into the HSM: import every
    /// plain TOTP seed into the token and rewrite its verifier (idempotent). Exits 1 if any
    /// could not be moved.
    MigrateOtp,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the whole audit log with the audit key (the token) and against the seals written
    /// outside the database; exits 1 and names the first broken record.
    Verify {
        /// A seal file to check (repeat for several), e.g. a copy kept off the database host;
        /// default: the configured `audit_seal_file` when it exists.
        #[arg(long = "seals", value_name = "PATH")]
        seals: Vec<PathBuf>,
    },
    /// Once, after upgrading a database begun by a version without keyed audit links: verify
    /// the whole chain and the seals, and confirm the switch to keyed links; exits 1 (and
    /// confirms nothing) if either is damaged.
    Upgrade {
        /// As for `verify`.
        #[arg(long = "seals", value_name = "PATH")]
        seals: Vec<PathBuf>,
    },
    /// Export records (all, or --from/--to) with their seals as JSON lines signed by the audit
    /// seal key, after verifying the whole log and the seals; refused if either is damaged.
    Export {
        /// The first record (default 1).
        #[arg(long)]
        from: Option<i64>,
        /// The last record (default: the last one).
        #[arg(long)]
        to: Option<i64>,
        /// Where to write the export (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// As for `verify`.
        #[arg(long = "seals", value_name = "PATH")]
        seals: Vec<PathBuf>,
    },
    /// Print the audit seal key's public key (PEM): what verifies exports elsewhere.
    SealKey,
    /// Verify an export with the seal key's public key only: no token, no database (any
    /// machine, any --data-dir, even empty or missing); exits 1 naming the first bad line.
    VerifyExport {
        /// The export (`audit export --out FILE`).
        file: PathBuf,
        /// The seal key's public key, PEM (`audit seal-key`).
        #[arg(long, value_name = "PEM")]
        seal_key: PathBuf,
    },
}

#[derive(Subcommand)]
enum IntegrityCommand {
    /// Seal every row of a database made before row integrity, once (refused when it is already
    /// sealed); lists the credentials whose PIN must be set again.
    Seal,
}

fn print(value: &serde_json::Value) {
    println!("{value:#}");
}

/// Runs one command.
///
/// # Safety
///
/// Points SoftHSM2 at the data directory's configuration ([`admin::prepare_softhsm`], which
/// sets `SOFTHSM2_CONF`) before anything else: call this before any other thread of the
/// process exists (`main` does, first thing).
#[allow(unsafe_code)]
unsafe fn run(cli: Cli, cfg: Config) -> anyhow::Result<ExitCode> {
    // the probe touches neither the token nor the database
    if let Command::Health { url } = &cli.command {
        let url = url
            .clone()
            .unwrap_or_else(|| csc_api::probe::health_url(&cfg.listen));
        print(&csc_api::probe::probe(&url)?);
        return Ok(ExitCode::SUCCESS);
    }
    // checking an export needs only the file and the public key: no token, no database, and
    // nothing created in the data directory (it may be empty or missing: another machine)
    if let Command::Audit {
        command: AuditCommand::VerifyExport { file, seal_key },
    } = &cli.command
    {
        let (intact, report) = admin::audit_verify_export(file, seal_key)?;
        println!("{report}");
        return Ok(if intact {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    // `--as`: the role every act of this command is done and audited in (set before any act)
    if let Some(role) = cli.act_as {
        admin::act_as(role);
    }
    // `init` and `demo` create the data directory and the SoftHSM2 configuration; every other
    // command needs them to exist
    let create = matches!(cli.command, Command::Init { .. } | Command::Demo { .. });
    if let Command::Restore {
        file,
        allow_rollback,
    } = &cli.command
    {
        // the role is checked before anything is written (the table needs no token); the
        // refusal is audited once the restored log can be written, i.e. never for a refusal:
        // nothing is restored, so there is no log of this data directory to write to
        let actor = admin::cli_actor(sam::Action::Restore);
        if !sam::roles::allows(actor.role, sam::Action::Restore) {
            anyhow::bail!(
                "the role {} may not {}",
                actor.role.as_str(),
                sam::Action::Restore.as_str()
            );
        }
        // the token may come from the archive: unpack first, then read the configuration again
        // (the archive may bring config.toml) and point SoftHSM2 at the restored token
        let restored = backup::restore_files(&cfg, file, *allow_rollback)?;
        let cfg = Config::load(&cli.data_dir, cli.config.as_deref())?;
        // SAFETY: no other thread exists yet (the contract of `run`; unpacking starts none).
        unsafe { admin::prepare_softhsm(&cfg, true) }?;
        let (intact, report) = backup::finish_restore(&cfg, restored).with_context(|| {
            format!(
                "the backup's files are in {}, but the restore could not be completed (audited \
                 and verified); fix the cause, then run `csc-server audit verify` there",
                cfg.data_dir.display()
            )
        })?;
        print(&report);
        return Ok(if intact {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    // SAFETY: no other thread exists yet (the contract of `run`).
    unsafe { admin::prepare_softhsm(&cfg, create) }?;
    match cli.command {
        Command::Init { security_officer } => {
            // the first security officer: --security-officer [NAME], or CSC_SO_PASSWORD set
            let name = security_officer.or_else(|| {
                std::env::var_os("CSC_SO_PASSWORD").map(|_| "security-officer".to_owned())
            });
            let password = match &name {
                Some(_) => Some(admin::read_secret("CSC_SO_PASSWORD", "password")?),
                None => None,
            };
            let officer = name.as_deref().zip(password.as_ref());
            print(&admin::init_with(&cfg, officer)?.1)
        }
        Command::User {
            command: UserCommand::Add { name, role },
        } => {
            let password = admin::read_secret("CSC_PASSWORD", "password")?;
            let user = admin::sealed_command(&cfg, |sam| {
                admin::user_add_with_role(sam, &name, &password, role)
            })?;
            print(&serde_json::json!({ "userID": user.id.to_string(), "name": user.name }));
        }
        Command::User {
            command: UserCommand::Unlock { name },
        } => print(&admin::sealed_command(&cfg, |sam| {
            admin::user_unlock(sam, &name)
        })?),
        Command::User {
            command: UserCommand::Disable { name },
        } => print(&admin::sealed_command(&cfg, |sam| {
            admin::user_disable(sam, &name)
        })?),
        Command::User {
            command: UserCommand::Enable { name },
        } => print(&admin::sealed_command(&cfg, |sam| {
            admin::user_enable(sam, &name)
        })?),
        Command::Client { command } => match command {
            ClientCommand::Add {
                name,
                redirect_uri,
                confidential,
            } => print(&admin::sealed_command(&cfg, |sam| {
                admin::client_add(sam, &name, &redirect_uri, confidential)
            })?),
            ClientCommand::List => {
                // read-only: neither a record nor a seal
                let sam = admin::open(&cfg)?;
                print(&admin::client_list(&sam)?);
            }
            ClientCommand::Delegate { client_id, user } => {
                print(&admin::sealed_command(&cfg, |sam| {
                    admin::client_delegate(sam, &client_id, &user)
                })?)
            }
            ClientCommand::Undelegate { client_id, user } => {
                print(&admin::sealed_command(&cfg, |sam| {
                    admin::client_undelegate(sam, &client_id, &user)
                })?)
            }
        },
        Command::Credential { command } => match command {
            CredentialCommand::Create {
                name,
                key,
                scal,
                multisign,
                otp,
                online_otp,
                auth_mode,
                csr,
                subject,
            } => {
                let pin = admin::read_secret("CSC_PIN", "PIN")?;
                let scal = if scal == "2" { Scal::Two } else { Scal::One };
                let otp = match (otp, online_otp) {
                    (true, _) => OtpChoice::Totp,
                    (false, true) => OtpChoice::Online,
                    (false, false) => OtpChoice::None,
                };
                let auth_mode = if auth_mode == "oauth2code" {
                    AuthMode::Oauth2Code
                } else {
                    AuthMode::Explicit
                };
                let opts = admin::CredentialOptions {
                    spec: key.into(),
                    scal,
                    multisign,
                    otp,
                    auth_mode,
                };
                print(&admin::sealed_command(&cfg, |sam| {
                    if csr {
                        admin::credential_create_for_csr(sam, &name, opts, pin, subject.as_deref())
                    } else {
                        admin::credential_create(sam, &name, opts, pin)
                    }
                })?);
            }
            CredentialCommand::Csr {
                credential_id,
                subject,
            } => print(&admin::sealed_command(&cfg, |sam| {
                admin::credential_csr(sam, &credential_id, subject.as_deref())
            })?),
            CredentialCommand::Unlock { credential_id } => {
                print(&admin::sealed_command(&cfg, |sam| {
                    admin::credential_unlock(sam, &credential_id)
                })?)
            }
            CredentialCommand::List { name } => {
                // read-only: neither a record nor a seal
                let sam = admin::open(&cfg)?;
                print(&admin::credential_list(&sam, name.as_deref())?);
            }
            CredentialCommand::ImportChain {
                credential_id,
                file,
            } => print(&admin::sealed_command(&cfg, |sam| {
                admin::credential_import_chain(sam, &credential_id, &file)
            })?),
            CredentialCommand::Destroy { credential_id } => {
                print(&admin::sealed_command(&cfg, |sam| {
                    admin::credential_destroy(sam, &credential_id)
                })?)
            }
            CredentialCommand::Disable { credential_id } => {
                print(&admin::sealed_command(&cfg, |sam| {
                    admin::credential_disable(sam, &credential_id)
                })?)
            }
            CredentialCommand::Enable { credential_id } => {
                print(&admin::sealed_command(&cfg, |sam| {
                    admin::credential_enable(sam, &credential_id)
                })?)
            }
            CredentialCommand::Revoke {
                credential_id,
                reason,
            } => print(&admin::sealed_command(&cfg, |sam| {
                admin::credential_revoke(sam, &credential_id, &reason)
            })?),
            CredentialCommand::Rekey {
                credential_id,
                key,
                csr,
                subject,
            } => print(&admin::sealed_command(&cfg, |sam| {
                let certifier = if csr {
                    sam::RekeyCertifier::Csr(subject.as_deref())
                } else {
                    sam::RekeyCertifier::DevCa
                };
                admin::credential_rekey(sam, &credential_id, key.map(KeySpec::from), certifier)
            })?),
            CredentialCommand::MigrateOtp => {
                let (complete, report) =
                    admin::sealed_command(&cfg, admin::credential_migrate_otp)?;
                print(&report);
                if !complete {
                    return Ok(ExitCode::FAILURE);
                }
            }
        },
        Command::Audit {
            command: AuditCommand::Verify { seals },
        } => {
            // read-only: writes no seal
            let sam = admin::open(&cfg)?;
            let files = admin::seal_files(&cfg, seals);
            let (intact, report) = admin::audit_verify(&sam, &files)?;
            print(&report);
            if !intact {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Integrity {
            command: IntegrityCommand::Seal,
        } => {
            print(&admin::sealed_command(&cfg, admin::integrity_seal)?);
        }
        Command::Audit {
            command: AuditCommand::Upgrade { seals },
        } => {
            let files = admin::seal_files(&cfg, seals);
            let (ok, report) =
                admin::sealed_command(&cfg, |sam| admin::audit_upgrade(sam, &files))?;
            print(&report);
            if !ok {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Audit {
            command:
                AuditCommand::Export {
                    from,
                    to,
                    out,
                    seals,
                },
        } => {
            let files = admin::seal_files(&cfg, seals);
            // audited (`audit.export`), so the head is sealed afterwards
            let summary = admin::sealed_command(&cfg, |sam| {
                admin::audit_export(sam, &files, from, to, out.as_deref())
            })?;
            // the export itself may be on standard output: the summary goes to standard error
            // then, and to standard output when the export went to a file
            if out.is_some() {
                print(&summary);
            } else {
                eprintln!("{summary}");
            }
        }
        Command::Audit {
            command: AuditCommand::SealKey,
        } => {
            // read-only: neither a record nor a seal
            let sam = admin::open(&cfg)?;
            print!("{}", admin::audit_seal_key(&sam)?);
        }
        // answered above, before the token is prepared
        Command::Audit {
            command: AuditCommand::VerifyExport { .. },
        } => {}
        Command::Backup { file } => {
            if backup::is_postgres(&cfg.database_url) {
                anyhow::bail!(
                    "the database is PostgreSQL: back it up with pg_dump (README \"Backups\"); \
                     `csc-server backup` copies SQLite databases"
                );
            }
            print(&admin::sealed_command(&cfg, |sam| {
                backup::backup(&cfg, sam, &file)
            })?);
        }
        // handled before SoftHSM2 is prepared, above
        Command::Restore { .. } => {}
        Command::Serve { listen } => {
            let sam = admin::open(&cfg)?;
            server::serve(&cfg, sam, listen.as_deref().unwrap_or(&cfg.listen))?;
        }
        Command::Demo { listen } => {
            let (sam, _) = admin::init(&cfg)?;
            let demo = admin::demo_setup(&sam)?;
            print(&demo);
            // the demo stays plain HTTP (README "TLS"): `serve` is where TLS is configured
            if cfg.tls.is_some() {
                tracing::info!("demo serves plain HTTP: the tls_* settings are for `serve`");
            }
            let cfg = Config { tls: None, ..cfg };
            server::serve(&cfg, sam, listen.as_deref().unwrap_or(&cfg.listen))?;
        }
        // answered above, before the token is prepared
        Command::Health { .. } => {}
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(unsafe_code)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    // the configuration first: it says how to log (`log_format`)
    let cfg = match Config::load(&cli.data_dir, cli.config.as_deref()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    csc_api::observability::init_logging(cfg.log_format);
    // SAFETY: the argument parser, the configuration and the tracing subscriber start no
    // thread, so none exists yet.
    match unsafe { run(cli, cfg) } {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--as ROLE`, `--role ROLE`.
fn parse_role(s: &str) -> Result<sam::Role, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not a role: signer, operator, security-officer or auditor"))
}
