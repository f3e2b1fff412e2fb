//! Leases: one owner per name across the cluster (a room's hub owner, a room's program node,
//! a slot timer that must fire once), held for a TTL and renewed by the holder.
//!
//! Redis keys: `venue:lease:{name}` holds the holder's token (node id, `/`, 16 random hex
//! digits: unique per acquisition) with a TTL; `venue:lease:{name}:fence` is a counter.
//! - [`Lease::acquire`]: a Lua script does `SET key token NX PX ttl` and, when that succeeds,
//!   `INCR` of the fence counter, atomically: the **fencing token** ([`Lease::fence`]) grows
//!   with every acquisition, so a store or a peer can refuse the writes of an older holder
//!   that has not noticed yet that it lost the lease (a long GC-like pause, a split).
//! - [`Lease::renew`] / [`Lease::release`]: Lua check-and-extend / check-and-delete: only the
//!   holder's token renews or releases; after an expiry the old holder's renew returns
//!   `false` and does nothing.
//! - When the holder stops renewing (crash), the key expires after the TTL and another
//!   contender's next [`Lease::acquire`] wins.
//!
//! A holder renews well within the TTL (every TTL/3 is usual, [`Lease::keep`] does that) and
//! must stop acting as owner when a renewal fails or returns false.

use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::cluster::NodeId;

const ACQUIRE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return false
";

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The Redis key of lease `name`.
pub fn lease_key(name: &str) -> String {
    format!("venue:lease:{name}")
}

/// A held lease. Dropping it does not release it (it expires): call [`Lease::release`].
#[derive(Clone)]
pub struct Lease {
    conn: ConnectionManager,
    name: String,
    token: String,
    ttl: Duration,
    fence: u64,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("name", &self.name)
            .field("holder", &self.token)
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl Lease {
    /// Tries to take lease `name` (e.g. `hub:main`) for `node`, for `ttl`. `Ok(None)`: someone
    /// holds it. Errors: Redis.
    pub async fn acquire(
        conn: &ConnectionManager,
        name: &str,
        node: &NodeId,
        ttl: Duration,
    ) -> Result<Option<Lease>, redis::RedisError> {
        let random: [u8; 8] = rand::random();
        let token = format!("{node}/{}", hex::encode(random));
        let key = lease_key(name);
        let mut c = conn.clone();
        let fence: Option<u64> = Script::new(ACQUIRE)
            .key(&key)
            .key(format!("{key}:fence"))
            .arg(&token)
            .arg(ttl_ms(ttl))
            .invoke_async(&mut c)
            .await?;
        Ok(fence.map(|fence| Lease {
            conn: conn.clone(),
            name: name.to_owned(),
            token,
            ttl,
            fence,
        }))
    }

    /// Who holds lease `name` now: the holder's token (`node/random`), `None` when free.
    /// Errors: Redis.
    pub async fn holder(
        conn: &ConnectionManager,
        name: &str,
    ) -> Result<Option<String>, redis::RedisError> {
        let mut c = conn.clone();
        redis::cmd("GET")
            .arg(lease_key(name))
            .query_async(&mut c)
            .await
    }

    /// The lease's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fencing token: larger for every later acquisition of this name.
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// This holder's token, as [`Lease::holder`] shows it.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Extends the lease to a full TTL from now. `Ok(false)`: it is no longer ours (expired,
    /// maybe taken over): stop acting as owner. Errors: Redis (ownership unknown: stop too).
    pub async fn renew(&self) -> Result<bool, redis::RedisError> {
        let mut c = self.conn.clone();
        let n: i64 = Script::new(RENEW)
            .key(lease_key(&self.name))
            .arg(&self.token)
            .arg(ttl_ms(self.ttl))
            .invoke_async(&mut c)
            .await?;
        Ok(n == 1)
    }

    /// Gives the lease up now if still ours; returns whether it was. Errors: Redis.
    pub async fn release(&self) -> Result<bool, redis::RedisError> {
        let mut c = self.conn.clone();
        let n: i64 = Script::new(RELEASE)
            .key(lease_key(&self.name))
            .arg(&self.token)
            .invoke_async(&mut c)
            .await?;
        Ok(n == 1)
    }

    /// Renews the lease every TTL/3 in a task until it is lost (renew false, or errors for a
    /// whole TTL). The receiver turns `false` when it is lost; abort the task to stop renewing.
    pub fn keep(self) -> (watch::Receiver<bool>, JoinHandle<()>) {
        let (tx, rx) = watch::channel(true);
        let task = tokio::spawn(async move {
            let period = (self.ttl / 3).max(Duration::from_millis(10));
            let mut last_ok = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(period).await;
                match self.renew().await {
                    Ok(true) => last_ok = tokio::time::Instant::now(),
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!(lease = %self.name, error = %e, "lease renewal failed");
                        if last_ok.elapsed() >= self.ttl {
                            break;
                        }
                    }
                }
            }
            tracing::info!(lease = %self.name, "lease lost");
            let _ = tx.send(false);
        });
        (rx, task)
    }
}
