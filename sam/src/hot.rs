//! The hot path's cache of verified rows: service tokens with their user (what
//! [`crate::Sam::principal_of`] reads on every request) and credentials (what signHash reads),
//! so that a signHash reads no row but the SAD it spends (README "Benchmark").
//!
//! What is cached is exactly what a read returned after its row MAC verified (storage's
//! `admit`): a row that fails its MAC is never cached (it reads as absent, and absence is not
//! cached either), so the cache holds nothing an insider wrote. An entry is used only while
//!
//! * the store's change epoch ([`storage::Store::epoch`], read BEFORE the rows) is unchanged:
//!   every change of a user, credential or token row made by this process (token revocation,
//!   user disable, enable, lock and unlock, credential disable, enable, revoke, rekey, chain
//!   import, destroy) moves it, so on this instance a change takes effect at once; and
//! * it is younger than [`CACHE_BOUND`]: a change made by another process (the CLI on the
//!   same SQLite file, another instance sharing PostgreSQL) reaches this one within that bound,
//!   and so does an insider's edit of a row this process holds (it is then read, fails its MAC
//!   and is audited as `integrity.violation`).
//!
//! SADs are never cached: signHash reads and spends its SAD under lock in the write
//! transaction, so a SAD revoked anywhere (every disable, revoke, rekey and user disable
//! revokes the SADs concerned) never signs again, with no bound.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use storage::{Credential, CredentialId, Token, User};

/// How long a cached row is used before it is read again: the bound within which a change
/// made by another process (the CLI, another instance on PostgreSQL) takes effect here.
pub const CACHE_BOUND: Duration = Duration::from_millis(1000);

/// Entries kept per map before it starts over (bounds memory with many tokens).
const MAX_ENTRIES: usize = 65_536;

/// A cached value, the epoch it was read at and when.
struct Entry<T> {
    value: T,
    epoch: u64,
    read_at: Instant,
}

/// One map of cached rows.
struct Map<K, T>(Mutex<HashMap<K, Entry<T>>>);

impl<K: Eq + Hash, T: Clone> Map<K, T> {
    fn new() -> Self {
        Map(Mutex::new(HashMap::new()))
    }

    fn get(&self, key: &K, epoch: u64, now: Instant) -> Option<T> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let e = map.get(key)?;
        (e.epoch == epoch && now.saturating_duration_since(e.read_at) < CACHE_BOUND)
            .then(|| e.value.clone())
    }

    fn put(&self, key: K, value: T, epoch: u64, read_at: Instant) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(
            key,
            Entry {
                value,
                epoch,
                read_at,
            },
        );
    }
}

/// The cache, shared by the clones of a [`crate::Sam`].
pub(crate) struct HotCache {
    tokens: Map<[u8; 32], (Token, Option<User>)>,
    credentials: Map<CredentialId, Credential>,
}

impl Default for HotCache {
    fn default() -> Self {
        HotCache {
            tokens: Map::new(),
            credentials: Map::new(),
        }
    }
}

impl HotCache {
    /// The token (with its user) whose hash is `hash`, from the cache or from `read`, which
    /// runs at the epoch `epoch()` gives before it; only a row found is cached.
    pub(crate) fn token<E>(
        &self,
        hash: &[u8; 32],
        epoch: impl Fn() -> u64,
        read: impl FnOnce() -> Result<Option<(Token, Option<User>)>, E>,
    ) -> Result<Option<(Token, Option<User>)>, E> {
        cached(&self.tokens, hash, epoch, read)
    }

    /// The credential `id`, from the cache or from `read` (as [`HotCache::token`]).
    pub(crate) fn credential<E>(
        &self,
        id: &CredentialId,
        epoch: impl Fn() -> u64,
        read: impl FnOnce() -> Result<Option<Credential>, E>,
    ) -> Result<Option<Credential>, E> {
        cached(&self.credentials, id, epoch, read)
    }
}

fn cached<K: Eq + Hash + Clone, T: Clone, E>(
    map: &Map<K, T>,
    key: &K,
    epoch: impl Fn() -> u64,
    read: impl FnOnce() -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    let now = Instant::now();
    let at = epoch();
    if let Some(v) = map.get(key, at, now) {
        return Ok(Some(v));
    }
    let found = read()?;
    if let Some(v) = &found {
        map.put(key.clone(), v.clone(), at, now);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_lives_while_the_epoch_stands_and_within_the_bound() {
        let m: Map<u8, u32> = Map::new();
        let t0 = Instant::now();
        m.put(1, 7, 5, t0);
        assert_eq!(m.get(&1, 5, t0), Some(7));
        assert_eq!(m.get(&1, 6, t0), None, "a change moved the epoch");
        assert_eq!(m.get(&1, 5, t0 + CACHE_BOUND), None, "older than the bound");
        assert_eq!(m.get(&2, 5, t0), None);
    }

    #[test]
    fn absence_is_never_cached() {
        let m: Map<u8, u32> = Map::new();
        let none: Result<Option<u32>, ()> = cached(&m, &1, || 0, || Ok(None));
        assert_eq!(none, Ok(None));
        let read: Result<Option<u32>, ()> = cached(&m, &1, || 0, || Ok(Some(3)));
        assert_eq!(read, Ok(Some(3)));
        let hit: Result<Option<u32>, ()> = cached(&m, &1, || 0, || Err(()));
        assert_eq!(hit, Ok(Some(3)), "served from the cache, not read");
    }
}
