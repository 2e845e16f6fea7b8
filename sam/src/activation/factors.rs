//! Activation factors: the PIN and OTP checks of a key activation, their lockout
//! ([`crate::lockout`]) and the operator's unlock. The core, [`Sam::activate`], verifies every
//! factor and runs the caller's grant (a SAD, an OAuth 2.0 code) in the same transaction.

use super::*;

/// The proof an OTP was right, spent in the granting transaction.
pub(super) enum OtpProof {
    /// The TOTP time step of an offline code.
    Step(i64),
    /// The digest of an online code.
    Online([u8; 32]),
}

/// The TOTP of a credential (RFC 6238: HMAC-SHA1, 6 digits, 30 s steps, one step of skew —
/// what provisioning hands out in the otpauth URI).
pub(super) fn totp_of(factor: &Factor) -> Result<totp_rs::Totp, SamError> {
    let secret = totp_rs::Secret::try_from_base32(&factor.verifier)
        .map_err(|_| SamError::InvalidInput("stored OTP secret is malformed".into()))?;
    crate::provision::totp_builder(secret)
        .build()
        .map_err(|e| SamError::InvalidInput(format!("stored OTP secret is unusable: {e}")))
}

/// The time step an OTP code belongs to, if it is valid now (±1 step).
pub(super) fn otp_step(factor: &Factor, code: &SecretString) -> Result<Option<i64>, SamError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| SamError::InvalidInput("the system clock is before 1970".into()))?
        .as_secs();
    Ok(totp_of(factor)?
        .check(code.expose_secret(), now)
        .and_then(|step| i64::try_from(step).ok()))
}

pub(super) fn lock_error(kind: FactorKind) -> SamError {
    match kind {
        FactorKind::Pin => SamError::PinLocked,
        FactorKind::Otp => SamError::OtpLocked,
    }
}

pub(super) fn invalid_factor(kind: FactorKind) -> SamError {
    match kind {
        FactorKind::Pin => SamError::InvalidPin,
        FactorKind::Otp => SamError::InvalidOtp,
    }
}

/// Counts one failed verification of `kind` and audits the refusal, under the lockout rule
/// ([`crate::lockout`]): the failure that sets the lock is also audited as `factor.lock`
/// (Part I 7.1.2.5.1, 7.1.4.1).
#[allow(clippy::too_many_arguments)]
pub(super) fn record_failure(
    c: &mut Conn<'_>,
    event: AuditEvent,
    caller: &Caller,
    subject: &str,
    credential: &CredentialId,
    kind: FactorKind,
    lockout: Lockout,
    err: &SamError,
    what: &str,
) -> Result<(), StorageError> {
    lockout.count_failure(
        c,
        |c, limit| {
            let f = c.record_factor_failure(credential, kind, limit)?;
            Ok(Counted {
                failures: f.failures,
                locked: f.locked,
            })
        },
        refusal_event(
            event,
            caller,
            subject,
            err,
            json!({ "factor": kind.as_str(), "detail": what }),
        ),
        (
            AuditEvent::FactorLock,
            &caller.user_name,
            subject,
            json!({ "factor": kind.as_str() }),
        ),
        // a factor lock ends nothing else: the credential's own lock is the defence
        |_| Ok(json!({})),
    )?;
    Ok(())
}

impl Sam {
    /// The shared core of key activation (`credentials/authorize` and the OAuth 2.0 consent
    /// page): validates the request, verifies every factor of the credential (see
    /// [`Sam::authorize`] for the rules), and — in ONE transaction that also re-checks the
    /// locks, spends the OTP and clears the failure counters — runs `grant`, which writes what
    /// the activation yields (a SAD, an authorization code) and returns audit details, then
    /// audits the success under `req.event`. A refusal from `grant` rolls the whole transaction
    /// back; factor refusals commit their bookkeeping (failure count, lock, audit).
    pub(crate) fn activate(
        &self,
        req: &ActivationRequest<'_>,
        factors: Factors,
        grant: impl FnOnce(
            &mut Conn<'_>,
            &Granted,
        ) -> Result<Result<serde_json::Value, SamError>, StorageError>
        + Send
        + 'static,
    ) -> Result<Granted, SamError> {
        let ActivationRequest {
            event,
            caller,
            credential,
            num_signatures,
            via,
            ..
        } = *req;
        let subject = credential.to_string();
        let refuse = |e: SamError| self.refuse(event, caller, &subject, e, json!({}));

        let found = self.store.read(|c| {
            let Some(cred) = c.credential(credential)? else {
                return Ok(None);
            };
            if cred.user_id != caller.user {
                return Ok(Some((cred, None, None)));
            }
            let pin = c.factor(credential, FactorKind::Pin)?;
            let otp = c.factor(credential, FactorKind::Otp)?;
            Ok(Some((cred, pin, otp)))
        })?;
        let (found, pin_factor, otp_factor) = match found {
            Some((c, p, o)) => (Some(c), p, o),
            None => (None, None, None),
        };
        let cred = self.usable(caller, credential, found).map_err(refuse)?;
        if via == Via::Authorize && cred.auth_mode == AuthMode::Oauth2Code {
            return Err(refuse(SamError::OAuthOnly));
        }

        // The request itself, before any factor is touched.
        let (num, hashes) =
            check_request(&cred, num_signatures, req.hashes.clone()).map_err(refuse)?;
        // Level 2 key authorization is multi-factor (Part I 3.5.2): never one factor for SCAL 2.
        if cred.scal == Scal::Two && (pin_factor.is_none() || otp_factor.is_none()) {
            return Err(refuse(SamError::TwoFactorsRequired));
        }

        // Every factor the credential has must be presented, and none may be locked.
        let pin = match &pin_factor {
            Some(f) => Some((
                f,
                factors
                    .pin
                    .as_ref()
                    .ok_or_else(|| refuse(SamError::MissingPin))?,
            )),
            None => None,
        };
        let otp = match &otp_factor {
            Some(f) => Some((
                f,
                factors
                    .otp
                    .as_ref()
                    .ok_or_else(|| refuse(SamError::MissingOtp))?,
            )),
            None => None,
        };
        for factor in [pin_factor.as_ref(), otp_factor.as_ref()]
            .into_iter()
            .flatten()
        {
            if factor.locked {
                return Err(refuse(lock_error(factor.kind)));
            }
        }

        // PIN first: a wrong PIN must not burn the OTP code.
        let mut upgraded_pin = None;
        if let Some((factor, given)) = pin {
            match verify_pin(
                &self.hsm,
                &self.pin_key,
                credential,
                given,
                &factor.verifier,
            )? {
                PinMatch::No => {
                    return Err(self.factor_failure(
                        event,
                        caller,
                        &cred,
                        FactorKind::Pin,
                        "wrong PIN",
                    )?);
                }
                PinMatch::Yes => {}
                // an older, unpeppered verifier: replaced in the granting transaction
                PinMatch::YesUpgrade => {
                    upgraded_pin = Some(pin_verifier(&self.hsm, &self.pin_key, credential, given)?);
                }
            }
        }
        // An offline OTP is checked against the clock here and its step spent in the
        // transaction; an online OTP is checked and spent there in one conditional delete.
        let otp_proof = match otp {
            Some((factor, given)) => match OtpType::of(factor) {
                OtpType::Online => Some(OtpProof::Online(online_otp_hash(credential, given))),
                OtpType::Totp => match otp_step(factor, given)? {
                    Some(step) => Some(OtpProof::Step(step)),
                    None => {
                        return Err(self.factor_failure(
                            event,
                            caller,
                            &cred,
                            FactorKind::Otp,
                            "wrong OTP",
                        )?);
                    }
                },
            },
            None => None,
        };

        let granted = Granted {
            credential: cred,
            num,
            hashes,
        };
        let factor_names: Vec<&str> = [pin_factor.as_ref(), otp_factor.as_ref()]
            .into_iter()
            .flatten()
            .map(|f| f.kind.as_str())
            .collect();
        let lockout = self.policy.factor_lockout();
        let now = utc_now();
        // One transaction (group-committed with concurrent requests): re-check the locks (a
        // concurrent failure may have locked a factor since the read above), spend the OTP,
        // clear the failure counters, grant, audit. Factor refusals found here commit their
        // own bookkeeping (failure count, audit); a refusal from `grant` rolls the job back.
        // The job may run on another thread: it owns what it uses.
        let grant_refusal = Arc::new(Mutex::new(None));
        let job = {
            let (event, caller, subject, credential) =
                (event, caller.clone(), subject.clone(), *credential);
            let granted = granted.clone();
            let grant_refusal = Arc::clone(&grant_refusal);
            move |c: &mut Conn<'_>| -> Result<Grouped<Result<(), SamError>>, StorageError> {
                let mut fresh = Vec::with_capacity(2);
                for kind in [FactorKind::Pin, FactorKind::Otp] {
                    if let Some(f) = c.factor(&credential, kind)? {
                        if f.locked {
                            let err = lock_error(kind);
                            let refusal = refusal_event(event, &caller, &subject, &err, json!({}));
                            return Ok((Err(err), vec![refusal]));
                        }
                        fresh.push(f);
                    }
                }
                let otp_refusal = match &otp_proof {
                    Some(OtpProof::Step(step)) if !c.advance_otp_step(&credential, *step)? => {
                        Some("OTP code already used")
                    }
                    Some(OtpProof::Online(code_hash))
                        if !c.take_online_otp(&credential, code_hash, now)? =>
                    {
                        Some("wrong, used or expired online OTP")
                    }
                    _ => None,
                };
                if let Some(what) = otp_refusal {
                    let err = SamError::InvalidOtp;
                    record_failure(
                        c,
                        event,
                        &caller,
                        &subject,
                        &credential,
                        FactorKind::Otp,
                        lockout,
                        &err,
                        what,
                    )?;
                    return Ok((Err(err), Vec::new()));
                }
                for f in fresh.iter().filter(|f| f.failures > 0) {
                    c.reset_factor_failures(&credential, f.kind)?;
                }
                if let Some(verifier) = &upgraded_pin {
                    c.set_factor(&credential, FactorKind::Pin, verifier)?;
                }
                let mut detail = match grant(c, &granted)? {
                    Ok(d) => d,
                    Err(e) => {
                        *grant_refusal.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                        return Err(StorageError::Conflict("refused: rolled back".into()));
                    }
                };
                if let Some(map) = detail.as_object_mut() {
                    map.insert("numSignatures".into(), json!(granted.num));
                    map.insert(
                        "boundHashes".into(),
                        json!(granted.hashes.as_ref().map_or(0, Vec::len)),
                    );
                    map.insert("SCAL".into(), json!(granted.credential.scal.as_str()));
                    map.insert("factors".into(), json!(factor_names));
                    map.insert(
                        "certificateSerial".into(),
                        json!(granted.credential.cert_serial),
                    );
                }
                let success = audit_event(event, &caller.user_name, &subject, "success", detail);
                Ok((Ok(()), vec![success]))
            }
        };
        let outcome = self.store.write_grouped(job);
        let refused = grant_refusal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match (outcome, refused) {
            (Err(_), Some(e)) => Err(refuse(e)),
            (outcome, _) => {
                outcome??;
                Ok(granted)
            }
        }
    }

    /// Counts a failed factor verification (atomically, locking at the policy's limit) and
    /// audits it in the same transaction; returns the error to give the client.
    pub(super) fn factor_failure(
        &self,
        event: AuditEvent,
        caller: &Caller,
        credential: &Credential,
        kind: FactorKind,
        what: &str,
    ) -> Result<SamError, SamError> {
        let err = invalid_factor(kind);
        let subject = credential.id.to_string();
        let lockout = self.policy.factor_lockout();
        self.store.write(|c| {
            record_failure(
                c,
                event,
                caller,
                &subject,
                &credential.id,
                kind,
                lockout,
                &err,
                what,
            )
        })?;
        Ok(err)
    }

    /// `csc-server credential unlock`: an operator lifts the lock of a credential's activation
    /// factors (PIN, OTP) and clears their failure counters (Part I 7.1.2.5.1: locked "until an
    /// administrator unlocks"). Returns the factors that were locked. Audited as
    /// `credential.unlock`, also when nothing was locked.
    pub fn unlock_credential(
        &self,
        credential: &CredentialId,
        actor: &str,
    ) -> Result<Vec<FactorKind>, SamError> {
        let subject = credential.to_string();
        self.store
            .write(|c| {
                if c.credential(credential)?.is_none() {
                    return Err(StorageError::NotFound);
                }
                let mut was_locked = Vec::new();
                let mut present = Vec::new();
                for kind in [FactorKind::Pin, FactorKind::Otp] {
                    if let Some(f) = c.factor(credential, kind)? {
                        present.push(kind.as_str());
                        if f.locked {
                            was_locked.push(kind);
                        }
                        if f.locked || f.failures > 0 {
                            c.set_factor_lock(credential, kind, false)?;
                        }
                    }
                }
                c.append_audit(&audit_event(
                    AuditEvent::CredentialUnlock,
                    actor,
                    &subject,
                    "success",
                    json!({
                        "unlocked": was_locked.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                        "factors": present,
                    }),
                ))?;
                Ok(was_locked)
            })
            .map_err(|e| match e {
                StorageError::NotFound => SamError::UnknownCredential(subject.clone()),
                e => e.into(),
            })
    }
}
