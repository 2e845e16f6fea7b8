//! The in-process test kit (kanidm's way): the real app factory [`configure`] (wrapped, as
//! `serve` wraps it, in the request metrics of `csc_api::observability`) under
//! `actix_web::test::init_service`, on a temporary data directory with its own SoftHSM2 token
//! and SQLite database (or a PostgreSQL URL set by the test), driven without a socket or a
//! process. One kit per test process (cargo-nextest runs one test per process, and the PKCS#11
//! module is initialised once per process); each credential's key is generated once, when the
//! test first asks for it, and reused.
//!
//! All the setup is [`Kit::with`]. Audit records are read through the kit's SAM
//! ([`Kit::audit_records`]) or, beside a `csc-server` process, with SQL of the test's own
//! ([`audit_records`]): the tests depend on neither `storage` nor `cm-pkcs11`.

use std::cell::OnceCell;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;

use actix_web::App;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::HeaderMap;
use actix_web::test::TestRequest;
use actix_web::web::Bytes;
use base64::Engine;
use csc_api::admin;
use csc_api::app::{AppState, configure};
use csc_api::config::{Config, OtpChannel};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::common::{ALICE_PASSWORD, BOB_PASSWORD, Csc, PIN, outbox_code};

/// The scheme and authority every kit request carries (its `Host`): what the handlers see as
/// the server's own base URL.
pub const BASE: &str = "http://localhost:8080";

/// The credentials a kit makes on demand, as the CLI would be asked for them
/// (`credential create USER ARGS...`): `rsa` (alice, RSA-2048, SCAL 1), `ec` (alice, P-256,
/// SCAL 1), `scal2` (alice, RSA-2048, SCAL 2, multisign 5, PIN and online OTP), `multi`
/// (alice, P-256, SCAL 1, multisign 3), `bob` (bob, P-256).
pub const CREDENTIALS: &[(&str, &str, &[&str])] = &[
    ("rsa", "alice", &["--key", "rsa-2048"]),
    ("ec", "alice", &["--key", "ec-p256"]),
    (
        "scal2",
        "alice",
        &[
            "--key",
            "rsa-2048",
            "--scal",
            "2",
            "--multisign",
            "5",
            "--online-otp",
        ],
    ),
    ("multi", "alice", &["--key", "ec-p256", "--multisign", "3"]),
    ("bob", "bob", &["--key", "ec-p256"]),
];

type Answer = Result<ServiceResponse, actix_web::Error>;
type AppFn = Rc<dyn Fn(TestRequest) -> Pin<Box<dyn Future<Output = Answer>>>>;

/// One answer of the app.
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `(status, JSON body)`, as [`Csc::call`] answers.
    pub fn pair(&self) -> (u16, Value) {
        (self.status, self.json())
    }
}

/// A data directory with users alice and bob, the app built on it, and the actix runtime that
/// drives it (handlers run their blocking work on its blocking pool).
pub struct Kit {
    // drop order: the app, its runtime, the state (the SAM), then the directory
    app: AppFn,
    /// The admin API's app (`csc_api::admin_api::configure`), on the same SAM.
    admin: AppFn,
    rt: actix_web::rt::SystemRunner,
    state: actix_web::web::Data<AppState>,
    cfg: Config,
    /// The IDs of [`CREDENTIALS`], in that order, once created.
    creds: [OnceCell<String>; CREDENTIALS.len()],
    tmp: tempfile::TempDir,
}

/// `Authorization: Basic ...` for `user:password`.
pub fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// One audit record as the tests read it (the columns they check).
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct AuditRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub seq: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub event: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub actor: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub subject: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub outcome: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub detail: String,
}

impl From<sam::AuditRecord> for AuditRow {
    fn from(r: sam::AuditRecord) -> Self {
        AuditRow {
            seq: r.seq,
            event: r.event,
            actor: r.actor,
            subject: r.subject,
            outcome: r.outcome,
            detail: r.detail,
        }
    }
}

/// The audit records of a data directory's SQLite database, read with SQL of the test's own
/// beside a running `csc-server` (the binary tests; the kit asks its SAM instead).
pub fn audit_records(dir: &Path) -> Vec<AuditRow> {
    use diesel::{Connection, RunQueryDsl};
    let mut db = diesel::SqliteConnection::establish(&dir.join("csc.db").display().to_string())
        .expect("open db");
    diesel::sql_query(
        "SELECT seq, event, actor, subject, outcome, detail FROM audit_log ORDER BY seq",
    )
    .load(&mut db)
    .expect("audit records")
}

impl Kit {
    /// A kit with the default configuration.
    pub fn new() -> Kit {
        Self::with(|_| {})
    }

    /// A kit whose configuration `set` adjusts first (what the server reads from `CSC_*`:
    /// failure limits, lifetimes, the webhook, the body limit, a PostgreSQL `database_url`).
    pub fn with(set: impl FnOnce(&mut Config)) -> Kit {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let mut cfg = Config::load(dir, None).expect("configuration");
        // the kit's own SQLite database, whatever CSC_DATABASE_URL the test process may have
        cfg.database_url = format!("sqlite://{}", dir.join("csc.db").display());
        set(&mut cfg);
        // SoftHSM2 reads SOFTHSM2_CONF from the environment: set it once, first, while this
        // process has no thread but the test harness's (the actix runtime and the store's pools
        // start below).
        // SAFETY: nextest runs each test in its own process, and the kit is the first thing a
        // test makes: no other thread of this process reads the environment yet.
        #[allow(unsafe_code)]
        unsafe { admin::prepare_softhsm(&cfg, true) }.expect("SoftHSM2 configuration");
        let (sam, _) = admin::init(&cfg).expect("init");
        admin::user_add(&sam, "alice", &SecretString::from(ALICE_PASSWORD)).expect("alice");
        admin::user_add(&sam, "bob", &SecretString::from(BOB_PASSWORD)).expect("bob");
        let state = csc_api::server::app_state(&cfg, sam);
        let rt = actix_web::rt::System::new();
        let max_body = cfg.max_body_bytes;
        let app_state = state.clone();
        let svc = Rc::new(
            rt.block_on(actix_web::test::init_service(
                App::new()
                    .wrap(actix_web::middleware::from_fn(
                        csc_api::observability::count_requests,
                    ))
                    .configure(move |c| configure(c, app_state, max_body)),
            )),
        );
        let app: AppFn = Rc::new(move |req: TestRequest| {
            let svc = svc.clone();
            Box::pin(async move {
                svc.call(req.to_request())
                    .await
                    .map(ServiceResponse::map_into_boxed_body)
            })
        });
        let admin_state = csc_api::admin_api::admin_state(&cfg, state.sam.clone());
        let admin_svc = Rc::new(rt.block_on(actix_web::test::init_service(
            App::new().configure(move |c| csc_api::admin_api::configure(c, admin_state, max_body)),
        )));
        let admin: AppFn = Rc::new(move |req: TestRequest| {
            let svc = admin_svc.clone();
            Box::pin(async move {
                svc.call(req.to_request())
                    .await
                    .map(ServiceResponse::map_into_boxed_body)
            })
        });
        Kit {
            app,
            admin,
            rt,
            state,
            cfg,
            creds: Default::default(),
            tmp,
        }
    }

    /// The configuration the app was built with.
    pub fn cfg(&self) -> &Config {
        &self.cfg
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// The SAM the app serves, for the operator's commands (`admin::*`) beside it.
    pub fn sam(&self) -> &sam::Sam {
        &self.state.sam
    }

    /// The ID of the named credential of [`CREDENTIALS`], created on first use.
    pub fn id(&self, name: &str) -> &str {
        let i = CREDENTIALS
            .iter()
            .position(|(n, _, _)| *n == name)
            .unwrap_or_else(|| panic!("no credential {name:?} in the kit"));
        let (_, user, args) = CREDENTIALS[i];
        self.creds[i].get_or_init(|| {
            let created = self.credential_create(user, args).expect("credential");
            created["credentialID"].as_str().expect("id").to_owned()
        })
    }

    /// Creates the named credentials now (in this order), for a test that lists them.
    pub fn create(&self, names: &[&str]) {
        for n in names {
            self.id(n);
        }
    }

    /// `credential create USER ARGS...` with the PIN [`PIN`], in process: the operator's
    /// function behind the command, with the command's options.
    pub fn credential_create(&self, user: &str, args: &[&str]) -> anyhow::Result<Value> {
        use sam::{AuthMode, Scal};
        use sam::{KeySpec, OtpChoice};
        let mut opts = admin::CredentialOptions {
            spec: KeySpec::EcP256,
            scal: Scal::One,
            multisign: 1,
            otp: OtpChoice::None,
            auth_mode: AuthMode::Explicit,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || it.next().copied().expect("a value");
            match *arg {
                "--key" => {
                    opts.spec = match value() {
                        "rsa-2048" => KeySpec::Rsa2048,
                        "rsa-3072" => KeySpec::Rsa3072,
                        "rsa-4096" => KeySpec::Rsa4096,
                        "ec-p256" => KeySpec::EcP256,
                        "ec-p384" => KeySpec::EcP384,
                        other => panic!("key {other}"),
                    }
                }
                "--scal" => opts.scal = if value() == "2" { Scal::Two } else { Scal::One },
                "--multisign" => opts.multisign = value().parse().expect("a count"),
                "--otp" => opts.otp = OtpChoice::Totp,
                "--online-otp" => opts.otp = OtpChoice::Online,
                "--auth-mode" => {
                    opts.auth_mode = match value() {
                        "oauth2code" => AuthMode::Oauth2Code,
                        _ => AuthMode::Explicit,
                    }
                }
                other => panic!("option {other}"),
            }
        }
        admin::credential_create(self.sam(), user, opts, SecretString::from(PIN))
    }

    /// `client add NAME --redirect-uri URI... [--confidential]`: `(client_id, client_secret)`.
    pub fn client_add(
        &self,
        name: &str,
        redirect_uris: &[&str],
        confidential: bool,
    ) -> (String, Option<String>) {
        let uris: Vec<String> = redirect_uris.iter().map(|u| (*u).to_owned()).collect();
        let out = admin::client_add(self.sam(), name, &uris, confidential).expect("client add");
        assert_eq!(out["confidential"], confidential);
        (
            out["client_id"].as_str().expect("client_id").to_owned(),
            out["client_secret"].as_str().map(str::to_owned),
        )
    }

    /// `audit verify`: whether the chain is intact (the kit's app writes no seals).
    pub fn audit_intact(&self) -> bool {
        let (intact, report) = admin::audit_verify(self.sam(), &[]).expect("audit verify");
        assert_eq!(report["intact"], intact);
        intact
    }

    /// The audit records so far, from the kit's database.
    pub fn audit_records(&self) -> Vec<AuditRow> {
        self.sam()
            .audit_records(0, 1_000_000)
            .expect("audit records")
            .into_iter()
            .map(AuditRow::from)
            .collect()
    }

    /// A request to `path` (with its query), with the kit's `Host`.
    pub fn req(&self, method: &str, path: &str) -> TestRequest {
        let path = path.strip_prefix(BASE).unwrap_or(path);
        TestRequest::default()
            .method(Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(path)
            .insert_header(("host", BASE.trim_start_matches("http://")))
    }

    pub fn post(&self, path: &str) -> TestRequest {
        self.req("POST", path)
    }

    pub fn get(&self, path: &str) -> TestRequest {
        self.req("GET", path)
    }

    /// Runs `fut` on the kit's runtime.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.rt.block_on(fut)
    }

    /// Sends one request; an error the app returns is answered as actix answers it.
    pub fn send(&self, req: TestRequest) -> Resp {
        self.block_on(answer(self.app.clone(), req))
    }

    /// Sends one request to the admin API's app (the admin listener's).
    pub fn admin_send(&self, req: TestRequest) -> Resp {
        self.block_on(answer(self.admin.clone(), req))
    }

    /// Sends every request at once (one future each, joined on the runtime: the handlers'
    /// blocking work runs side by side on the blocking pool); the answers in order.
    pub fn send_all(&self, reqs: Vec<TestRequest>) -> Vec<Resp> {
        let app = &self.app;
        self.block_on(futures_util::future::join_all(
            reqs.into_iter().map(|r| answer(app.clone(), r)),
        ))
    }

    /// A CSC method call as a [`TestRequest`]: POST `/csc/v1/{method}`, JSON, optional bearer.
    pub fn csc_request(&self, method: &str, token: Option<&str>, body: &Value) -> TestRequest {
        let mut req = self.post(&format!("/csc/v1/{method}")).set_json(body);
        if let Some(t) = token {
            req = req.insert_header(("authorization", format!("Bearer {t}")));
        }
        req
    }

    /// `POST /oauth2/{endpoint}` with a form, optionally with HTTP Basic client
    /// authentication.
    pub fn form_post(
        &self,
        endpoint: &str,
        fields: &[(&str, &str)],
        basic_auth: Option<(&str, &str)>,
    ) -> (u16, Value) {
        let mut req = self
            .post(&format!("/oauth2/{endpoint}"))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(serde_urlencoded::to_string(fields).expect("form"));
        if let Some((id, secret)) = basic_auth {
            req = req.insert_header(("authorization", basic(id, secret)));
        }
        self.send(req).pair()
    }

    /// `auth/login` with HTTP Basic and `body`: `(status, JSON)`.
    pub fn login_with(&self, user: &str, password: &str, body: &Value) -> (u16, Value) {
        let req = self
            .post("/csc/v1/auth/login")
            .insert_header(("authorization", basic(user, password)))
            .set_json(body);
        self.send(req).pair()
    }
}

async fn answer(app: AppFn, req: TestRequest) -> Resp {
    let resp = match app(req).await {
        Ok(r) => r.into_parts().1,
        Err(e) => e.error_response(),
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = actix_web::body::to_bytes(resp.into_body())
        .await
        .unwrap_or_default();
    Resp {
        status,
        headers,
        body,
    }
}

impl Csc for Kit {
    fn call(&self, method: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        self.send(self.csc_request(method, token, body)).pair()
    }

    fn call_v2(&self, method: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut req = self.post(&format!("/csc/v2/{method}")).set_json(body);
        if let Some(t) = token {
            req = req.insert_header(("authorization", format!("Bearer {t}")));
        }
        self.send(req).pair()
    }

    fn login(&self, user: &str, password: &str) -> String {
        let (status, v) = self.login_with(user, password, &json!({}));
        assert_eq!(status, 200, "login of {user}: {v}");
        v["access_token"].as_str().expect("token").to_owned()
    }

    fn online_otp(&self, token: &str, cred: &str) -> Option<String> {
        let scal2 = CREDENTIALS.iter().position(|(n, _, _)| *n == "scal2");
        if scal2
            .and_then(|i| self.creds[i].get())
            .is_none_or(|id| id != cred)
        {
            return None;
        }
        let (status, body) = self.call(
            "credentials/sendOTP",
            Some(token),
            &json!({ "credentialID": cred }),
        );
        assert_eq!(status, 204, "sendOTP: {body}");
        let OtpChannel::Outbox(outbox) = &self.cfg.otp_channel else {
            panic!("the kit's online OTPs go to a webhook")
        };
        Some(outbox_code(outbox, cred).expect("the OTP in the outbox"))
    }
}
