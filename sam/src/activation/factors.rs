//! Activation factors: the PIN and OTP checks of a key activation, their lockout
//! ([`crate::lockout`]) and the operator's unlock. The core, [`Sam::activate`], verifies every
//! factor and runs the caller's grant (a SAD, an OAuth 2.0 code) in the same transaction.

use super::*;
use crate::roles::{Action, Actor};

/// The proof an OTP was right, spent in the granting transaction.
pub(super) enum OtpProof {
    /// The TOTP time step of an offline code.
    Step(i64),
    /// The digest of an online code ([`crate::otp::online_otp_digest`]).
    Online([u8; 32]),
}

/// What an OTP factor is checked against.
enum OtpCheck {
    /// An offline TOTP whose seed is in the token.
    Totp(TotpVerifier),
    /// An online code from `credentials/sendOTP`.
    Online,
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

/// The failure counter of a credential's factor.
pub(super) fn counter(credential: &CredentialId, kind: FactorKind) -> Counter {
    Counter::Factor(*credential, kind)
}

/// Settles a wrong value of `kind` under the lockout rule ([`crate::lockout`]): its reserved
/// slot stays counted, the failure that reaches the limit sets the lock (audited as
/// `factor.lock`, Part I 7.1.2.5.1, 7.1.4.1), and the refusal is audited; the slots the same
/// activation reserved for the `others` factors, never verified or right, are given back.
#[allow(clippy::too_many_arguments)]
pub(super) fn record_failure(
    c: &mut Conn<'_>,
    event: AuditEvent,
    caller: &Caller,
    subject: &str,
    credential: &CredentialId,
    kind: FactorKind,
    others: &[FactorKind],
    lockout: Lockout,
    err: &SamError,
    what: &str,
) -> Result<(), StorageError> {
    for other in others {
        lockout.release(c, counter(credential, *other))?;
    }
    lockout.fail(
        c,
        counter(credential, kind),
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

/// The factors of `kinds` other than `kind`.
fn others(kinds: &[FactorKind], kind: FactorKind) -> Vec<FactorKind> {
    kinds.iter().copied().filter(|k| *k != kind).collect()
}

impl Sam {
    /// The shared core of key activation (`credentials/authorize` and the OAuth 2.0 consent
    /// page): validates the request, verifies every factor of the credential (see
    /// [`Sam::authorize`] for the rules), and — in ONE transaction that also re-checks the
    /// locks, spends the OTP and clears the failure counters — runs `grant`, which writes what
    /// the activation yields (a SAD, an authorization code) and returns audit details, then
    /// audits the success under `req.event`. A refusal from `grant` rolls the whole transaction
    /// back; factor refusals commit their bookkeeping (failure count, lock, audit).
    ///
    /// The lockout counts first ([`crate::lockout`]): before any factor is verified, one
    /// transaction reserves a failure slot of every factor (refused as locked if one has
    /// none), so at most `max_factor_failures` wrong values of a factor are ever verified
    /// between two successes, however many requests arrive at once. A wrong value keeps its
    /// slot (and may set the lock); the other factor's slot is given back; a grant clears
    /// them. An activation that ends without a verdict (HSM or storage error, a refused grant)
    /// gives its slots back, best effort; a crash leaves them counted.
    ///
    /// Counted in `csc_authorizations_total` (crate::observe).
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
        let result = self.activate_uncounted(req, factors, grant);
        let via = match req.via {
            Via::Authorize => "authorize",
            Via::OAuth2 => "oauth2",
        };
        crate::observe::count_authorization(via, &result);
        result
    }

    fn activate_uncounted(
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
                return Ok(Some((cred, RequiredFactors::default())));
            }
            let required = c.required_factors(&cred)?;
            Ok(Some((cred, required)))
        })?;
        let (found, required) = match found {
            Some((c, r)) => (Some(c), r),
            None => (None, RequiredFactors::default()),
        };
        let cred = self.usable(caller, credential, found).map_err(refuse)?;
        // The credential's sealed factor set decides what must be presented: a required
        // factor whose row is gone or fails its MAC refuses the activation as a locked factor
        // would (README "Threat model": deleting a factor row never drops a factor).
        if let Some(&kind) = required.missing.first() {
            return Err(refuse(lock_error(kind)));
        }
        let RequiredFactors {
            pin: pin_factor,
            otp: otp_factor,
            ..
        } = required;
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
        // Older data made under a lower level never activates under a higher one (crate::level).
        let factor_count = usize::from(pin_factor.is_some()) + usize::from(otp_factor.is_some());
        self.policy
            .assurance_level
            .check(cred.scal, factor_count)
            .map_err(refuse)?;

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
        let kinds: Vec<FactorKind> = [pin_factor.as_ref(), otp_factor.as_ref()]
            .into_iter()
            .flatten()
            .map(|f| f.kind)
            .collect();
        for factor in [pin_factor.as_ref(), otp_factor.as_ref()]
            .into_iter()
            .flatten()
        {
            if factor.locked {
                return Err(refuse(lock_error(factor.kind)));
            }
        }

        // An offline OTP whose seed is not in the token (a plain seed of an older database,
        // before `csc-server credential migrate-otp`; or a malformed verifier) verifies nothing:
        // refused before any factor is tried, audited, not counted (no guess was wrong).
        let otp_check = match otp {
            Some((factor, given)) => Some((
                given,
                match OtpType::of(factor) {
                    OtpType::Online => OtpCheck::Online,
                    OtpType::Totp => match TotpVerifier::parse(&factor.verifier) {
                        Some(v) => OtpCheck::Totp(v),
                        None => {
                            tracing::warn!(
                                credential = %subject,
                                "the TOTP seed of this credential is not in the token: run `csc-server credential migrate-otp`"
                            );
                            return Err(self.refuse(
                                event,
                                caller,
                                &subject,
                                SamError::InvalidOtp,
                                json!({ "factor": "otp", "detail": "OTP secret not in the token" }),
                            ));
                        }
                    },
                },
            )),
            None => None,
        };

        // Count first: a failure slot of every factor, or a refusal as locked, before any
        // factor is verified.
        self.reserve_factors(event, caller, &subject, credential, &kinds)?;

        // PIN first: a wrong PIN must not burn the OTP code.
        if let Some((factor, given)) = pin {
            self.checks.count(Checked::Pin);
            let verdict = verify_pin(
                &self.hsm,
                &self.pin_key,
                credential,
                given,
                &factor.verifier,
            );
            match verdict {
                Ok(PinMatch::No) => {
                    return Err(self.factor_failure(
                        event,
                        caller,
                        &cred,
                        FactorKind::Pin,
                        &others(&kinds, FactorKind::Pin),
                        "wrong PIN",
                    )?);
                }
                Ok(PinMatch::Yes) => {}
                Err(e) => {
                    self.release_slots(credential, &kinds);
                    return Err(e);
                }
            }
        }
        // An offline OTP is checked against the clock here and its step spent in the
        // transaction; an online OTP is checked and spent there in one conditional delete.
        let otp_proof = match otp_check {
            Some((given, OtpCheck::Online)) => {
                match online_otp_digest(&self.hsm, &self.pin_key, credential, given) {
                    Ok(digest) => Some(OtpProof::Online(digest)),
                    Err(e) => {
                        self.release_slots(credential, &kinds);
                        return Err(e);
                    }
                }
            }
            Some((given, OtpCheck::Totp(verifier))) => {
                self.checks.count(Checked::Otp);
                match totp_step(&self.hsm, &verifier, given) {
                    Ok(Some(step)) => Some(OtpProof::Step(step)),
                    Ok(None) => {
                        return Err(self.factor_failure(
                            event,
                            caller,
                            &cred,
                            FactorKind::Otp,
                            &others(&kinds, FactorKind::Otp),
                            "wrong OTP",
                        )?);
                    }
                    Err(e) => {
                        self.release_slots(credential, &kinds);
                        return Err(e);
                    }
                }
            }
            None => None,
        };

        let granted = Granted {
            credential: cred,
            num,
            hashes,
        };
        let factor_names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let lockout = self.policy.factor_lockout();
        let now = utc_now();
        // One transaction (group-committed with concurrent requests): re-check the locks (a
        // concurrent failure may have locked a factor since the reservation), spend the OTP,
        // clear the failure counters (conditionally: a lock set meanwhile refuses and rolls
        // back), grant, audit. Factor refusals found here commit their own bookkeeping
        // (failure count, lock, audit); a refusal from `grant` rolls the job back. The job may
        // run on another thread: it owns what it uses.
        let grant_refusal = Arc::new(Mutex::new(None));
        let job = {
            let (event, caller, subject, credential) =
                (event, caller.clone(), subject.clone(), *credential);
            let granted = granted.clone();
            let grant_refusal = Arc::clone(&grant_refusal);
            let kinds = kinds.clone();
            let checks = self.checks.clone();
            move |c: &mut Conn<'_>| -> Result<Grouped<Result<(), SamError>>, StorageError> {
                let rollback = |e: SamError| {
                    *grant_refusal.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                    Err(StorageError::Conflict("refused: rolled back".into()))
                };
                for kind in &kinds {
                    // locked meanwhile, or the row vanished (or fails its MAC): refused as locked
                    if c.factor(&credential, *kind)?.is_none_or(|f| f.locked) {
                        for k in &kinds {
                            lockout.release(c, counter(&credential, *k))?;
                        }
                        let err = lock_error(*kind);
                        let refusal = refusal_event(event, &caller, &subject, &err, json!({}));
                        return Ok((Err(err), vec![refusal]));
                    }
                }
                let otp_refusal = match &otp_proof {
                    Some(OtpProof::Step(step)) if !c.advance_otp_step(&credential, *step)? => {
                        Some("OTP code already used")
                    }
                    Some(OtpProof::Online(code_hash)) => {
                        checks.count(Checked::Otp);
                        if c.take_online_otp(&credential, code_hash, now)? {
                            None
                        } else {
                            Some("wrong, used or expired online OTP")
                        }
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
                        &others(&kinds, FactorKind::Otp),
                        lockout,
                        &err,
                        what,
                    )?;
                    return Ok((Err(err), Vec::new()));
                }
                // Success: the slots are cleared here, with the grant, or not at all.
                for kind in &kinds {
                    if !lockout.clear(c, counter(&credential, *kind))? {
                        return rollback(lock_error(*kind));
                    }
                }
                let mut detail = match grant(c, &granted)? {
                    Ok(d) => d,
                    Err(e) => return rollback(e),
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
            (Ok(Ok(())), _) => Ok(granted),
            // a refusal committed with its bookkeeping (a wrong OTP, a lock)
            (Ok(Err(e)), _) => Err(e),
            // rolled back: no verdict on the factors, their slots are given back
            (Err(_), Some(e)) => {
                self.release_slots(credential, &kinds);
                Err(refuse(e))
            }
            (Err(e), None) => {
                self.release_slots(credential, &kinds);
                Err(e.into())
            }
        }
    }

    /// Step 1 of the lockout rule for an activation: reserves a failure slot of every factor
    /// in `kinds`, in one transaction. If one has no slot, the slots taken are given back; if
    /// it is locked, the refusal is audited in the same transaction and returned
    /// ([`SamError::PinLocked`] / [`SamError::OtpLocked`]); if its slots are only held by
    /// attempts still in flight, it waits for one (a few milliseconds at a time, at most
    /// the policy's `max_slot_wait`) and is refused as locked only after that.
    fn reserve_factors(
        &self,
        event: AuditEvent,
        caller: &Caller,
        subject: &str,
        credential: &CredentialId,
        kinds: &[FactorKind],
    ) -> Result<(), SamError> {
        let lockout = self.policy.factor_lockout();
        let (caller, subject, credential, kinds) = (
            caller.clone(),
            subject.to_owned(),
            *credential,
            kinds.to_vec(),
        );
        let (got, refused) = lockout.until_not_busy(|patient| {
            let (caller, subject, kinds) = (caller.clone(), subject.clone(), kinds.clone());
            self.store.write_grouped(move |c| {
                let mut taken = Vec::with_capacity(kinds.len());
                for kind in kinds {
                    let got = lockout.reserve(c, counter(&credential, kind))?;
                    if got == Reservation::Reserved {
                        taken.push(kind);
                        continue;
                    }
                    for k in taken {
                        lockout.release(c, counter(&credential, k))?;
                    }
                    if got == Reservation::Busy && patient {
                        return Ok(((Reservation::Busy, Some(kind)), Vec::new()));
                    }
                    let refusal =
                        refusal_event(event, &caller, &subject, &lock_error(kind), json!({}));
                    return Ok(((Reservation::Locked, Some(kind)), vec![refusal]));
                }
                Ok(((Reservation::Reserved, None), Vec::new()))
            })
        })?;
        match (got, refused) {
            (Reservation::Reserved, _) | (_, None) => Ok(()),
            (_, Some(kind)) => Err(lock_error(kind)),
        }
    }

    /// Gives back the slots of an activation that ended without a verdict on its factors (an
    /// HSM or storage error, a refused grant). Best effort: if this write fails too, the slots
    /// stay counted (conservative) and the failure is logged.
    fn release_slots(&self, credential: &CredentialId, kinds: &[FactorKind]) {
        let lockout = self.policy.factor_lockout();
        let released = self.store.write(|c| {
            for kind in kinds {
                lockout.release(c, counter(credential, *kind))?;
            }
            Ok(())
        });
        if let Err(e) = released {
            tracing::error!(error = %e, credential = %credential, "could not give back the failure slots of an activation");
        }
    }

    /// Settles a wrong factor value (its slot stays counted; the lock is set at the policy's
    /// limit; the slots of `others` are given back) and audits it, in one transaction; returns
    /// the error to give the client.
    pub(super) fn factor_failure(
        &self,
        event: AuditEvent,
        caller: &Caller,
        credential: &Credential,
        kind: FactorKind,
        others: &[FactorKind],
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
                others,
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
        actor: &Actor,
    ) -> Result<Vec<FactorKind>, SamError> {
        self.permit(actor, Action::CredentialUnlock, &credential.to_string())?;
        let actor = &actor.audit_name();
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
