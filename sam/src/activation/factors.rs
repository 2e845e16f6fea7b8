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

/// How an activation waits between two asks for a slot held by attempts in flight.
#[derive(Debug, Clone, Copy)]
pub(super) enum Pace {
    /// The thread sleeps (the blocking [`Sam::activate`], which owns its thread).
    Blocking,
    /// The task sleeps on the runtime's timer: the HTTP worker keeps serving.
    Async,
}

impl Pace {
    /// Waits before asking again for a slot: [`crate::lockout::SLOT_POLL`] for a thread; a
    /// task asks more often ([`ASYNC_SLOT_POLL`]), since its wait holds no thread.
    async fn pause(self) {
        match self {
            Pace::Blocking => std::thread::sleep(crate::lockout::SLOT_POLL),
            Pace::Async => tokio::time::sleep(ASYNC_SLOT_POLL).await,
        }
    }
}

/// How often an async activation asks again for a slot held by attempts in flight.
const ASYNC_SLOT_POLL: std::time::Duration = std::time::Duration::from_millis(1);

/// Whether an activation's reserved slots are held, and whether it went away.
#[derive(Debug, Default)]
struct Slots {
    held: bool,
    abandoned: bool,
}

/// Gives back an activation's reserved slots if dropped armed: its future was dropped between
/// the reservation and the queueing of the slots' outcome, so no factor was settled. The give
/// back is a job queued to the group commit; it and the reservation job agree through
/// [`Slots`] (in whatever order they run) so exactly one of them gives the slots back, and
/// only once they were taken.
struct Abandon<'a> {
    sam: &'a Sam,
    credential: CredentialId,
    kinds: Vec<FactorKind>,
    slots: Arc<Mutex<Slots>>,
    armed: bool,
}

impl Abandon<'_> {
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // queued now; commits whether or not anyone awaits it
        drop(self.sam.store.write_grouped_declared_async(
            DeclaredRows::activation(self.credential, false),
            release_job(
                self.sam.policy.factor_lockout(),
                self.credential,
                std::mem::take(&mut self.kinds),
                Some(Arc::clone(&self.slots)),
                None,
            ),
        ));
    }
}

/// The job that gives back the slots of `kinds`; with `slots`, only if the reservation job
/// took them (and it marks the activation abandoned, so a reservation job still to come takes
/// none); with `reserved`, only if the batch holding the reservation committed.
fn release_job(
    lockout: Lockout,
    credential: CredentialId,
    kinds: Vec<FactorKind>,
    slots: Option<Arc<Mutex<Slots>>>,
    reserved: Option<Durable>,
) -> impl FnOnce(&mut Conn<'_>) -> Result<Grouped<()>, StorageError> + Send + 'static {
    move |c| {
        if let Some(reserved) = reserved
            && reserved.settled_now().is_err()
        {
            // the reservation was undone with its batch: there is nothing to give back
            return Ok(((), Vec::new()));
        }
        if let Some(slots) = slots {
            let mut slots = slots.lock().unwrap_or_else(PoisonError::into_inner);
            slots.abandoned = true;
            if !std::mem::take(&mut slots.held) {
                return Ok(((), Vec::new()));
            }
        }
        for kind in &kinds {
            lockout.release(c, counter(&credential, *kind))?;
        }
        Ok(((), Vec::new()))
    }
}

/// What an activation yields once its factors are right, in the granting transaction (a SAD, an
/// OAuth 2.0 code): audit details, or a refusal that rolls the transaction back.
pub(super) type Grant = Box<
    dyn FnOnce(&mut Conn<'_>, &Granted) -> Result<Result<serde_json::Value, SamError>, StorageError>
        + Send,
>;

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
        // one implementation of the rules: the async one, this thread parked while it waits
        super::wait(self.activate_paced(req, factors, Box::new(grant), Pace::Blocking))
    }

    /// [`Sam::activate`] for an async caller (the HTTP worker, with [`Pace::Async`]): the same checks in the same
    /// order, the same bookkeeping and audit records, but each durable write (the slot
    /// reservation, the outcome with the grant) is a job of the store's group commit, awaited
    /// ([`storage::Store::write_grouped_async`]), and the wait for a slot held by attempts in
    /// flight is an async sleep. The credential's read and the PIN's check (an HMAC in the
    /// token and a light Argon2id) run on the calling thread.
    ///
    /// Dropped (the client went away): a job already queued still commits; a reservation whose
    /// outcome was never queued is given back by a job queued from the drop, so an abandoned
    /// activation neither loses a failure already settled nor keeps a slot reserved.
    pub(super) async fn activate_paced(
        &self,
        req: &ActivationRequest<'_>,
        factors: Factors,
        grant: Grant,
        pace: Pace,
    ) -> Result<Granted, SamError> {
        let result = self.activate_uncounted(req, factors, grant, pace).await;
        let via = match req.via {
            Via::Authorize => "authorize",
            Via::OAuth2 => "oauth2",
        };
        crate::observe::count_authorization(via, &result);
        result
    }

    async fn activate_uncounted(
        &self,
        req: &ActivationRequest<'_>,
        factors: Factors,
        grant: Grant,
        pace: Pace,
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
        // factor is verified. The factors are verified as soon as the reservation is kept in
        // its batch, while that batch commits (SQLite: the check overlaps the fsync, and the
        // outcome job joins the very next batch); every job that settles the slots runs in a
        // later batch and does nothing unless the reservation committed (`reserved`), so no
        // verdict leaves unless the slot it counts is durable.
        let (mut abandon, reserved) = self
            .reserve_factors(event, caller, &subject, credential, &kinds, pace)
            .await?;
        // from here every path queues the slots' outcome (eagerly: it commits even if this
        // future is dropped), so a drop no longer needs to give them back
        abandon.disarm();

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
                    return Err(self
                        .factor_failure(
                            event,
                            caller,
                            &cred,
                            FactorKind::Pin,
                            &others(&kinds, FactorKind::Pin),
                            "wrong PIN",
                            reserved,
                        )
                        .await?);
                }
                Ok(PinMatch::Yes) => {}
                Err(e) => {
                    self.release_slots(credential, &kinds, Some(reserved)).await;
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
                        self.release_slots(credential, &kinds, Some(reserved)).await;
                        return Err(e);
                    }
                }
            }
            Some((given, OtpCheck::Totp(verifier))) => {
                self.checks.count(Checked::Otp);
                match totp_step(&self.hsm, &verifier, given) {
                    Ok(Some(step)) => Some(OtpProof::Step(step)),
                    Ok(None) => {
                        return Err(self
                            .factor_failure(
                                event,
                                caller,
                                &cred,
                                FactorKind::Otp,
                                &others(&kinds, FactorKind::Otp),
                                "wrong OTP",
                                reserved,
                            )
                            .await?);
                    }
                    Err(e) => {
                        self.release_slots(credential, &kinds, Some(reserved)).await;
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
        // Declared (storage::Store::write_grouped_declared_async: on PostgreSQL the batch holds
        // the factor rows and the credential for all its activations, no round trip of their
        // own) when everything the job touches is held there: not an online OTP (its code is
        // taken from a table of its own), not an OAuth 2.0 grant (it writes a code).
        let declare = via == Via::Authorize && !matches!(otp_proof, Some(OtpProof::Online(_)));
        let grant_refusal = Arc::new(Mutex::new(None));
        let job = {
            let (event, caller, subject, credential) =
                (event, caller.clone(), subject.clone(), *credential);
            let granted = granted.clone();
            let grant_refusal = Arc::clone(&grant_refusal);
            let kinds = kinds.clone();
            let checks = self.checks.clone();
            move |c: &mut Conn<'_>| -> Result<Grouped<Result<(), SamError>>, StorageError> {
                if let Err(e) = reserved.settled_now() {
                    // the reservation was undone with its batch: no verdict, nothing to settle
                    return Ok((Err(e.into()), Vec::new()));
                }
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
        let outcome = if declare {
            self.store
                .write_grouped_declared_async(DeclaredRows::activation(*credential, true), job)
                .await
        } else {
            self.store.write_grouped_async(job).await
        };
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
                self.release_slots(credential, &kinds, None).await;
                Err(refuse(e))
            }
            (Err(e), None) => {
                self.release_slots(credential, &kinds, None).await;
                Err(e.into())
            }
        }
    }

    /// Step 1 of the lockout rule for an activation: reserves a failure slot of every factor
    /// in `kinds`, in one transaction (a job of the group commit, awaited). If one has no
    /// slot, the slots taken are given back; if it is locked, the refusal is audited in the
    /// same transaction and returned ([`SamError::PinLocked`] / [`SamError::OtpLocked`]); if
    /// its slots are only held by attempts still in flight, it waits for one (a few
    /// milliseconds at a time, at most the policy's `max_slot_wait`, paced by `pace`) and is
    /// refused as locked only after that.
    ///
    /// Returned once the reservation is kept in its batch ([`storage::Store::write_grouped_declared_staged`]:
    /// on SQLite before that batch commits), with the [`Durable`] that says whether it
    /// committed: every job settling the slots checks it first. A refusal as locked is
    /// returned only once its record is durable.
    ///
    /// The returned [`Abandon`] gives the slots back if it is dropped armed (the activation's
    /// future dropped before it queued the slots' outcome); so does a reservation job that
    /// finds its future already dropped.
    async fn reserve_factors(
        &self,
        event: AuditEvent,
        caller: &Caller,
        subject: &str,
        credential: &CredentialId,
        kinds: &[FactorKind],
        pace: Pace,
    ) -> Result<(Abandon<'_>, Durable), SamError> {
        let lockout = self.policy.factor_lockout();
        let mut abandon = Abandon {
            sam: self,
            credential: *credential,
            kinds: kinds.to_vec(),
            slots: Arc::new(Mutex::new(Slots::default())),
            armed: true,
        };
        let deadline = std::time::Instant::now() + lockout.slot_wait();
        loop {
            let patient = std::time::Instant::now() < deadline;
            let (caller, subject, kinds) = (caller.clone(), subject.to_owned(), kinds.to_vec());
            let (credential, slots) = (*credential, Arc::clone(&abandon.slots));
            let staged = self.store.write_grouped_declared_staged(
                DeclaredRows::activation(credential, false),
                move |c| {
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
                    let mut slots = slots.lock().unwrap_or_else(PoisonError::into_inner);
                    if slots.abandoned {
                        // the activation went away before this job ran: nothing is verified
                        for k in taken {
                            lockout.release(c, counter(&credential, k))?;
                        }
                    } else {
                        slots.held = true;
                    }
                    Ok(((Reservation::Reserved, None), Vec::new()))
                },
            );
            let (outcome, durable) = staged.ran().await;
            let (got, refused) = match outcome {
                Ok(got) => got,
                Err(e) => {
                    // the job failed, or its batch did: nothing was reserved (or, the writer
                    // gone, it is unknown, and a slot left counted is the safe side)
                    abandon.disarm();
                    return Err(e.into());
                }
            };
            match (got, refused) {
                (Reservation::Reserved, _) | (_, None) => return Ok((abandon, durable)),
                (Reservation::Busy, _) => pace.pause().await,
                (Reservation::Locked, Some(kind)) => {
                    abandon.disarm();
                    // the refusal is answered once its record is durable
                    durable.settled().await?;
                    return Err(lock_error(kind));
                }
            }
        }
    }

    /// Gives back the slots of an activation that ended without a verdict on its factors (an
    /// HSM or storage error, a refused grant), in a job of the group commit; with `reserved`,
    /// only if the reservation committed. Best effort: if this write fails too, the slots stay
    /// counted (conservative) and the failure is logged.
    async fn release_slots(
        &self,
        credential: &CredentialId,
        kinds: &[FactorKind],
        reserved: Option<Durable>,
    ) {
        let released = self
            .store
            .write_grouped_declared_async(
                DeclaredRows::activation(*credential, false),
                release_job(
                    self.policy.factor_lockout(),
                    *credential,
                    kinds.to_vec(),
                    None,
                    reserved,
                ),
            )
            .await;
        if let Err(e) = released {
            tracing::error!(error = %e, credential = %credential, "could not give back the failure slots of an activation");
        }
    }

    /// Settles a wrong factor value (its slot stays counted; the lock is set at the policy's
    /// limit; the slots of `others` are given back) and audits it, in one transaction (a job
    /// of the group commit, queued at once: it commits even if the caller goes away); returns
    /// the error to give the client. If the batch holding the slots' reservation (`reserved`)
    /// did not commit, nothing is settled and the client learns nothing of its value (a
    /// storage error instead of the verdict: no guess is answered uncounted).
    #[allow(clippy::too_many_arguments)]
    async fn factor_failure(
        &self,
        event: AuditEvent,
        caller: &Caller,
        credential: &Credential,
        kind: FactorKind,
        others: &[FactorKind],
        what: &str,
        reserved: Durable,
    ) -> Result<SamError, SamError> {
        let err = invalid_factor(kind);
        let lockout = self.policy.factor_lockout();
        let (caller, id, others, what) = (
            caller.clone(),
            credential.id,
            others.to_vec(),
            what.to_owned(),
        );
        let subject = id.to_string();
        self.store
            .write_grouped_async(move |c| {
                reserved.settled_now()?;
                record_failure(
                    c,
                    event,
                    &caller,
                    &subject,
                    &id,
                    kind,
                    &others,
                    lockout,
                    &invalid_factor(kind),
                    &what,
                )?;
                Ok(((), Vec::new()))
            })
            .await?;
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
