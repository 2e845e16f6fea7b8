//! `csc-conformance`: runs the CSC v1.0.4.0 conformance catalogue against a server and prints
//! one line per check, then `N passed, N failed, N skipped`; exits 1 on any failure.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use conformance_tests::{Config, Identity, Status, checks, run_with};

#[derive(Parser, Debug)]
#[command(
    name = "csc-conformance",
    about = "Black-box conformance checks of a CSC API v1.0.4.0 server",
    after_help = "Example:\n  csc-conformance --base-url https://rssp.example --user alice --password secret \\\n    --credential CRED-1 --credential CRED-2 --scal2-credential CRED-3 --pin 123456 \\\n    --otp-command 'tail -n1 /var/spool/otp/outbox' --other-user bob --other-password secret2 \\\n    --json report.json"
)]
struct Args {
    /// The server's URL up to (not including) /csc/v1, e.g. https://rssp.example
    #[arg(long, required_unless_present = "list")]
    base_url: Option<String>,
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
    /// CSC_CREDENTIAL_ID set; for an online OTP credentials/sendOTP is called first
    #[arg(long, value_name = "CMD")]
    otp_command: Option<String>,
    /// Also write the report as JSON to FILE
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Per-request timeout in seconds
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Print the catalogue (id, section, rule) and exit
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
        for c in checks::catalogue() {
            println!("{}\t{}\t{}", c.id, c.section, c.rule);
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

    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "CSC {} conformance of {}",
        conformance_tests::SPEC_UNDER_TEST,
        config.base_url
    );
    let report = run_with(&config, |r| {
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
    if let Some(path) = args.json {
        let written = serde_json::to_vec_pretty(&report)
            .map_err(|e| e.to_string())
            .and_then(|j| std::fs::write(&path, j).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if report.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
