//! The records that let several Miroir hosts share one Redis store (docs/architecture.md
//! #several-hosts, decisions 024–026). All keys carry the store's prefix (`miroir:`):
//!
//! | key                   | type       | content                                                  |
//! |-----------------------|------------|----------------------------------------------------------|
//! | `{p}leader`           | hash       | `holder`, `token`, `address`; `PX` expiry = lease TTL    |
//! | `{p}leader:token`     | string     | fencing counter, `INCR`ed on every new acquisition       |
//! | `{p}meta:generation`  | string     | metadata generation, `INCR`ed by the leader's publishes  |
//! | `{p}hosts`            | sorted set | host id, score = heartbeat expiry (Redis `TIME`, ms)     |
//! | `{p}hosts:applied`    | hash       | host id → metadata generation its data plane serves      |
//! | `{p}hosts:epoch`      | hash       | host id → routing epoch its data planes all serve        |
//!
//! Everything that decides is a Lua script, so it is atomic and reads one clock (Redis'):
//! - **Lease**: acquired when vacant (the token counter is incremented then, never on a
//!   renewal), renewed only by its holder. A holder that loses it learns so at its next renewal.
//! - **Fencing**: a leader-only write passes the token it got; the script compares it with the
//!   lease's current token and refuses (changes nothing) when they differ or the lease expired.
//!   A leader paused past its TTL (GC, VM stall, partition) therefore cannot overwrite what its
//!   successor wrote, whatever its local clock believes.
//! - **Host heartbeats**: scored by expiry on Redis' clock, so hosts with skewed clocks agree on
//!   who is live; a host silent past the TTL drops out of [`RedisTaskStore::live_hosts`].

use super::redis_store::RedisTaskStore;
use super::StoreError;
use redis::Script;
use std::time::Duration;

/// KEYS: leader, token counter. ARGV: holder, ttl ms, address.
/// Returns {acquired (0|1), token, holder, address} as strings ("" when vacant).
const ACQUIRE_LUA: &str = r#"
local holder = redis.call('HGET', KEYS[1], 'holder')
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {'1', redis.call('HGET', KEYS[1], 'token'), ARGV[1], redis.call('HGET', KEYS[1], 'address')}
end
if not holder then
  local t = redis.call('INCR', KEYS[2])
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', t, 'address', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {'1', tostring(t), ARGV[1], ARGV[3]}
end
return {'0', redis.call('HGET', KEYS[1], 'token') or '0', holder, redis.call('HGET', KEYS[1], 'address') or ''}
"#;

/// KEYS: leader. ARGV: holder. 1 released, 0 not held by this holder.
const RELEASE_LUA: &str = r#"
if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#;

/// KEYS: leader, meta data, meta keys. ARGV: token, key, has_new (0|1), new.
/// 1 written, 0 fenced off (the token is not the current lease's).
const FENCED_META_LUA: &str = r#"
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
  redis.call('ZADD', KEYS[3], 0, ARGV[2])
else
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('ZREM', KEYS[3], ARGV[2])
end
return 1
"#;

/// KEYS: leader, generation. ARGV: token. The new generation, or -1 when fenced off.
const BUMP_LUA: &str = r#"
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return -1 end
return redis.call('INCR', KEYS[2])
"#;

/// KEYS: hosts, applied, epoch. ARGV: host, generation, ttl ms, epoch. Records the heartbeat
/// and forgets hosts whose heartbeat expired.
const HEARTBEAT_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #dead > 0 then
  redis.call('ZREM', KEYS[1], unpack(dead))
  redis.call('HDEL', KEYS[2], unpack(dead))
  redis.call('HDEL', KEYS[3], unpack(dead))
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
return 1
"#;

/// KEYS: hosts, applied, epoch. Flat host, applied generation, epoch… of hosts whose
/// heartbeat is running.
const LIVE_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
if #ids == 0 then return {} end
local gens = redis.call('HMGET', KEYS[2], unpack(ids))
local epochs = redis.call('HMGET', KEYS[3], unpack(ids))
local out = {}
for i = 1, #ids do
  out[3 * i - 2] = ids[i]
  out[3 * i - 1] = gens[i] or '0'
  out[3 * i] = epochs[i] or '0'
end
return out
"#;

/// What one lease attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    /// This holder holds the lease now (acquired or renewed).
    pub held: bool,
    /// The current lease's fencing token (0 when vacant).
    pub token: u64,
    /// The current holder ("" when vacant).
    pub holder: String,
    /// The current holder's advertised admin address ("" when vacant).
    pub address: String,
}

/// A host's heartbeat as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveHost {
    pub host: String,
    /// The metadata generation its data plane serves.
    pub applied: u64,
    /// The routing epoch every live data plane of that host serves.
    pub epoch: u64,
}

impl RedisTaskStore {
    fn shared_key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// Acquires (when vacant) or renews (when `holder` holds it) the leader lease for `ttl`,
    /// advertising `address`; reports who holds it either way.
    pub async fn leader_lease(
        &self,
        holder: &str,
        address: &str,
        ttl: Duration,
    ) -> Result<LeaseState, StoreError> {
        let ttl_ms = (ttl.as_millis() as u64).max(1);
        let r: Vec<String> = Script::new(ACQUIRE_LUA)
            .key(self.shared_key("leader"))
            .key(self.shared_key("leader:token"))
            .arg(holder)
            .arg(ttl_ms)
            .arg(address)
            .invoke_async(&mut self.conn())
            .await?;
        let field = |i: usize| r.get(i).cloned().unwrap_or_default();
        Ok(LeaseState {
            held: field(0) == "1",
            token: field(1).parse().unwrap_or(0),
            holder: field(2),
            address: field(3),
        })
    }

    /// Gives the lease up if `holder` holds it (a clean shutdown: the next host need not wait
    /// for the TTL).
    pub async fn release_leader_lease(&self, holder: &str) -> Result<bool, StoreError> {
        let r: i64 = Script::new(RELEASE_LUA)
            .key(self.shared_key("leader"))
            .arg(holder)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(r == 1)
    }

    /// Writes (`Some`) or deletes (`None`) a metadata key only if `token` is the current
    /// lease's fencing token. `false` = fenced off, nothing written.
    pub async fn fenced_meta(
        &self,
        token: u64,
        key: &str,
        value: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        super::codec::check_meta_key(key)?;
        let r: i64 = Script::new(FENCED_META_LUA)
            .key(self.shared_key("leader"))
            .key(self.shared_key("meta:data"))
            .key(self.shared_key("meta:keys"))
            .arg(token)
            .arg(key)
            .arg(if value.is_some() { "1" } else { "0" })
            .arg(value.unwrap_or_default())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(r == 1)
    }

    /// Increments the metadata generation if `token` is the current lease's fencing token;
    /// `None` = fenced off.
    pub async fn bump_generation(&self, token: u64) -> Result<Option<u64>, StoreError> {
        let r: i64 = Script::new(BUMP_LUA)
            .key(self.shared_key("leader"))
            .key(self.shared_key("meta:generation"))
            .arg(token)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(u64::try_from(r).ok())
    }

    /// The current metadata generation (0 before the first publish).
    pub async fn generation(&self) -> Result<u64, StoreError> {
        let g: Option<u64> = redis::cmd("GET")
            .arg(self.shared_key("meta:generation"))
            .query_async(&mut self.conn())
            .await?;
        Ok(g.unwrap_or(0))
    }

    /// Records that `host` is alive for `ttl` and serves metadata generation `applied` and
    /// routing epoch `epoch`.
    pub async fn host_heartbeat(
        &self,
        host: &str,
        applied: u64,
        epoch: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let _: i64 = Script::new(HEARTBEAT_LUA)
            .key(self.shared_key("hosts"))
            .key(self.shared_key("hosts:applied"))
            .key(self.shared_key("hosts:epoch"))
            .arg(host)
            .arg(applied)
            .arg((ttl.as_millis() as u64).max(1))
            .arg(epoch)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Hosts whose heartbeat has not expired, with the generation each serves.
    pub async fn live_hosts(&self) -> Result<Vec<LiveHost>, StoreError> {
        let flat: Vec<String> = Script::new(LIVE_LUA)
            .key(self.shared_key("hosts"))
            .key(self.shared_key("hosts:applied"))
            .key(self.shared_key("hosts:epoch"))
            .invoke_async(&mut self.conn())
            .await?;
        let num = |c: &[String], i: usize| c.get(i).and_then(|g| g.parse().ok()).unwrap_or(0);
        Ok(flat
            .chunks(3)
            .map(|c| LiveHost {
                host: c[0].clone(),
                applied: num(c, 1),
                epoch: num(c, 2),
            })
            .collect())
    }
}
