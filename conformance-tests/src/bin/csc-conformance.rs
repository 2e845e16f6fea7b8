//! `csc-conformance`: runs the CSC conformance catalogue (v1.0.4.0 by default; v2.0.0.2 with
//! `--api v2`; both, one after the other, with `--api both`) against a server and prints one
//! line per check, then `N passed, N failed, N skipped`; exits 1 on any failure.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use conformance_tests::{Api, Config, Identity, Report, Status, checks, run_with};

/// The `--api` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ApiChoice {
    /// CSC API v1.0.4.0 under /csc/v1
    V1,
    /// CSC API v2.0.0.2 under /csc/v2
    V2,
    /// v1, then v2
    Both,
}

impl ApiChoice {
    fn apis(self) -> Vec<Api> {
        match self {
            ApiChoice::V1 => vec![Api::V1],
            ApiChoice::V2 => vec![Api::V2],
            ApiChoice::Both => vec![Api::V1, Api::V2],
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "csc-conformance",
    about = "Black-box conformance checks of a CSC API v1.0.4.0 (or v2.0.0.2) server",
    after_help = "Example:\n  csc-conformance --base-url https://rssp.example --user alice --password secret \\\n    --credential CRED-1 --credential CRED-2 --scal2-credential CRED-3 --pin 123456 \\\n    --otp-command 'tail -n1 /var/spool/otp/outbox' --other-user bob --other-password secret2 \\\n    --json report.json"
)]
struct Args {
    /// The server's URL up to (not including) /csc/v1, e.g. https://rssp.example
    #[arg(long, required_unless_present = "list")]
    base_url: Option<String>,
    /// The API version to check: v1 (/csc/v1, CSC v1.0.4.0), v2 (/csc/v2, CSC v2.0.0.2) or
    /// both (v1 then v2; the JSON report is then an array of the two reports)
    #[arg(long, value_enum, default_value_t = ApiChoice::V1)]
    api: ApiChoice,
    /// User under test: auth/login with HTTP Basic (with --password)
    #[arg(long, requires = "password", conflicts_with = "token")]
    user: Option<String>,
    #[arg(
        long,
        requires = "user",
        env = "CSC_CONFORMANCE_PASSWORD",
        hide_env_values = true
    )]
    password: Option<String>,
    /// User under test: a service access token obtained elsewhere
    #[arg(long, env = "CSC_CONFORMANCE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A credential of the user under test (SCAL 1 or 2, read from credentials/info);
    /// repeatable, the first is the primary one
    #[arg(long = "credential", value_name = "ID")]
    credentials: Vec<String>,
    /// A SCAL 2 credential of the user under test
    #[arg(long, value_name = "ID")]
    scal2_credential: Option<String>,
    /// A second user, for the cross-user checks (with --other-password)
    #[arg(long, requires = "other_password", conflicts_with = "other_token")]
    other_user: Option<String>,
    #[arg(
        long,
        requires = "other_user",
        env = "CSC_CONFORMANCE_OTHER_PASSWORD",
        hide_env_values = true
    )]
    other_password: Option<String>,
    /// A second user's access token
    #[arg(long, env = "CSC_CONFORMANCE_OTHER_TOKEN", hide_env_values = true)]
    other_token: Option<String>,
    /// The credentials' PIN
    #[arg(long, env = "CSC_CONFORMANCE_PIN", hide_env_values = true)]
    pin: Option<String>,
    /// A shell command printing a fresh OTP (last line of its output), run with
    /// CSC_CREDENTIAL_ID set; for an online OTP credentials/sendOTP (v2:
    /// credentials/getChallenge) is called first
    #[arg(long, value_name = "CMD")]
    otp_command: Option<String>,
    /// Also write the report as JSON to FILE
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Per-request timeout in seconds
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Print the catalogue of --api (id, section, rule) and exit
    #[arg(long)]
    list: bool,
}

fn identity(
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
) -> Option<Identity> {
    match (user, password, token) {
        (Some(user), Some(password), _) => Some(Identity::Login { user, password }),
        (_, _, Some(t)) => Some(Identity::Token(t)),
        _ => None,
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.list {
        for api in args.api.apis() {
            for c in checks::catalogue_for(api) {
                println!("{}\t{}\t{}", c.id, c.section, c.rule);
            }
        }
        return ExitCode::SUCCESS;
    }
    let mut config = Config::new(args.base_url.unwrap_or_default());
    config.identity = identity(args.user, args.password, args.token);
    config.other = identity(args.other_user, args.other_password, args.other_token);
    config.credentials = args.credentials;
    config.scal2_credential = args.scal2_credential;
    config.pin = args.pin;
    config.otp_command = args.otp_command;
    config.timeout = Duration::from_secs(args.timeout);

    let mut reports: Vec<Report> = Vec::new();
    for api in args.api.apis() {
        config.api = api;
        reports.push(run_one(&config));
    }
    if let Some(path) = args.json {
        let written = match reports.as_slice() {
            [one] => serde_json::to_vec_pretty(one),
            all => serde_json::to_vec_pretty(all),
        }
        .map_err(|e| e.to_string())
        .and_then(|j| std::fs::write(&path, j).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if reports.iter().any(|r| r.failed > 0) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs the catalogue of `config.api`, printing as it goes.
fn run_one(config: &Config) -> Report {
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "CSC {} conformance of {}",
        config.api.spec(),
        config.base_url
    );
    let report = run_with(config, |r| {
        let line = match r.status {
            Status::Pass => format!("PASS {}  {}", r.id, r.section),
            Status::Skip => format!(
                "SKIP {}  {} — {}",
                r.id,
                r.section,
                r.detail.as_deref().unwrap_or("")
            ),
            Status::Fail => format!(
                "FAIL {}  {} — {}\n       expected: {}\n       got:      {}",
                r.id,
                r.section,
                r.rule,
                r.expected.as_deref().unwrap_or(""),
                r.got.as_deref().unwrap_or("")
            ),
        };
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    });
    let _ = writeln!(out, "took {:.1} s", report.duration_ms as f64 / 1000.0);
    let _ = writeln!(out, "{}", report.summary());
    report
}
