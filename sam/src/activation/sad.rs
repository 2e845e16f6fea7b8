//! SADs: issue (`credentials/authorize`), renewal (`credentials/extendTransaction`) and
//! spending (`signatures/signHash`), the only path to [`cm_pkcs11::Hsm::sign_digests`].

use super::*;
use storage::SadSpend;

/// The audit reference of a SAD: the first 8 hex digits of its SHA-256.
pub(crate) fn sad_ref(sad_hash: &[u8]) -> String {
    hex::encode(sad_hash.get(..4).unwrap_or(sad_hash))
}

/// Whether the multiset `bound` contains every element of the multiset `wanted`.
pub(super) fn covers(bound: &[Vec<u8>], wanted: &[Vec<u8>]) -> bool {
    let mut left: Vec<&[u8]> = bound.iter().map(Vec::as_slice).collect();
    wanted
        .iter()
        .all(|w| match left.iter().position(|h| *h == w.as_slice()) {
            Some(i) => {
                left.swap_remove(i);
                true
            }
            None => false,
        })
}

/// The SAD checks shared by extendTransaction and signHash: it exists, is not revoked, belongs
/// to this caller and this credential, has not expired, its transaction has not outlived the
/// policy's `max_transaction_life` (counted from `authorized_at`), and it has signatures left.
/// A SAD past its expiry or its transaction's end is [`SamError::SadExpired`].
///
/// The SADs the SAM writes never expire after their transaction's end (see
/// [`SamPolicy::sad_expiry`]); the end is checked here too so that a lowered maximum, or a row
/// written otherwise, cannot carry a transaction further.
pub(super) fn check_sad<'s>(
    sad: Option<&'s Sad>,
    caller: &Caller,
    credential: &CredentialId,
    now: NaiveDateTime,
    policy: &SamPolicy,
) -> Result<&'s Sad, SamError> {
    let sad = sad.ok_or(SamError::InvalidSad)?;
    if sad.user_id != caller.user || sad.credential_id != *credential {
        return Err(SamError::InvalidSad);
    }
    let transaction_over = policy
        .transaction_end(sad.authorized_at)
        .is_some_and(|end| end <= now);
    // storage's one rule decides; the expiry only chooses the answer's words
    if sad.is_usable(now) && !transaction_over {
        Ok(sad)
    } else if !sad.revoked && (sad.expires_at <= now || transaction_over) {
        Err(SamError::SadExpired)
    } else {
        Err(SamError::InvalidSad)
    }
}

/// Why a signHash request may not spend `hashes` from `sad` (SCAL 2: every hash must be
/// covered; SCAL 1: no more hashes than signatures left).
pub(super) fn check_spend(sad: &Sad, scal: Scal, hashes: &[Vec<u8>]) -> Result<(), SamError> {
    match &sad.hashes {
        Some(bound) if !covers(bound, hashes) => return Err(SamError::HashNotAuthorized),
        // A count-only SAD never signs for a SCAL 2 credential (e.g. one raised to SCAL 2
        // after the SAD was issued).
        None if scal == Scal::Two => return Err(SamError::HashNotAuthorized),
        _ => {}
    }
    if i32::try_from(hashes.len()).map_or(true, |n| n > sad.remaining) {
        return Err(SamError::TooManyHashes);
    }
    Ok(())
}

/// Parses the stored key spec and key id of a credential.
pub(super) fn key_of(credential: &Credential) -> Result<(KeySpec, KeyId), SamError> {
    let spec = credential
        .key_spec
        .parse()
        .map_err(|_| SamError::InvalidInput("stored key spec is malformed".into()))?;
    Ok((spec, key_id_of(credential)?))
}

/// Parses the stored key id (the CKA_ID in the token) of a credential.
pub(crate) fn key_id_of(credential: &Credential) -> Result<KeyId, SamError> {
    credential
        .key_id
        .parse()
        .map_err(|_| SamError::InvalidInput("stored key id is malformed".into()))
}

impl Sam {
    /// `credentials/authorize` (explicit mode): verifies every factor the credential has and
    /// issues a SAD for `num_signatures` signatures (Part II 3.2.1.1, I 3.5.2).
    ///
    /// * The credential must be the caller's ([`SamError::UnknownCredential`]) and enabled; a
    ///   credential whose `authMode` is `oauth2code` is refused ([`SamError::OAuthOnly`], spec
    ///   §11.6: "SHALL NOT be used" for it).
    /// * `1 <= num_signatures <= multisign`.
    /// * SCAL 2 requires exactly `num_signatures` hashes ([`SamError::MissingHash`],
    ///   [`SamError::HashCountMismatch`]; spec §11.6: the count SHOULD equal numSignatures and
    ///   the server MAY refuse otherwise) and binds the SAD to exactly that multiset (Part II
    ///   3.2.1.4): every signature of the transaction is of a hash the signer saw and
    ///   authorized. SCAL 1 binds them too when they are sent (up to `num_signatures`; the
    ///   spec lets the server bind a SAD to the hashes it was given): such a SAD then signs
    ///   only those hashes.
    /// * SCAL 2 is never activated by one factor: a SCAL 2 credential without both a PIN and an
    ///   OTP is refused ([`SamError::TwoFactorsRequired`]; JT2A Part I 3.5.2 level 2).
    ///   Provisioning refuses to make one; this guards older data.
    /// * Each hash must have an approved digest length (32, 48 or 64 bytes).
    /// * PIN: Argon2id over an HMAC keyed in the HSM ([`crate::secrets`]; an older plain
    ///   Argon2id verifier is upgraded on success); a locked PIN refuses even the right PIN; a
    ///   wrong one counts towards the lock (Part I 7.1.2.5.1), and the failure that sets the
    ///   lock is audited as `factor.lock`. The PIN is checked before the OTP, so a wrong PIN
    ///   never burns an OTP.
    /// * OTP: an offline RFC 6238 TOTP, whose accepted time step is recorded atomically so a
    ///   code works once; or an online OTP sent by [`Sam::send_online_otp`], used up by one
    ///   conditional delete. A replayed or wrong code is [`SamError::InvalidOtp`] and counts
    ///   like a PIN failure.
    ///
    /// The lockout counts first ([`crate::lockout`]): a failure slot of every factor is
    /// reserved before any is verified, so at most `max_factor_failures` guesses of a factor
    /// are ever verified between two successes, however many requests run in parallel; the
    /// right value arriving after the lock (or while every slot is taken) is refused
    /// ([`SamError::PinLocked`] / [`SamError::OtpLocked`]).
    ///
    /// The SAD lives `sad_lifetime`, within `max_transaction_life` from now (its
    /// `authorized_at`, which renewals keep).
    ///
    /// Audited as `sad.authorize` (success or refused, with the reason).
    ///
    /// BLOCKING: it is [`Sam::authorize_async`], this thread parked while it waits.
    pub fn authorize(
        &self,
        caller: &Caller,
        credential: &CredentialId,
        num_signatures: i64,
        hashes: Option<Vec<Vec<u8>>>,
        factors: Factors,
    ) -> Result<IssuedSad, SamError> {
        // one implementation of the rules: the async one, this thread parked while it waits
        wait(self.authorize_paced(
            caller,
            credential,
            num_signatures,
            hashes,
            factors,
            Pace::Blocking,
        ))
    }

    /// [`Sam::authorize`] for an async caller (the HTTP worker): the same checks in the same
    /// order and the same audit records; the slot reservation, and then the outcome with the
    /// SAD, are each a job of the store's group commit, awaited, so the reservation is durable
    /// before the PIN is verified and the SAD before it is returned (see
    /// [`Sam::activate_paced`] for what a dropped future leaves).
    pub async fn authorize_async(
        &self,
        caller: &Caller,
        credential: &CredentialId,
        num_signatures: i64,
        hashes: Option<Vec<Vec<u8>>>,
        factors: Factors,
    ) -> Result<IssuedSad, SamError> {
        self.authorize_paced(
            caller,
            credential,
            num_signatures,
            hashes,
            factors,
            Pace::Async,
        )
        .await
    }

    async fn authorize_paced(
        &self,
        caller: &Caller,
        credential: &CredentialId,
        num_signatures: i64,
        hashes: Option<Vec<Vec<u8>>>,
        factors: Factors,
        pace: Pace,
    ) -> Result<IssuedSad, SamError> {
        let sad = random_token(SAD_BYTES)?;
        let sad_hash = secret_hash(sad.as_bytes());
        let now = utc_now();
        let expires_at = self.policy.sad_expiry(now, now)?;
        let lifetime = seconds_until(expires_at, now);
        self.activate_paced(
            &ActivationRequest {
                event: AuditEvent::SadAuthorize,
                caller,
                credential,
                num_signatures,
                hashes,
                via: Via::Authorize,
            },
            factors,
            Box::new({
                let (user, credential, token_hash) = (caller.user, *credential, caller.token_hash);
                move |c, granted| {
                    if !super::still_enabled(c, &credential)? {
                        return Ok(Err(SamError::CredentialDisabled));
                    }
                    c.insert_sad(&NewSad {
                        sad_hash: sad_hash.to_vec(),
                        user_id: user,
                        credential_id: credential,
                        token_hash: token_hash.to_vec(),
                        remaining: granted.num,
                        expires_at,
                        hashes: granted.hashes.clone(),
                        authorized_at: now,
                    })?;
                    Ok(Ok(
                        json!({ "sad": sad_ref(&sad_hash), "expiresIn": lifetime }),
                    ))
                }
            }),
            pace,
        )
        .await?;
        Ok(IssuedSad {
            sad,
            expires_in: lifetime,
        })
    }

    /// `credentials/extendTransaction`: renews a partly used, unexpired SAD into a new one with
    /// the same remaining count; the old SAD dies (spec §11.7, §13.8; Part II appendix 1: batch
    /// signing by renewing SAD tokens).
    ///
    /// * The old SAD must be the caller's and the credential's, not revoked, with signatures
    ///   left ([`SamError::InvalidSad`]) and unexpired, its transaction included
    ///   ([`SamError::SadExpired`]).
    /// * The renewal keeps the transaction's authorization time (`authorized_at`): the new SAD
    ///   expires at min(now + `sad_lifetime`, `authorized_at` + `max_transaction_life`), so
    ///   renewals never carry a transaction past its maximum life, and a renewal asked after
    ///   it is refused like an expired SAD.
    /// * SCAL 2 (the SAD is linked to the DTBS/R the signer authorized, Part II 3.2.1.4): the
    ///   request must name hashes ([`SamError::MissingHash`]), each still bound to the old SAD
    ///   (a multiset: [`SamError::HashNotRenewable`] otherwise — a new hash needs a new
    ///   activation); the new SAD binds exactly those, one signature each.
    /// * SCAL 1 (spec §13.8, §11.6: new hashes may be given): a hash-bound SAD keeps its unspent
    ///   hashes and adds the new ones; hashes sent for a count-only SAD bind the new SAD to
    ///   them. The bound hashes may not outnumber the signatures left
    ///   ([`SamError::TooManySignatures`]).
    /// * In ONE transaction: the old SAD is revoked (only one of two concurrent extensions can
    ///   win), re-read under that lock (a signature spent concurrently is not handed out
    ///   again), the new SAD stored and the renewal audited (`sad.extend`). A refusal found in
    ///   the transaction rolls it back, so the old SAD is untouched.
    pub fn extend_transaction(
        &self,
        caller: &Caller,
        credential: &CredentialId,
        sad: &str,
        hashes: Option<Vec<Vec<u8>>>,
    ) -> Result<IssuedSad, SamError> {
        const EVENT: AuditEvent = AuditEvent::SadExtend;
        let subject = credential.to_string();
        let old_hash = secret_hash(sad.as_bytes());
        let old_ref = sad_ref(&old_hash);
        let refuse =
            |e: SamError| self.refuse(EVENT, caller, &subject, e, json!({ "sad": old_ref }));
        let now = utc_now();

        let (found, old) = self
            .store
            .read(|c| Ok((c.credential(credential)?, c.sad(&old_hash)?)))?;
        let cred = self.usable(caller, credential, found).map_err(refuse)?;
        let new_hashes = non_empty(hashes);
        if let Some(h) = &new_hashes {
            check_digest_lengths(h).map_err(refuse)?;
        }
        // What the new SAD gets: (signatures, bound hashes, the transaction's authorization
        // time), or why there is none.
        let plan = |old: Option<&Sad>| -> Result<(Renewal, NaiveDateTime), SamError> {
            let old = check_sad(old, caller, credential, now, &self.policy)?;
            let renewal = match cred.scal {
                Scal::Two => {
                    let wanted = new_hashes.as_ref().ok_or(SamError::MissingHash)?;
                    // only what the signer authorized, still unspent, is renewed
                    match &old.hashes {
                        Some(bound) if covers(bound, wanted) => {}
                        _ => return Err(SamError::HashNotRenewable),
                    }
                    match i32::try_from(wanted.len()) {
                        Ok(n) if n <= old.remaining => (n, Some(wanted.clone())),
                        _ => return Err(SamError::TooManySignatures),
                    }
                }
                Scal::One => {
                    let bound = match (&old.hashes, &new_hashes) {
                        (None, None) => None,
                        (old_h, new_h) => {
                            let mut all = old_h.clone().unwrap_or_default();
                            all.extend(new_h.iter().flatten().cloned());
                            if i32::try_from(all.len()).map_or(true, |n| n > old.remaining) {
                                return Err(SamError::TooManySignatures);
                            }
                            Some(all)
                        }
                    };
                    (old.remaining, bound)
                }
            };
            Ok((renewal, old.authorized_at))
        };
        // Everything checked before the transaction, so an obvious refusal costs no write.
        plan(old.as_ref()).map_err(refuse)?;

        let sad = random_token(SAD_BYTES)?;
        let new_hash = secret_hash(sad.as_bytes());
        let renewed = self.write_or_rollback(|c| {
            if !super::still_enabled(c, credential)? {
                return Ok(Err(SamError::CredentialDisabled));
            }
            if !c.revoke_sad(&old_hash)? {
                return Ok(Err(SamError::InvalidSad));
            }
            // Re-read after the revocation, which locks the row: a signature spent since the
            // first read is not handed out again.
            let fresh = c.sad(&old_hash)?.map(|s| Sad {
                revoked: false,
                ..s
            });
            let ((remaining, bound), authorized_at) = match plan(fresh.as_ref()) {
                Ok(p) => p,
                Err(e) => return Ok(Err(e)),
            };
            let expires_at = match self.policy.sad_expiry(authorized_at, now) {
                Ok(t) => t,
                Err(e) => return Ok(Err(e)),
            };
            let expires_in = seconds_until(expires_at, now);
            let bound_count = bound.as_ref().map(Vec::len);
            c.insert_sad(&NewSad {
                sad_hash: new_hash.to_vec(),
                user_id: caller.user,
                credential_id: *credential,
                token_hash: caller.token_hash.to_vec(),
                remaining,
                expires_at,
                hashes: bound,
                authorized_at,
            })?;
            c.append_audit(&audit_event(
                EVENT,
                &caller.user_name,
                &subject,
                "success",
                json!({
                    "sad": old_ref,
                    "newSad": sad_ref(&new_hash),
                    "remaining": remaining,
                    "boundHashes": bound_count,
                    "addedHashes": new_hashes.as_ref().map_or(0, Vec::len),
                    "expiresIn": expires_in,
                }),
            ))?;
            Ok(Ok(expires_in))
        });
        match renewed {
            Ok(expires_in) => Ok(IssuedSad { sad, expires_in }),
            Err(e @ SamError::Storage(_)) => Err(e),
            Err(e) => Err(refuse(e)),
        }
    }

    /// `signatures/signHash`: signs `hashes` (raw digests, in order) with the credential's
    /// key, spending the SAD (Part II 3.2.1.1, Part III 6).
    ///
    /// Everything is validated before anything is spent: the credential (the caller's,
    /// enabled), the algorithm ([`resolve_mechanism`]), each digest's length, and the SAD
    /// (known, not revoked, this user's and this credential's, unexpired, signatures left; SCAL
    /// 2: every hash covered). Refusals are audited as `signature.refused` and burn nothing.
    ///
    /// Then ONE transaction reads the SAD once, under its lock, checks it and spends it
    /// (`spend_sad_checked`: SCAL 1 a count, hash-bound its hashes) and writes the
    /// `signature.sign_hash` record (credential, certificate serial, count, algorithm, SAD
    /// reference, digests). The HSM is asked only once that check and spend have run inside the
    /// write transaction (under its locks: no concurrent spend can pass the same check), and the
    /// signatures are released only once the transaction is committed (group-committed with
    /// concurrent requests, fsynced on SQLite), so no signature can leave without its durable
    /// record (Part I 7.1.4.3-4: write-ahead audit); a commit that fails drops them. A lost race
    /// is judged on the row as the winner left it and never signs. If the HSM fails, the
    /// reservation is given back (count and hashes), a `failure` record for the same SAD
    /// reference follows, and [`SamError::SigningFailed`] is returned (Part III 13).
    ///
    /// Cost per request: no read but the SAD's, inside one shared write transaction (the
    /// token and the credential come from the hot cache, [`crate::hot`]), one HSM batch; the
    /// certificate's validity period is parsed once per chain.
    ///
    /// Counted in `csc_signatures_total` by algorithm and outcome (crate::observe).
    ///
    /// BLOCKING: it is [`Sam::sign_hash_async`], this thread parked while it waits.
    pub fn sign_hash(
        &self,
        caller: &Caller,
        credential: &CredentialId,
        sad: &str,
        hashes: &[Vec<u8>],
        mechanism: &SignAlgoRequest,
    ) -> Result<Vec<Vec<u8>>, SamError> {
        // one implementation of the rules: the async one, this thread parked while it waits
        wait(self.sign_hash_async(caller, credential, sad, hashes, mechanism))
    }

    /// [`Sam::sign_hash`] for an async caller (the HTTP worker): the same checks in the same
    /// order, the same spend and audit records, but the thread is never blocked on the
    /// database: the credential comes from the hot cache ([`crate::hot`]; a miss, once per
    /// [`crate::hot::CACHE_BOUND`], reads one row), the SAD check, spend and write-ahead
    /// `signature.sign_hash` record are one job of the store's group commit
    /// ([`storage::Store::spend_grouped_staged`]: on PostgreSQL the batch locks and writes
    /// all its SADs at once), and a refusal's record is queued the same way.
    /// As soon as that job has passed and spent inside its batch transaction, the calling thread
    /// asks the HSM (Part II 3.2.1.1), with the same key-binding check, while the batch commits
    /// (SQLite; on PostgreSQL once the batch is settled, see `write_grouped_staged`);
    /// the signatures are returned only once the batch is durable (write-ahead audit, Part I
    /// 7.1.4.3-4), and dropped if it rolls back (then nothing was spent or recorded).
    ///
    /// If the future is dropped while the job is queued or committing (the client went away),
    /// the job still commits: the SAD is spent and its record written (the record is the
    /// authorisation to sign, as after a crash at that point), and no signature leaves.
    pub async fn sign_hash_async(
        &self,
        caller: &Caller,
        credential: &CredentialId,
        sad: &str,
        hashes: &[Vec<u8>],
        mechanism: &SignAlgoRequest,
    ) -> Result<Vec<Vec<u8>>, SamError> {
        let mut algorithm = None;
        let result = match self.plan_sign_hash(caller, credential, sad, hashes, mechanism) {
            Err(e) => Err(e),
            Ok(Err(e)) => Err(self
                .refuse_sign_hash(caller, credential, sad, hashes, mechanism, e)
                .await),
            Ok(Ok(plan)) => {
                algorithm = Some(crate::observe::algorithm_label(&plan.signing.mech));
                let (spent, durable) = self
                    .store
                    .spend_grouped_staged(&plan.signing.sad_hash, plan.spend)
                    .ran()
                    .await;
                match spent {
                    Err(e) => Err(e.into()),
                    Ok(Err(e)) => Err(self
                        .refuse_sign_hash(caller, credential, sad, hashes, mechanism, e)
                        .await),
                    // The SAD passed its check and is spent inside the batch transaction,
                    // under the write lock; the HSM signs while that batch commits, and the
                    // signatures leave only once it (with their record) is durable.
                    Ok(Ok(hash_bound)) => {
                        let signed = self.sign_planned(&plan.signing, hashes);
                        match (durable.settled().await, signed) {
                            // rolled back: no spend, no record, so no signature may leave
                            (Err(e), _) => Err(e.into()),
                            (Ok(()), Ok(signatures)) => Ok(signatures),
                            (Ok(()), Err(restore)) => self
                                .store
                                .write_grouped_async(restore.job(hash_bound, hashes))
                                .await
                                .map_err(SamError::from)
                                .and(Err(SamError::SigningFailed)),
                        }
                    }
                }
            }
        };
        crate::observe::count_signatures(algorithm, &result, hashes.len());
        result
    }

    /// Audits a signHash refusal as `signature.refused`, as [`Sam::refuse`] does, the record
    /// queued to the group commit and awaited.
    async fn refuse_sign_hash(
        &self,
        caller: &Caller,
        credential: &CredentialId,
        sad: &str,
        hashes: &[Vec<u8>],
        mechanism: &SignAlgoRequest,
        e: SamError,
    ) -> SamError {
        if matches!(e, SamError::Storage(_)) {
            return e;
        }
        let event = refusal_event(
            AuditEvent::SignatureRefused,
            caller,
            &credential.to_string(),
            &e,
            json!({
                "sad": sad_ref(&secret_hash(sad.as_bytes())),
                "count": hashes.len(),
                // client input: bounded, so a refusal cannot flood the log
                "signAlgo": mechanism.sign_algo.chars().take(64).collect::<String>(),
            }),
        );
        let name = event.event.clone();
        let written = self
            .store
            .write_grouped_async(move |_| Ok(((), vec![event])))
            .await;
        if let Err(failed) = written {
            crate::observe::count_audit_write_failure();
            tracing::error!(error = %failed, event = %name, "could not write an audit record");
        }
        // a refusal may come from a row that failed its integrity check (rare: blocking)
        if self.store.has_violations() {
            self.audit_integrity_violations();
        }
        e
    }

    /// Everything signHash checks before the SAD, and the job that checks and spends the SAD
    /// with its write-ahead record. `Ok(Err)` is a refusal, which the caller audits; `Err` is
    /// a failure (storage, a malformed stored key), not audited as a refusal.
    fn plan_sign_hash(
        &self,
        caller: &Caller,
        credential: &CredentialId,
        sad: &str,
        hashes: &[Vec<u8>],
        mechanism: &SignAlgoRequest,
    ) -> Result<Result<SignPlan, SamError>, SamError> {
        let subject = credential.to_string();
        let sad_hash = secret_hash(sad.as_bytes());
        let sad_reference = sad_ref(&sad_hash);
        let now = utc_now();

        // The credential from the hot cache (crate::hot: verified rows, current for this
        // process's changes, re-read after CACHE_BOUND); the SAD is read in the write below.
        let found = self.hot.credential(
            credential,
            || self.store.epoch(),
            || self.store.read(|c| c.credential(credential)),
        )?;
        let cred = match self.usable(caller, credential, found) {
            Ok(cred) => cred,
            Err(e) => return Ok(Err(e)),
        };
        if hashes.is_empty() {
            return Ok(Err(SamError::EmptyHashes));
        }
        let (spec, key_id) = key_of(&cred)?;
        let mech: SignMechanism = match resolve_mechanism(
            spec,
            &mechanism.sign_algo,
            mechanism.hash_algo.as_deref(),
            mechanism.sign_algo_params.as_deref(),
        ) {
            Ok(mech) => mech,
            Err(e) => return Ok(Err(e.into())),
        };
        let digest_len = mech.hash().digest_len();
        if hashes.iter().any(|h| h.len() != digest_len) {
            return Ok(Err(SamError::InvalidDigestLength));
        }
        let Ok(count) = i32::try_from(hashes.len()) else {
            return Ok(Err(SamError::TooManyHashes));
        };

        let base = json!({
            "sad": sad_reference,
            "count": count,
            "certificateSerial": cred.cert_serial,
            "signAlgo": mechanism.sign_algo,
            "hashAlgo": mech.hash().oid(),
            "mechanism": mech.to_string(),
            "digests": hashes.iter().map(hex::encode).collect::<Vec<_>>(),
        });
        let signed_record = audit_event(
            AuditEvent::SignatureSignHash,
            &caller.user_name,
            &subject,
            "success",
            base.clone(),
        );

        // Check, spend and audit in ONE transaction (group-committed with concurrent
        // requests): the SAD is read there (no read transaction of its own), checked (known,
        // not revoked, this caller's and this credential's, unexpired, signatures left; SCAL
        // 2: every hash covered), then one conditional update spends it and, only if it won,
        // the record is written with it (write-ahead: committed before a signature leaves, so
        // no signature can ever leave without its record). A refusal writes nothing; on a lost
        // race, say why from the row as it is now.
        let spend: SpendJob = {
            let hashes = hashes.to_vec();
            let (caller, credential, policy, scal) =
                (caller.clone(), *credential, self.policy.clone(), cred.scal);
            Box::new(move |c: &mut Conn<'_>| {
                let why_not = |s: Option<&Sad>| {
                    check_sad(s, &caller, &credential, now, &policy)
                        .and_then(|s| check_spend(s, scal, &hashes))
                        .err()
                };
                // ONE read of the SAD, under its lock: checked, then spent only if the check
                // passed and the spending rule applies (a hash-bound SAD spends its hashes)
                let spent = c.spend_sad_checked(&sad_hash, now, |current| {
                    if let Some(why) = why_not(current) {
                        return Err(why);
                    }
                    Ok(if current.is_some_and(|s| s.hashes.is_some()) {
                        SadSpend::Hashes(hashes.clone())
                    } else {
                        SadSpend::Count(count)
                    })
                })?;
                match spent {
                    Ok(Some(spend)) => Ok((
                        Ok(matches!(spend, SadSpend::Hashes(_))),
                        vec![signed_record],
                    )),
                    Err(why) => Ok((Err(why), Vec::new())),
                    // the check passed on the locked row but the spending rule refused it
                    Ok(None) => Ok((Err(SamError::InvalidSad), Vec::new())),
                }
            })
        };
        Ok(Ok(SignPlan {
            spend,
            signing: Signing {
                key_id,
                mech,
                subject,
                actor: caller.user_name.clone(),
                sad_hash,
                count,
                base,
            },
        }))
    }

    /// Signs once the spend is durable; on an HSM failure, says what gives the reservation
    /// back. The key must carry this credential's ID as its label (Part II 3.1.1.3: a
    /// re-pointed key id cannot sign).
    fn sign_planned(&self, s: &Signing, hashes: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, Box<Restore>> {
        self.hsm
            .sign_digests_for(&s.key_id, &s.subject, &s.mech, hashes)
            .map_err(|hsm_error| {
                tracing::error!(error = %hsm_error, credential = %s.subject, "the HSM failed to sign; giving the SAD reservation back");
                // The success record stands (it was the authorisation to sign); this one, for
                // the same SAD reference and digests, says no signature came of it.
                let mut detail = s.base.clone();
                if let Some(map) = detail.as_object_mut() {
                    map.insert("error".into(), json!(hsm_error.to_string()));
                }
                Box::new(Restore {
                    sad_hash: s.sad_hash,
                    count: s.count,
                    event: audit_event(
                        AuditEvent::SignatureSignHash,
                        &s.actor,
                        &s.subject,
                        "failure",
                        detail,
                    ),
                })
            })
    }
}

/// The job of signHash's group commit: the SAD checked and spent with its record; `Ok(true)`
/// when the SAD is hash-bound (SCAL 2), a refusal as `Err`.
type SpendJob =
    Box<dyn FnOnce(&mut Conn<'_>) -> Result<Grouped<Result<bool, SamError>>, StorageError> + Send>;

/// A signHash checked up to its SAD: the spend to run, then what to sign with.
struct SignPlan {
    spend: SpendJob,
    signing: Signing,
}

/// What signs once the spend is durable (and what to audit if the HSM fails).
struct Signing {
    key_id: KeyId,
    mech: SignMechanism,
    subject: String,
    actor: String,
    sad_hash: [u8; 32],
    count: i32,
    base: serde_json::Value,
}

/// The HSM failed after the spend: the reservation to give back and the `failure` record.
struct Restore {
    sad_hash: [u8; 32],
    count: i32,
    event: storage::NewAuditEvent,
}

impl Restore {
    /// The job giving the reservation back (count, and the hashes if the SAD is hash-bound)
    /// with its `failure` record, in one transaction.
    fn job(
        self,
        hash_bound: bool,
        hashes: &[Vec<u8>],
    ) -> impl FnOnce(&mut Conn<'_>) -> Result<Grouped<()>, StorageError> + Send + 'static {
        let spent: Vec<Vec<u8>> = if hash_bound {
            hashes.to_vec()
        } else {
            Vec::new()
        };
        move |c: &mut Conn<'_>| {
            c.restore_sad(&self.sad_hash, self.count, &spent)?;
            Ok(((), vec![self.event]))
        }
    }
}
