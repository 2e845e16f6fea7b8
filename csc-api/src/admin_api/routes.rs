//! The admin API's handlers: each parses its JSON body (unknown fields refused, so no call can
//! smuggle a `pin` anywhere it is not asked for), calls ONE `sam` function with the
//! authenticated [`Admin`] actor (which checks the role with `Sam::permit` and audits the act,
//! reads included) and maps the result. The JSON shapes of users, credentials and clients are
//! the CLI's (`crate::admin`), with camelCase names; no answer ever holds a PIN, an OTP seed
//! (except the `otpauth` URI of a new TOTP, shown once as by `credential create --otp`), a
//! verifier or a password.

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sam::{
    AuditQuery, AuditRecord, AuthMode, CredentialId, KeySpec, NewCredentialRequest, OtpChoice,
    Role, Scal, User,
};
use secrecy::SecretString;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::AdminState;
use super::auth::Admin;
use super::error::AdminError;
use crate::admin::credential_json;

/// A JSON object body of `T`; an empty body counts as `{}`. Too large, not JSON, an unknown
/// field or a field of the wrong type: 400 `invalid_request` naming what is wrong.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> actix_web::FromRequest for Json<T> {
    type Error = AdminError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Json<T>, AdminError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes
                .await
                .map_err(|_| AdminError::invalid("The body could not be read (too large?)"))?;
            let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
                b"{}"
            } else {
                &bytes
            };
            serde_json::from_slice(bytes).map(Json).map_err(|e| {
                // serde names the field ("unknown field `pin`", "missing field `user`"); the
                // position is of no use to the caller
                let text = e.to_string();
                let text = text.split(" at line ").next().unwrap_or_default();
                AdminError::invalid(format!("Invalid request body: {text}"))
            })
        })
    }
}

/// A body that must be empty (or `{}`): a call that takes nothing takes no `pin` either.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nothing {}

async fn run<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AdminError> + Send + 'static,
) -> Result<T, AdminError> {
    web::block(f).await?
}

fn internal(e: anyhow::Error) -> AdminError {
    AdminError::internal(format!("{e:#}"))
}

fn credential_id(id: &str) -> Result<CredentialId, AdminError> {
    id.parse()
        .map_err(|_| AdminError::not_found(format!("no credential {id}")))
}

fn time(t: chrono::NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

// ---- users

fn user_json(u: &User) -> Value {
    json!({
        "name": u.name,
        "role": u.role.as_str(),
        "disabled": u.disabled,
        "locked": u.locked,
        "failedLogins": u.failed_logins,
        "createdAt": time(u.created_at),
    })
}

/// `GET /admin/v1/users`.
pub async fn users(
    Admin(actor): Admin,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, AdminError> {
    let users = run(move || Ok(state.sam.users_as(&actor)?)).await?;
    Ok(
        HttpResponse::Ok()
            .json(json!({ "users": users.iter().map(user_json).collect::<Vec<_>>() })),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    name: String,
    role: String,
    password: String,
}

/// `POST /admin/v1/users` {name, role, password}: 201 with the user (never the password).
pub async fn create_user(
    Admin(actor): Admin,
    state: web::Data<AdminState>,
    Json(body): Json<NewUser>,
) -> Result<HttpResponse, AdminError> {
    let role: Role = body.role.parse().map_err(|_| {
        AdminError::invalid("Invalid parameter role: signer, operator, security-officer or auditor")
    })?;
    let password = SecretString::from(body.password);
    let user = run(move || Ok(state.sam.add_user(&body.name, &password, role, &actor)?)).await?;
    Ok(HttpResponse::Created().json(user_json(&user)))
}

/// What `POST /admin/v1/users/{name}/{act}` does.
#[derive(Debug, Clone, Copy)]
pub enum UserAct {
    Disable,
    Enable,
    Unlock,
}

/// `POST /admin/v1/users/{name}/disable|enable|unlock`: the user as it is now.
pub async fn user_act(
    act: UserAct,
    Admin(actor): Admin,
    state: web::Data<AdminState>,
    name: web::Path<String>,
    _: Json<Nothing>,
) -> Result<HttpResponse, AdminError> {
    let name = name.into_inner();
    let user = run(move || {
        let sam = &state.sam;
        let mut before = match act {
            UserAct::Disable => sam.disable_user(&name, &actor)?,
            UserAct::Enable => sam.enable_user(&name, &actor)?,
            UserAct::Unlock => sam.unlock_user(&name, &actor)?,
        };
        // the answer says the state after the act
        match act {
            UserAct::Disable => before.disabled = true,
            UserAct::Enable => before.disabled = false,
            UserAct::Unlock => (before.locked, before.failed_logins) = (false, 0),
        }
        Ok(before)
    })
    .await?;
    Ok(HttpResponse::Ok().json(user_json(&user)))
}

/// `DELETE /admin/v1/users/{name}`: the user and all their credentials, keys destroyed.
pub async fn delete_user(
    Admin(actor): Admin,
    state: web::Data<AdminState>,
    name: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let name = name.into_inner();
    let deleted = run(move || Ok(state.sam.delete_user_as(&actor, &name)?)).await?;
    Ok(HttpResponse::Ok().json(json!({
        "name": deleted.user.name,
        "role": deleted.user.role.as_str(),
        "deleted": true,
        "credentialsDeleted": deleted.credentials.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })))
}

// ---- credentials

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialFilter {
    user: Option<String>,
}

/// `GET /admin/v1/credentials[?user=NAME]`.
pub async fn credentials(
    Admin(actor): Admin,
    state: web::Data<AdminState>,
    req: HttpRequest,
) -> Result<HttpResponse, AdminError> {
    let filter: CredentialFilter = query(&req)?;
    let list = run(move || {
        Ok(state
            .sam
            .list_credentials_as(&actor, filter.user.as_deref())?)
    })
    .await?;
    let list = list
        .iter()
        .map(|(u, c)| credential_json(u, c))
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(internal)?;
    Ok(HttpResponse::Ok().json(json!({ "credentials": list })))
}

/// `GET /admin/v1/credentials/{id}`: status, certificate, owner; never a factor.
pub async fn credential(
    Admin(actor): Admin,
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let id = credential_id(&id)?;
    let (owner, c) = run(move || Ok(state.sam.credential_as(&actor, &id)?)).await?;
    Ok(HttpResponse::Ok().json(credential_json(&owner, &c).map_err(internal)?))
}

/// A SCAL given as `1`, `2`, `"1"` or `"2"`.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum ScalValue {
    Number(u8),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewCredential {
    user: String,
    key_spec: String,
    scal: Option<ScalValue>,
    multisign: Option<u32>,
    /// `offline` (TOTP, `--otp`), `online` (`--online-otp`) or absent.
    otp: Option<String>,
    auth_mode: Option<String>,
    /// The signer's PIN, given once; only its verifier is stored.
    pin: String,
    csr: Option<bool>,
    subject: Option<String>,
}

fn key_spec(s: &str, field: &str) -> Result<KeySpec, AdminError> {
    s.parse().map_err(|_| {
        AdminError::invalid(format!(
            "Invalid parameter {field}: rsa-2048, rsa-3072, rsa-4096, ec-p256 or ec-p384"
        ))
    })
}

/// `POST /admin/v1/credentials`: the CLI's `credential create` (`keySpec` = `--key`, `scal`,
/// `multisign`, `otp` = `--otp`/`--online-otp`, `authMode`, `csr`, `subject`), the PIN in the
/// body. 201 with the credential (and `otpauth` once for a TOTP, `csr` with `csr: true`).
pub async fn create_credential(
    Admin(actor): Admin,
    state: web::Data<AdminState>,
    Json(body): Json<NewCredential>,
) -> Result<HttpResponse, AdminError> {
    let spec = key_spec(&body.key_spec, "keySpec")?;
    let scal = match &body.scal {
        None => Scal::One,
        Some(ScalValue::Number(1)) => Scal::One,
        Some(ScalValue::Number(2)) => Scal::Two,
        Some(ScalValue::Text(t)) if t == "1" => Scal::One,
        Some(ScalValue::Text(t)) if t == "2" => Scal::Two,
        Some(_) => return Err(AdminError::invalid("Invalid parameter scal: 1 or 2")),
    };
    let otp = match body.otp.as_deref() {
        None => OtpChoice::None,
        Some("offline") => OtpChoice::Totp,
        Some("online") => OtpChoice::Online,
        Some(_) => {
            return Err(AdminError::invalid(
                "Invalid parameter otp: offline or online",
            ));
        }
    };
    let auth_mode = match body.auth_mode.as_deref() {
        None | Some("explicit") => AuthMode::Explicit,
        Some("oauth2code") => AuthMode::Oauth2Code,
        Some(_) => {
            return Err(AdminError::invalid(
                "Invalid parameter authMode: explicit or oauth2code",
            ));
        }
    };
    if body.subject.is_some() && body.csr != Some(true) {
        return Err(AdminError::invalid(
            "Invalid parameter subject: it needs csr true",
        ));
    }
    let request = NewCredentialRequest {
        user_name: body.user,
        spec,
        scal,
        multisign: body.multisign.unwrap_or(1),
        pin: SecretString::from(body.pin),
        otp,
        auth_mode,
        description: None,
    };
    let csr = body.csr.unwrap_or(false);
    let subject = body.subject;
    let out = run(move || {
        let sam = &state.sam;
        let (credential, otpauth, csr_pem) = if csr {
            let p = sam.create_credential_for_csr(request, subject.as_deref(), &actor)?;
            (p.credential, p.otpauth_uri, Some(p.csr_pem))
        } else {
            let c = sam.create_credential(request, &actor)?;
            (c.credential, c.otpauth_uri, None)
        };
        let mut out =
            crate::admin::created_json(sam, &credential, otp, otpauth).map_err(internal)?;
        if let (Some(csr), Some(map)) = (csr_pem, out.as_object_mut()) {
            map.insert("csr".into(), json!(csr));
        }
        Ok(out)
    })
    .await?;
    Ok(HttpResponse::Created().json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrBody {
    subject: Option<String>,
}

/// `POST /admin/v1/credentials/{id}/csr` {subject?}: a PKCS#10 request (PEM) over its key.
pub async fn csr(
    Admin(actor): Admin,
    state: web::Data<AdminState>,
    id: web::Path<String>,
    Json(body): Json<CsrBody>,
) -> Result<HttpResponse, AdminError> {
    let id = credential_id(&id)?;
    let pem = run(move || {
        Ok(state
            .sam
            .certificate_request(&id, body.subject.as_deref(), &actor)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "credentialID": id.to_string(), "csr": pem })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainBody {
    certificates: Vec<String>,
}

/// Each entry: a PEM bundle, or one base64 DER certificate.
fn chain_der(entries: &[String]) -> Result<Vec<Vec<u8>>, AdminError> {
    let mut chain = Vec::new();
    for entry in entries {
        if entry.trim_start().starts_with("-----BEGIN") {
            chain.extend(sam::ca::pem_chain_to_der(entry.as_bytes())?);
        } else {
            chain.push(STANDARD.decode(entry.trim()).map_err(|_| {
                AdminError::invalid("Invalid parameter certificates: each is PEM or base64 DER")
            })?);
        }
    }
    if chain.is_empty() {
        return Err(AdminError::invalid("Invalid parameter certificates: empty"));
    }
    Ok(chain)
}

/// `POST /admin/v1/credentials/{id}/chain` {certificates}: the CLI's `import-chain`.
pub async fn import_chain(
    Admin(actor): Admin,
    state: web::Data<AdminState>,
    id: web::Path<String>,
    Json(body): Json<ChainBody>,
) -> Result<HttpResponse, AdminError> {
    let id = credential_id(&id)?;
    let chain = chain_der(&body.certificates)?;
    run(move || {
        let c = state.sam.import_certificate_chain(&id, chain, &actor)?;
        let owner = state.sam.owner_of(&c)?;
        credential_json(&owner, &c).map_err(internal)
    })
    .await
    .map(|v| HttpResponse::Ok().json(v))
}

/// What `POST /admin/v1/credentials/{id}/{act}` does (no body).
#[derive(Debug, Clone, Copy)]
pub enum CredentialAct {
    Disable,
    Enable,
    Unlock,
}

/// `POST /admin/v1/credentials/{id}/disable|enable|unlock`.
pub async fn credential_act(
    act: CredentialAct,
    Admin(actor): Admin,
    state: web::Data<AdminState>,
    id: web::Path<String>,
    _: Json<Nothing>,
) -> Result<HttpResponse, AdminError> {
    let id = credential_id(&id)?;
    run(move || {
        let sam = &state.sam;
        let c = match act {
            CredentialAct::Disable => sam.disable_credential(&id, &actor)?,
            CredentialAct::Enable => sam.enable_credential(&id, &actor)?,
            CredentialAct::Unlock => {
                let unlocked = sam.unlock_credential(&id, &actor)?;
                return Ok(json!({
                    "credentialID": id.to_string(),
                    "unlocked": unlocked.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                }));
            }
        };
        let owner = sam.owner_of(&c)?;
        credential_json(&owner, &c).map_err(internal)
    })
    .await
    .map(|v| HttpResponse::Ok().json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RekeyBody {
    key_spec: Option<String>,
    csr: Option<bool>,
    subject: Option<String>,
}

/// `POST /admin/v1/credentials/{id}/rekey` {keySpec?, csr?, subject?}: the CLI's `rekey`.
pub async fn rekey(
    Admin(actor): Admin,
    state: web::Data<AdminState>,
    id: web::Path<String>,
    Json(body): Json<RekeyBody>,
) -> Result<HttpResponse, AdminError> {
    let id = credential_id(&id)?;
    let spec = body
        .key_spec
        .as_deref()
        .map(|s| key_spec(s, "keySpec"))
        .transpose()?;
    if body.subject.is_some() && body.csr != Some(true) {
        return Err(AdminError::invalid(
            "Invalid parameter subject: it needs csr true",
        ));
    }
    run(move || {
        let certifier = if body.csr == Some(true) {
            sam::RekeyCertifier::Csr(body.subject.as_deref())
        } else {
            sam::RekeyCertifier::DevCa
        };
        let r = state.sam.rekey_credential(&id, spec, certifier, &actor)?;
        let owner = state.sam.owner_of(&r.credential)?;
        let mut out = credential_json(&owner, &r.credential).map_err(internal)?;
        if let Some(map) = out.as_object_mut() {
            map.insert("oldKeyDestroyed".into(), json!(true));
            if let Some(csr) = r.csr_pem {
                map.insert("csr".into(), json!(csr));
            }
        }
        Ok(out)
    })
    .await
    .map(|v| HttpResponse::Ok().json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    reason: String,
}

/// `POST /admin/v1/credentials/{id}/revoke` {reason}: revoked for good, key destroyed.
pub async fn revoke(
    Admin(actor): Admin,
    state: web::Data<AdminState>,
    id: web::Path<String>,
    Json(body): Json<RevokeBody>,
) -> Result<HttpResponse, AdminError> {
    let id = credential_id(&id)?;
    run(move || {
        let c = state.sam.revoke_credential(&id, &body.reason, &actor)?;
        let owner = state.sam.owner_of(&c)?;
        let mut out = credential_json(&owner, &c).map_err(internal)?;
        if let Some(map) = out.as_object_mut() {
            map.insert("keyDestroyed".into(), json!(true));
        }
        Ok(out)
    })
    .await
    .map(|v| HttpResponse::Ok().json(v))
}

// ---- clients

/// `GET /admin/v1/clients`: never a secret.
pub async fn clients(
    Admin(actor): Admin,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, AdminError> {
    let (clients, delegations) = run(move || Ok(state.sam.list_clients_as(&actor)?)).await?;
    let list: Vec<Value> = clients
        .iter()
        .map(|c| {
            json!({
                "clientId": c.client_id,
                "name": c.name,
                "redirectUris": c.redirect_uris,
                "confidential": c.is_confidential(),
                "delegatedUsers": delegations
                    .iter()
                    .filter(|(client, _)| *client == c.client_id)
                    .map(|(_, user)| user.as_str())
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "clients": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewClient {
    name: String,
    redirect_uris: Vec<String>,
    #[serde(default)]
    confidential: bool,
}

/// `POST /admin/v1/clients` {name, redirectUris, confidential}: 201; the secret shown once.
pub async fn create_client(
    Admin(actor): Admin,
    state: web::Data<AdminState>,
    Json(body): Json<NewClient>,
) -> Result<HttpResponse, AdminError> {
    let NewClient {
        name,
        redirect_uris,
        confidential,
    } = body;
    let uris = redirect_uris.clone();
    let n = name.clone();
    let client =
        run(move || Ok(state.sam.register_client(&n, &uris, confidential, &actor)?)).await?;
    let mut out = json!({
        "clientId": client.client_id,
        "name": name.trim(),
        "redirectUris": redirect_uris,
        "confidential": confidential,
    });
    if let (Some(secret), Some(map)) = (client.secret, out.as_object_mut()) {
        map.insert("clientSecret".into(), json!(secret));
    }
    Ok(HttpResponse::Created().json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelegationBody {
    user: String,
}

/// `POST /admin/v1/clients/{id}/delegations` {user}.
pub async fn delegate(
    Admin(actor): Admin,
    state: web::Data<AdminState>,
    client: web::Path<String>,
    Json(body): Json<DelegationBody>,
) -> Result<HttpResponse, AdminError> {
    let client = client.into_inner();
    let c = client.clone();
    let user = body.user.clone();
    let changed = run(move || Ok(state.sam.delegate_client(&c, &user, &actor)?)).await?;
    Ok(HttpResponse::Ok().json(
        json!({ "clientId": client, "user": body.user, "delegated": true, "changed": changed }),
    ))
}

/// `DELETE /admin/v1/clients/{id}/delegations/{user}`.
pub async fn undelegate(
    Admin(actor): Admin,
    state: web::Data<AdminState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AdminError> {
    let (client, user) = path.into_inner();
    let (c, u) = (client.clone(), user.clone());
    let changed = run(move || Ok(state.sam.undelegate_client(&c, &u, &actor)?)).await?;
    Ok(HttpResponse::Ok()
        .json(json!({ "clientId": client, "user": user, "delegated": false, "changed": changed })))
}

// ---- the audit log

/// The query string as `T` (unknown parameters refused).
fn query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, AdminError> {
    serde_urlencoded::from_str(req.query_string())
        .map_err(|e| AdminError::invalid(format!("Invalid query: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSearch {
    from: Option<String>,
    to: Option<String>,
    event: Option<String>,
    actor: Option<String>,
    subject: Option<String>,
    outcome: Option<String>,
    after: Option<i64>,
    limit: Option<i64>,
}

fn rfc3339(value: Option<&str>, name: &str) -> Result<Option<chrono::NaiveDateTime>, AdminError> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.naive_utc())
                .map_err(|_| {
                    AdminError::invalid(format!("Invalid parameter {name}: an RFC 3339 time"))
                })
        })
        .transpose()
}

fn record_json(r: &AuditRecord) -> Value {
    json!({
        "seq": r.seq,
        "at": time(r.at),
        "event": r.event,
        "actor": r.actor,
        "subject": r.subject,
        "outcome": r.outcome,
        "detail": serde_json::from_str::<Value>(&r.detail).unwrap_or(Value::Null),
        "prevHash": r.prev_hash,
        "hash": r.hash,
    })
}

/// `GET /admin/v1/audit?from&to&event&actor&subject&outcome&after&limit`: `{records, next}`;
/// `next` is the `after` of the next page, `null` on the last.
pub async fn audit(
    Admin(actor): Admin,
    state: web::Data<AdminState>,
    req: HttpRequest,
) -> Result<HttpResponse, AdminError> {
    let s: AuditSearch = query(&req)?;
    let limit = s.limit.unwrap_or(100);
    if !(1..=sam::MAX_AUDIT_PAGE).contains(&limit) {
        return Err(AdminError::invalid(format!(
            "Invalid parameter limit: 1 to {}",
            sam::MAX_AUDIT_PAGE
        )));
    }
    let q = AuditQuery {
        from: rfc3339(s.from.as_deref(), "from")?,
        to: rfc3339(s.to.as_deref(), "to")?,
        event: s.event,
        actor: s.actor,
        subject: s.subject,
        outcome: s.outcome,
        after: s.after.unwrap_or(0).max(0),
        limit,
    };
    let records = run(move || Ok(state.sam.search_audit_as(&actor, &q)?)).await?;
    let next = match records.last() {
        Some(last) if i64::try_from(records.len()).is_ok_and(|n| n == limit) => json!(last.seq),
        _ => Value::Null,
    };
    Ok(HttpResponse::Ok().json(json!({
        "records": records.iter().map(record_json).collect::<Vec<_>>(),
        "next": next,
    })))
}

/// `POST /admin/v1/audit/verify`: the chain and the configured seal file.
pub async fn audit_verify(
    Admin(actor): Admin,
    state: web::Data<AdminState>,
    _: Json<Nothing>,
) -> Result<HttpResponse, AdminError> {
    let files: Vec<std::path::PathBuf> = state
        .seal_files
        .iter()
        .filter(|p| p.exists())
        .cloned()
        .collect();
    let shown: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let report = run(move || Ok(state.sam.verify_audit_recorded_as(&actor, &files)?)).await?;
    let mut out = match report.verdict {
        sam::AuditVerdict::Intact { records } => json!({ "intact": true, "records": records }),
        sam::AuditVerdict::Broken { seq, reason } => {
            json!({ "intact": false, "firstBrokenRecord": seq, "reason": reason })
        }
    };
    if let Some(map) = out.as_object_mut() {
        map.insert("seals".into(), json!(report.seals));
        map.insert("sealFiles".into(), json!(shown));
        map.insert("keyedFrom".into(), json!(report.keyed_from));
    }
    Ok(HttpResponse::Ok().json(out))
}

/// The most records one `GET /admin/v1/audit/export` exports (ask for the next range after).
pub const MAX_EXPORT_RECORDS: i64 = 100_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRange {
    from: Option<i64>,
    to: Option<i64>,
}

/// `GET /admin/v1/audit/export?from=SEQ&to=SEQ`: the records `from..=to` (default from 1, at
/// most [`MAX_EXPORT_RECORDS`]) with their seals as signed JSON lines (`sam`'s audit export),
/// `application/x-ndjson`, for the auditor; it verifies offline with the seal key alone.
pub async fn audit_export(
    Admin(actor): Admin,
    state: web::Data<AdminState>,
    req: HttpRequest,
) -> Result<HttpResponse, AdminError> {
    let range: ExportRange = query(&req)?;
    let from = range.from.unwrap_or(1);
    if from < 1 {
        return Err(AdminError::invalid(
            "Invalid parameter from: a record number from 1",
        ));
    }
    let last = from.saturating_add(MAX_EXPORT_RECORDS - 1);
    let to = match range.to {
        Some(to) if to < from || to > last => {
            return Err(AdminError::invalid(format!(
                "Invalid parameter to: from {from} to at most {last} ({MAX_EXPORT_RECORDS} records a call)"
            )));
        }
        Some(to) => Some(to),
        None => None,
    };
    let files: Vec<std::path::PathBuf> = state
        .seal_files
        .iter()
        .filter(|p| p.exists())
        .cloned()
        .collect();
    let body = run(move || {
        let mut out = Vec::new();
        state
            .sam
            .export_audit_range_as(&actor, &files, from, to, MAX_EXPORT_RECORDS, &mut out)?;
        Ok(out)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .body(body))
}

/// `GET /admin/v1/audit/seal-key`: the public key of the audit seal key (PEM), which verifies
/// an export on another machine.
pub async fn audit_seal_key(
    Admin(actor): Admin,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, AdminError> {
    let pem = run(move || Ok(state.sam.audit_seal_public_key_pem(&actor)?)).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/x-pem-file")
        .body(pem))
}
