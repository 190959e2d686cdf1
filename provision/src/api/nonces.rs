//! Single-use nonces (spec 6.5): issued by `GET /api/nonce`, consumed by the first signed
//! request that names them, whatever its outcome. A nonce is refused once its age reaches the
//! TTL; at most `max` are outstanding, and at most `per_client` for one client address, the
//! oldest evicted first. Kept in memory: a restart forgets them (clients ask for a new one).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64ct::{Base64UrlUnpadded, Encoding as _};

/// `ATOMIXOS_NONCE_TTL`: seconds a nonce stays valid (300).
pub const TTL_ENV: &str = "ATOMIXOS_NONCE_TTL";
/// `ATOMIXOS_MAX_OUTSTANDING_NONCES` (1024).
pub const MAX_ENV: &str = "ATOMIXOS_MAX_OUTSTANDING_NONCES";
/// `ATOMIXOS_MAX_OUTSTANDING_NONCES_PER_CLIENT` (16).
pub const PER_CLIENT_ENV: &str = "ATOMIXOS_MAX_OUTSTANDING_NONCES_PER_CLIENT";
/// Random bytes in a nonce (43 URL-safe base64 characters, as the original's).
const NONCE_BYTES: usize = 32;

/// The limits of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceLimits {
    /// A nonce is refused once this old (0: every nonce is already expired).
    pub ttl: Duration,
    /// Outstanding nonces (at least 1).
    pub max: usize,
    /// Outstanding nonces of one client (at least 1, at most `max`).
    pub per_client: usize,
}

impl Default for NonceLimits {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            max: 1024,
            per_client: 16,
        }
    }
}

/// A nonce variable that is not a count.
#[derive(Debug, thiserror::Error)]
#[error("{variable}={value:?} is not a non-negative integer")]
pub struct NonceLimitError {
    /// The variable.
    pub variable: &'static str,
    /// Its value.
    pub value: String,
}

impl NonceLimits {
    /// The defaults, overridden by the variables `lookup` gives.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, NonceLimitError> {
        let read = |variable: &'static str, default: u64| match lookup(variable) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse::<u64>()
                .map_err(|_| NonceLimitError { variable, value }),
        };
        let defaults = Self::default();
        let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Ok(Self {
            ttl: Duration::from_secs(read(TTL_ENV, defaults.ttl.as_secs())?),
            max: count(read(MAX_ENV, defaults.max as u64)?),
            per_client: count(read(PER_CLIENT_ENV, defaults.per_client as u64)?),
        })
    }
}

#[derive(Debug)]
struct Issued {
    at: Instant,
    /// The issue order (ties of `at` cannot reorder evictions).
    seq: u64,
    client: String,
}

/// The outstanding nonces, indexed so that issuing and consuming cost O(log n) whatever the
/// number outstanding: `at` grows with `seq` (both are taken under the lock), so the expired
/// ones are the oldest, at the front of `order`.
#[derive(Debug, Default)]
struct State {
    issued: HashMap<String, Issued>,
    /// `seq` → nonce, oldest first.
    order: BTreeMap<u64, String>,
    /// Client → the `seq` of its outstanding nonces; a client with none has no entry.
    clients: HashMap<String, BTreeSet<u64>>,
    next: u64,
}

impl State {
    fn remove(&mut self, nonce: &str) -> Option<Issued> {
        let issued = self.issued.remove(nonce)?;
        self.order.remove(&issued.seq);
        if let Some(seqs) = self.clients.get_mut(&issued.client) {
            seqs.remove(&issued.seq);
            if seqs.is_empty() {
                self.clients.remove(&issued.client);
            }
        }
        Some(issued)
    }

    /// Removes the nonce issued as `seq`; whether there was one.
    fn remove_seq(&mut self, seq: u64) -> bool {
        match self.order.remove(&seq) {
            Some(nonce) => self.remove(&nonce).is_some(),
            None => false,
        }
    }

    /// Removes the nonces whose age reached `ttl`.
    fn prune(&mut self, now: Instant, ttl: Duration) {
        while let Some((&seq, nonce)) = self.order.first_key_value() {
            if self
                .issued
                .get(nonce)
                .is_some_and(|i| now.duration_since(i.at) < ttl)
            {
                break;
            }
            self.remove_seq(seq);
        }
    }

    /// The oldest outstanding nonce of `client` if it has at least `limit`.
    fn client_oldest(&self, client: &str, limit: usize) -> Option<u64> {
        let seqs = self.clients.get(client)?;
        seqs.first().copied().filter(|_| seqs.len() >= limit)
    }
}

/// The outstanding nonces.
#[derive(Debug)]
pub struct Nonces {
    limits: NonceLimits,
    state: Mutex<State>,
}

/// The system's random source failed.
#[derive(Debug, thiserror::Error)]
#[error("no random bytes for a nonce: {0}")]
pub struct RandomError(pub String);

impl Nonces {
    /// An empty store.
    pub fn new(limits: NonceLimits) -> Self {
        Self {
            limits,
            state: Mutex::new(State::default()),
        }
    }

    /// Issues a nonce to `client` (its address), evicting that client's oldest beyond its
    /// limit and then the oldest of all beyond the global one.
    pub fn issue(&self, client: &str) -> Result<String, RandomError> {
        let mut bytes = [0u8; NONCE_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| RandomError(e.to_string()))?;
        let nonce = Base64UrlUnpadded::encode_string(&bytes);
        let max = self.limits.max.max(1);
        let per_client = self.limits.per_client.min(max).max(1);
        let mut state = self.lock();
        let now = Instant::now();
        state.prune(now, self.limits.ttl);
        while let Some(oldest) = state.client_oldest(client, per_client) {
            if !state.remove_seq(oldest) {
                break;
            }
        }
        while state.issued.len() >= max {
            let Some(&oldest) = state.order.keys().next() else {
                break;
            };
            if !state.remove_seq(oldest) {
                break;
            }
        }
        let seq = state.next;
        state.next += 1;
        state.order.insert(seq, nonce.clone());
        state
            .clients
            .entry(client.to_owned())
            .or_default()
            .insert(seq);
        state.issued.insert(
            nonce.clone(),
            Issued {
                at: now,
                seq,
                client: client.to_owned(),
            },
        );
        Ok(nonce)
    }

    /// Consumes `nonce`: whether it was outstanding and younger than the TTL. It is gone
    /// either way.
    pub fn consume(&self, nonce: &str) -> bool {
        let mut state = self.lock();
        let now = Instant::now();
        state.prune(now, self.limits.ttl);
        state
            .remove(nonce)
            .is_some_and(|i| now.duration_since(i.at) < self.limits.ttl)
    }

    /// How many are outstanding (expired ones included until the next issue or consume).
    pub fn outstanding(&self) -> usize {
        self.lock().issued.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The indexes stay consistent whatever panicked while they were held: nothing in
        // `State` panics between its updates.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(ttl: u64, max: usize, per_client: usize) -> Nonces {
        Nonces::new(NonceLimits {
            ttl: Duration::from_secs(ttl),
            max,
            per_client,
        })
    }

    #[test]
    fn a_nonce_is_43_url_safe_characters_and_single_use() {
        let nonces = store(300, 8, 8);
        let n = nonces.issue("a").unwrap();
        assert_eq!(n.len(), 43);
        assert!(
            n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert!(!nonces.consume("unknown"));
        assert!(nonces.consume(&n));
        assert!(!nonces.consume(&n));
    }

    #[test]
    fn ttl_zero_means_already_expired() {
        let nonces = store(0, 8, 8);
        let n = nonces.issue("a").unwrap();
        assert!(!nonces.consume(&n));
    }

    #[test]
    fn expired_nonces_are_pruned_oldest_first() {
        let nonces = Nonces::new(NonceLimits {
            ttl: Duration::from_millis(200),
            max: 8,
            per_client: 8,
        });
        let old = nonces.issue("a").unwrap();
        std::thread::sleep(Duration::from_millis(250));
        let young = nonces.issue("b").unwrap();
        assert_eq!(nonces.outstanding(), 1);
        assert!(nonces.consume(&young));
        assert!(!nonces.consume(&old));
    }

    #[test]
    fn the_global_limit_evicts_the_oldest_and_zero_means_one() {
        let nonces = store(300, 2, 16);
        let first = nonces.issue("a").unwrap();
        let second = nonces.issue("b").unwrap();
        let third = nonces.issue("c").unwrap();
        assert_eq!(nonces.outstanding(), 2);
        assert!(!nonces.consume(&first));
        assert!(nonces.consume(&second));
        assert!(nonces.consume(&third));
        let one = store(300, 0, 0);
        let a = one.issue("a").unwrap();
        let b = one.issue("a").unwrap();
        assert!(!one.consume(&a));
        assert!(one.consume(&b));
    }

    #[test]
    fn the_per_client_limit_evicts_only_that_clients_oldest() {
        let nonces = store(300, 100, 2);
        let other = nonces.issue("10.0.0.2").unwrap();
        let a1 = nonces.issue("10.0.0.1").unwrap();
        let a2 = nonces.issue("10.0.0.1").unwrap();
        let a3 = nonces.issue("10.0.0.1").unwrap();
        assert!(!nonces.consume(&a1));
        assert!(nonces.consume(&a2));
        assert!(nonces.consume(&a3));
        assert!(nonces.consume(&other));
    }

    /// The store as a plain list, evicting by scanning it (what the store did before it was
    /// indexed): issuing and consuming in any order must give the same answers.
    #[test]
    fn the_indexes_evict_as_a_scan_of_every_nonce_would() {
        let nonces = store(300, 8, 3);
        let mut model: Vec<(String, &str)> = Vec::new();
        let clients = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"];
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let client = clients[(x >> 16) as usize % clients.len()];
            if (x >> 8).is_multiple_of(3) && !model.is_empty() {
                // Consume one, or an unknown one.
                let i = (x >> 20) as usize % (model.len() + 1);
                let nonce = model.get(i).map_or("unknown".to_owned(), |m| m.0.clone());
                let expected = model.iter().any(|m| m.0 == nonce);
                model.retain(|m| m.0 != nonce);
                assert_eq!(nonces.consume(&nonce), expected);
            } else {
                let nonce = nonces.issue(client).unwrap();
                let theirs: Vec<usize> =
                    (0..model.len()).filter(|&i| model[i].1 == client).collect();
                if theirs.len() >= 3 {
                    model.remove(theirs[0]);
                }
                if model.len() >= 8 {
                    model.remove(0);
                }
                model.push((nonce, client));
            }
            assert_eq!(nonces.outstanding(), model.len());
        }
        for (nonce, _) in model {
            assert!(nonces.consume(&nonce));
        }
        assert_eq!(nonces.outstanding(), 0);
        let state = nonces.lock();
        assert!(state.order.is_empty() && state.clients.is_empty());
    }

    #[test]
    fn limits_come_from_the_environment() {
        let env = |k: &str| match k {
            TTL_ENV => Some("0".to_owned()),
            PER_CLIENT_ENV => Some(" 3 ".to_owned()),
            _ => None,
        };
        let limits = NonceLimits::from_env(env).unwrap();
        assert_eq!(
            (limits.ttl, limits.max, limits.per_client),
            (Duration::ZERO, 1024, 3)
        );
        let bad = NonceLimits::from_env(|k| (k == MAX_ENV).then(|| "many".to_owned()));
        assert_eq!(
            bad.unwrap_err().to_string(),
            "ATOMIXOS_MAX_OUTSTANDING_NONCES=\"many\" is not a non-negative integer"
        );
    }
}
