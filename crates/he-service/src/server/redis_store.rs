//! The Redis store (`he serve --store redis://...`): jobs, payloads,
//! results, the work queue and every counter that a limit is checked
//! against, in one Redis shared by API nodes and workers.
//!
//! Keys, all under the prefix (`he:` by default):
//!
//! - `job:{id}`: the job record (a hash: owner, state, labels, sizes,
//!   times, error, attempts, worker, the cancel flag);
//! - `payload:{id}`: the upload, until a worker has filtered it;
//! - `result:{id}`: the result, until it expires or is deleted;
//! - `work`: the queue, a stream read by the consumer group `workers`;
//!   an entry names its job;
//! - `count`: server-wide counters (jobs stored, jobs in flight, bytes
//!   stored, bytes in flight);
//! - `usage:{token}`: what one token holds (jobs in flight, jobs, bytes);
//! - `compute:{token}`: the compute admitted over the last hour;
//! - `expiry`: finished jobs by the time they expire, for the sweeper;
//! - `instance`: the store's instance id, which job statuses and `404`s
//!   carry (see [`RedisStore::instance`]);
//! - a tiled job's manifest, tiles and results (`redis_tile_scripts.rs`);
//!   each uploaded tile is a unit of its own in `work`.
//!
//! Every change that moves a counter is one Lua script, so that limits
//! hold across nodes and a job's accounting is released exactly once.
//! A count given back is written `0 - n`, never `-n`: for 0 Lua writes
//! `-0`, which `HINCRBY` refuses (a failed job, holding no result, could
//! then be neither deleted nor swept).
//! The scripts build key names from the prefix: they need a single
//! Redis (or a primary with replicas), not a Redis Cluster.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script};
use tokio::sync::OnceCell;

use super::config::{Config, RedisSettings};
use super::error::{Error, Result};
use super::jobs::{JobInfo, new_id, new_instance};
use super::quota::Usage;
use super::redis_tile_scripts::{
    CREATE_TILED, FETCH_TILE, FINISH_TILE, QUEUE_TILE, REMOVE_TILED, RESERVE_TILE, START_TILE,
    TILE_FN, UNRESERVE_TILE,
};
use super::tiles;
use super::tokens::{Caller, TokenFile};
use crate::wire::{JobState, JobStatus, TileState, TilesStatus};

/// The consumer group of the workers on the queue.
pub(super) const GROUP: &str = "workers";

/// Longest a command may take before the store counts as unreachable.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a worker's read of the queue blocks (`XREADGROUP BLOCK`).
pub(super) const READ_BLOCK: Duration = Duration::from_secs(1);
/// How often a long poll (`?wait=S`) looks at the job record.
pub(super) const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Keys outlive the sweeper's release by this much (a backstop: the
/// sweeper removes them first and gives their bytes back).
const TTL_MARGIN: Duration = Duration::from_secs(300);
/// Attempts to give back an unused reservation (about 2 minutes in all).
const RELEASE_ATTEMPTS: usize = 35;
/// The window the compute quota counts over.
const HOUR_MS: u64 = 3_600_000;

/// Milliseconds since the Unix epoch.
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Checks a new job against the token's quota and the server's limits
/// and reserves its place and bytes, or says which limit refused it.
const RESERVE: &str = r"
local p, owner, bytes = ARGV[1], ARGV[2], tonumber(ARGV[3])
local u, c = p..'usage:'..owner, p..'count'
local function n(k, f) return tonumber(redis.call('HGET', k, f) or '0') end
local uf, uj, ub = n(u, 'in_flight'), n(u, 'jobs'), n(u, 'bytes')
if uf >= tonumber(ARGV[4]) or uj >= tonumber(ARGV[5]) or ub + bytes > tonumber(ARGV[6]) then
  return {1, uf, uj, ub}
end
local cj, cf, cs, ci = n(c, 'jobs'), n(c, 'inflight_jobs'), n(c, 'stored_bytes'), n(c, 'inflight_bytes')
if cj >= tonumber(ARGV[7]) then return {2, cj, 0, 0} end
if cs >= tonumber(ARGV[8]) then return {3, cs, 0, 0} end
if ci + bytes > tonumber(ARGV[9]) then return {4, ci, 0, 0} end
if cf >= tonumber(ARGV[10]) then return {5, cf, 0, 0} end
redis.call('HINCRBY', u, 'in_flight', 1)
redis.call('HINCRBY', u, 'jobs', 1)
redis.call('HINCRBY', u, 'bytes', bytes)
redis.call('HINCRBY', c, 'jobs', 1)
redis.call('HINCRBY', c, 'inflight_jobs', 1)
redis.call('HINCRBY', c, 'inflight_bytes', bytes)
return {0, 0, 0, 0}
";

/// Moves a token's and the server's counters (a reservation given back
/// or shrunk): ARGV prefix, owner, then the changes of in_flight, jobs,
/// bytes (token) and jobs, inflight_jobs, inflight_bytes (server).
const ADJUST: &str = r"
local p, owner = ARGV[1], ARGV[2]
local u, c = p..'usage:'..owner, p..'count'
redis.call('HINCRBY', u, 'in_flight', ARGV[3])
redis.call('HINCRBY', u, 'jobs', ARGV[4])
redis.call('HINCRBY', u, 'bytes', ARGV[5])
redis.call('HINCRBY', c, 'jobs', ARGV[6])
redis.call('HINCRBY', c, 'inflight_jobs', ARGV[7])
redis.call('HINCRBY', c, 'inflight_bytes', ARGV[8])
return 1
";

/// Admits compute over the last hour, or returns what the hour holds
/// (ages in ms and units) for the refusal.
const CHARGE: &str = r"
local z, units, quota, now = ARGV[1]..'compute:'..ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', z, '-inf', now - 3600000)
local all = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
local used, out = 0, {}
for i = 1, #all, 2 do
  local u = tonumber(string.match(all[i], '^(%d+):'))
  used = used + u
  table.insert(out, now - tonumber(all[i + 1]))
  table.insert(out, u)
end
if used + units > quota then return out end
redis.call('ZADD', z, now, ARGV[3]..':'..ARGV[6])
redis.call('PEXPIRE', z, 3600000)
return 0
";

/// The store's instance id: KEYS[1] if set, else ARGV[1], kept there.
const INSTANCE: &str = r"
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
";

/// Creates a job record and its payload and queues its unit of work:
/// ARGV prefix, id, payload, then the record's fields and values.
const CREATE: &str = r"
local p, id = ARGV[1], ARGV[2]
redis.call('HSET', p..'job:'..id, unpack(ARGV, 4))
redis.call('SET', p..'payload:'..id, ARGV[3])
redis.call('XADD', p..'work', '*', 'job', id)
return 1
";

/// A worker takes a job: {0} gone, {2} already finished, {3} payload
/// lost, or {1, payload, created_ms, cancel}.
const START: &str = r"
local p, id = ARGV[1], ARGV[2]
local k = p..'job:'..id
local st = redis.call('HGET', k, 'state')
if not st then return {0} end
if st ~= 'queued' and st ~= 'running' then return {2} end
local payload = redis.call('GET', p..'payload:'..id)
if not payload then return {3} end
redis.call('HSET', k, 'state', 'running', 'worker', ARGV[3], 'started_ms', ARGV[4])
redis.call('HINCRBY', k, 'attempts', 1)
return {1, payload, redis.call('HGET', k, 'created_ms') or '0', redis.call('HGET', k, 'cancel') or '0'}
";

/// Stores a job's outcome once: ARGV prefix, id, ok (1/0), the result or
/// the error, now, retention ms, key TTL ms. Returns 1 stored, 2 the job
/// was deleted meanwhile (now gone), 0 nothing to do (gone, or finished
/// by another worker already: a second write changes nothing).
const FINISH: &str = r"
local p, id = ARGV[1], ARGV[2]
local k = p..'job:'..id
local st = redis.call('HGET', k, 'state')
if st ~= 'queued' and st ~= 'running' then return 0 end
local owner = redis.call('HGET', k, 'owner')
local pb = tonumber(redis.call('HGET', k, 'payload_bytes') or '0')
local u, c = p..'usage:'..owner, p..'count'
redis.call('HINCRBY', u, 'in_flight', -1)
redis.call('HINCRBY', u, 'bytes', 0 - pb)
redis.call('HINCRBY', c, 'inflight_jobs', -1)
redis.call('HINCRBY', c, 'inflight_bytes', 0 - pb)
redis.call('DEL', p..'payload:'..id)
if redis.call('HGET', k, 'cancel') == '1' then
  redis.call('DEL', k)
  redis.call('HINCRBY', u, 'jobs', -1)
  redis.call('HINCRBY', c, 'jobs', -1)
  return 2
end
local now, ret, ttl = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local rb = 0
if ARGV[3] == '1' then
  rb = #ARGV[4]
  redis.call('SET', p..'result:'..id, ARGV[4], 'PX', ttl)
  redis.call('HSET', k, 'state', 'done', 'result_bytes', rb)
else
  redis.call('HSET', k, 'state', 'failed', 'error', ARGV[4])
end
redis.call('HSET', k, 'finished_ms', now, 'payload_bytes', 0)
redis.call('PEXPIRE', k, ttl)
redis.call('HINCRBY', u, 'bytes', rb)
redis.call('HINCRBY', c, 'stored_bytes', rb)
redis.call('ZADD', p..'expiry', now + ret, id)
return 1
";

/// Releases a finished job and its result (`remove(id)` in the scripts
/// below), or, from DELETE, cancels a running one: ARGV prefix, id,
/// owner ('' for the sweeper), now ('' for DELETE). Returns 0 not found
/// (or not yet expired, for the sweeper), 1 removed, 2 cancelling. A
/// tiled job's branch is `REMOVE_TILED`, spliced in.
const REMOVE_FN: &str = r"
local function remove(p, id, owner, now)
  local k = p..'job:'..id
  local st = redis.call('HGET', k, 'state')
  if not st then
    redis.call('ZREM', p..'expiry', id)
    return 0
  end
  local o = redis.call('HGET', k, 'owner')
  if owner ~= '' and o ~= owner then return 0 end
  local u, c = p..'usage:'..o, p..'count'
  if st == 'tiled' then
{REMOVE_TILED}
  end
  if st == 'running' then
    if now ~= '' then return 0 end
    redis.call('HSET', k, 'cancel', 1)
    return 2
  end
  if st == 'queued' then
    if now ~= '' then return 0 end
    local pb = tonumber(redis.call('HGET', k, 'payload_bytes') or '0')
    redis.call('HINCRBY', u, 'in_flight', -1)
    redis.call('HINCRBY', u, 'bytes', 0 - pb)
    redis.call('HINCRBY', c, 'inflight_jobs', -1)
    redis.call('HINCRBY', c, 'inflight_bytes', 0 - pb)
    redis.call('DEL', p..'payload:'..id)
  else
    if now ~= '' then
      local due = redis.call('ZSCORE', p..'expiry', id)
      if due and tonumber(due) > tonumber(now) then return 0 end
    end
    local rb = tonumber(redis.call('HGET', k, 'result_bytes') or '0')
    redis.call('HINCRBY', u, 'bytes', 0 - rb)
    redis.call('HINCRBY', c, 'stored_bytes', 0 - rb)
    redis.call('DEL', p..'result:'..id)
  end
  redis.call('HINCRBY', u, 'jobs', -1)
  redis.call('HINCRBY', c, 'jobs', -1)
  redis.call('DEL', k)
  redis.call('ZREM', p..'expiry', id)
  return 1
end
";

/// `DELETE /v1/jobs/{id}`.
fn delete_script() -> Script {
    Script::new(&format!(
        "{}\nreturn remove(ARGV[1], ARGV[2], ARGV[3], '')",
        remove_fn()
    ))
}

/// `REMOVE_FN` with the tiled branch and the functions it uses.
fn remove_fn() -> String {
    format!(
        "{TILE_FN}\n{}",
        REMOVE_FN.replace("{REMOVE_TILED}", REMOVE_TILED)
    )
}

/// The sweeper: releases up to 100 expired jobs; returns how many.
fn sweep_script() -> Script {
    Script::new(&format!(
        "{}
local p, now, n = ARGV[1], ARGV[2], 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', p..'expiry', '-inf', now, 'LIMIT', 0, 100)) do
  n = n + remove(p, id, '', now)
end
return n",
        remove_fn()
    ))
}

/// The scripts, loaded once per process (EVALSHA, reloaded by the
/// client if Redis restarted and forgot them).
struct Scripts {
    instance: Script,
    reserve: Script,
    adjust: Script,
    charge: Script,
    create: Script,
    start: Script,
    finish: Script,
    delete: Script,
    sweep: Script,
    create_tiled: Script,
    reserve_tile: Script,
    unreserve_tile: Script,
    queue_tile: Script,
    start_tile: Script,
    finish_tile: Script,
    fetch_tile: Script,
}

/// A tiled job's script: the shared functions, then `body`.
fn tile_script(body: &str) -> Script {
    Script::new(&format!("{TILE_FN}\n{body}"))
}

/// What the server allows in all, checked in Redis.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_jobs: usize,
    max_stored_bytes: usize,
    max_inflight_bytes: usize,
    queue_capacity: usize,
    retention: Duration,
}

/// The Redis store of one process: a connection (reconnecting), the
/// scripts and the limits.
pub(super) struct RedisStore {
    settings: RedisSettings,
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    scripts: Scripts,
    limits: Limits,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What a worker found when it took a job.
pub(super) enum Started {
    /// The job is gone (deleted or expired): drop the unit.
    Gone,
    /// Another worker finished it already: drop the unit.
    Finished,
    /// The job's payload is missing (lost by Redis): fail the job.
    PayloadLost,
    /// Filter this.
    Run {
        payload: Bytes,
        /// A tiled job's manifest, for a tile.
        manifest: Option<Bytes>,
        /// When the job was created, or the tile queued (ms since the
        /// epoch).
        created_ms: u64,
        /// Deleted while queued or held by a stopped worker.
        cancelled: bool,
    },
}

/// A script's array answer: its code first.
fn items(v: redis::Value, what: &str) -> Result<Vec<redis::Value>> {
    redis::from_redis_value(v)
        .map_err(|e| Error::Internal(format!("the store's {what} answer: {e}")))
}

/// An item of a script's answer as a number (0 if it is not one).
fn num(v: Option<&redis::Value>) -> u64 {
    v.and_then(|v| redis::from_redis_value::<i64>(v.clone()).ok())
        .map_or(0, |n| u64::try_from(n).unwrap_or(0))
}

/// An item of a script's answer as bytes.
fn bytes(v: &redis::Value) -> Bytes {
    Bytes::from(redis::from_redis_value::<Vec<u8>>(v.clone()).unwrap_or_default())
}

/// An item of a script's answer as text.
fn text(v: Option<&redis::Value>) -> String {
    v.and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
        .unwrap_or_default()
}

/// What `START` or `START_TILE` answered.
fn started(v: redis::Value) -> Result<Started> {
    let items = items(v, "start")?;
    Ok(match (num(items.first()), items.as_slice()) {
        (1, [_, payload, created, cancel]) => Started::Run {
            payload: bytes(payload),
            manifest: None,
            created_ms: text(Some(created)).parse().unwrap_or(0),
            cancelled: text(Some(cancel)) == "1",
        },
        (1, [_, payload, manifest, created, cancel]) => Started::Run {
            payload: bytes(payload),
            manifest: Some(bytes(manifest)),
            created_ms: text(Some(created)).parse().unwrap_or(0),
            cancelled: text(Some(cancel)) == "1",
        },
        (2, _) => Started::Finished,
        (3, _) => Started::PayloadLost,
        _ => Started::Gone,
    })
}

/// A tile's state from its name in the record.
fn tile_state(name: &str) -> TileState {
    match name {
        "queued" => TileState::Queued,
        "running" => TileState::Running,
        "done" => TileState::Done,
        "fetched" => TileState::Fetched,
        "failed" => TileState::Failed,
        _ => TileState::Missing,
    }
}

/// A tiled job's tiles from its record (`None` for a single upload).
fn tiles_of(r: &HashMap<String, String>) -> Option<TilesStatus> {
    if r.get("state").map(String::as_str) != Some("tiled") {
        return None;
    }
    let num = |k: &str| r.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Some(TilesStatus {
        tile_rows: num("tile_rows") as u32,
        halo_rows: num("halo_rows") as u32,
        states: (0..num("tiles"))
            .map(|i| tile_state(r.get(&format!("t{i}")).map_or("missing", String::as_str)))
            .collect(),
    })
}

/// A tiled job's state from its tiles' (as the in-memory store says it).
fn tiled_state(states: &[TileState]) -> JobState {
    if states
        .iter()
        .all(|s| matches!(s, TileState::Done | TileState::Fetched))
    {
        JobState::Done
    } else if states.contains(&TileState::Running) {
        JobState::Running
    } else {
        JobState::Queued
    }
}

/// What a tile download found in the store.
pub(super) enum TileFetched {
    /// The result, now freed.
    Ready(Bytes),
    /// Queued or running.
    Pending,
}

/// What a `DELETE` did.
pub(super) enum Removed {
    /// Gone with its result or payload.
    Removed,
    /// Running: its worker is told to stop.
    Cancelling,
}

/// Counters of the store, for `/metrics`.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counts {
    pub(super) jobs: usize,
    pub(super) inflight_jobs: usize,
    pub(super) stored_bytes: usize,
    pub(super) inflight_bytes: usize,
    /// Units in the queue's stream (waiting or held by a worker).
    pub(super) queue_entries: usize,
    /// Units held by workers (pending in the consumer group).
    pub(super) queue_held: usize,
}

/// The fields every job record starts with, single upload or tiled:
/// owner, state, the chain's labels, the image's sizes and key, when.
fn job_fields(
    owner: &str,
    state: &str,
    info: &JobInfo,
    now: u64,
) -> Result<Vec<(&'static str, String)>> {
    let labels =
        serde_json::to_string(&info.labels).map_err(|e| Error::Internal(format!("labels: {e}")))?;
    Ok(vec![
        ("owner", owner.to_string()),
        ("state", state.into()),
        ("labels", labels),
        ("width", info.width.to_string()),
        ("height", info.height.to_string()),
        ("key_bits", info.key_bits.to_string()),
        ("ciphertexts", info.ciphertexts.to_string()),
        ("validate_ms", info.validate.as_millis().to_string()),
        ("created_ms", now.to_string()),
    ])
}

impl RedisStore {
    /// The store of `config` (checked, not connected: the connection is
    /// made on first use, and again whenever it is lost).
    pub(super) fn new(settings: &RedisSettings, config: &Config) -> Result<Self> {
        let client = redis::Client::open(settings.connection_info()?).map_err(|_| {
            Error::Config(format!(
                "cannot use the Redis store at {}: the URL's settings are not supported",
                settings.address()
            ))
        })?;
        Ok(RedisStore {
            settings: settings.clone(),
            client,
            conn: OnceCell::new(),
            scripts: Scripts {
                instance: Script::new(INSTANCE),
                reserve: Script::new(RESERVE),
                adjust: Script::new(ADJUST),
                charge: Script::new(CHARGE),
                create: Script::new(CREATE),
                start: Script::new(START),
                finish: Script::new(FINISH),
                delete: delete_script(),
                sweep: sweep_script(),
                create_tiled: tile_script(CREATE_TILED),
                reserve_tile: tile_script(RESERVE_TILE),
                unreserve_tile: tile_script(UNRESERVE_TILE),
                queue_tile: tile_script(QUEUE_TILE),
                start_tile: tile_script(START_TILE),
                finish_tile: tile_script(FINISH_TILE),
                fetch_tile: tile_script(FETCH_TILE),
            },
            limits: Limits {
                max_jobs: config.max_jobs,
                max_stored_bytes: config.max_stored_bytes,
                max_inflight_bytes: config.max_inflight_bytes,
                queue_capacity: config.queue_capacity,
                retention: config.retention,
            },
        })
    }

    /// The settings.
    pub(super) fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// A key under the prefix.
    pub(super) fn key(&self, name: &str) -> String {
        format!("{}{name}", self.settings.prefix)
    }

    fn manager_config(response: Duration) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(response))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1))
    }

    /// The shared connection (multiplexed, reconnecting).
    pub(super) async fn conn(&self) -> Result<ConnectionManager> {
        self.conn
            .get_or_try_init(|| async {
                ConnectionManager::new_lazy_with_config(
                    self.client.clone(),
                    Self::manager_config(RESPONSE_TIMEOUT),
                )
                .map_err(|e| self.failed(&e))
            })
            .await
            .cloned()
    }

    /// A connection of its own, for a worker's blocking reads.
    pub(super) fn blocking_conn(&self) -> Result<ConnectionManager> {
        ConnectionManager::new_lazy_with_config(
            self.client.clone(),
            Self::manager_config(READ_BLOCK + RESPONSE_TIMEOUT),
        )
        .map_err(|e| self.failed(&e))
    }

    /// The instance id of the jobs in this store, the same on every node:
    /// kept in Redis (`instance`), drawn by the first node that asks. Job
    /// statuses and `404`s carry it, so a client told `404` by any node
    /// sees the instance that accepted its job when the job expired or was
    /// deleted (an error), and another one only when Redis lost its data,
    /// the job with it (then the client submits it again). A node's own
    /// id ([`Service::instance`](super::Service::instance)) names it as a
    /// consumer and in its health.
    pub(super) async fn instance(&self) -> Result<String> {
        let mut c = self.conn().await?;
        self.scripts
            .instance
            .key(self.key("instance"))
            .arg(new_instance()?)
            .invoke_async(&mut c)
            .await
            .map_err(|e| self.failed(&e))
    }

    /// The answer to a request when Redis fails: `503` naming the store.
    pub(super) fn failed(&self, e: &RedisError) -> Error {
        Error::Busy(format!(
            "the job store (Redis at {}) is unreachable or failing ({e}); retry later",
            self.settings.address(),
        ))
    }

    /// Admits a new job of `caller` whose upload may take `bytes`: the
    /// token's quotas first (`429`), then the server's limits (`503`).
    pub(super) async fn reserve(
        self: &Arc<Self>,
        caller: &Caller,
        bytes: usize,
    ) -> Result<RedisReservation> {
        let mut c = self.conn().await?;
        let q = &caller.quota;
        let l = &self.limits;
        let r: (u64, u64, u64, u64) = self
            .scripts
            .reserve
            .arg(&self.settings.prefix)
            .arg(&*caller.name)
            .arg(bytes)
            .arg(q.concurrent_jobs)
            .arg(q.stored_jobs)
            .arg(q.stored_bytes)
            .arg(l.max_jobs)
            .arg(l.max_stored_bytes)
            .arg(l.max_inflight_bytes)
            .arg(l.queue_capacity)
            .invoke_async(&mut c)
            .await
            .map_err(|e| self.failed(&e))?;
        let (code, a, b, d) = r;
        match code {
            0 => Ok(RedisReservation {
                store: Arc::clone(self),
                owner: Arc::clone(&caller.name),
                bytes,
                used: false,
                tile: None,
                again: false,
            }),
            1 => {
                let mut u = Usage::default();
                u.in_flight = a as usize;
                u.jobs = b as usize;
                u.bytes = d as usize;
                u.check_new_job(q, bytes)?;
                Err(Error::Internal(
                    "the store refused a job within its quota".into(),
                ))
            }
            code => Err(self.full(code, a, bytes, false)),
        }
    }

    /// The `503` of a server-wide limit that refused a job (or a tile):
    /// `code` and `a` as `RESERVE` and `RESERVE_TILE` answer them.
    fn full(&self, code: u64, a: u64, bytes: usize, tile: bool) -> Error {
        let l = &self.limits;
        Error::Busy(match code {
            2 => format!("{a} jobs are stored, at most {}; retry later", l.max_jobs),
            3 => format!(
                "{a} bytes of results are stored, at most {}; retry later",
                l.max_stored_bytes
            ),
            4 => format!(
                "{a} bytes of uploads are in flight and this {} may take {bytes}, at most {} \
                 in all; retry later",
                if tile { "tile" } else { "one" },
                l.max_inflight_bytes
            ),
            _ => format!(
                "the queue is full ({} {} in flight); retry later",
                l.queue_capacity,
                if tile { "jobs and tiles" } else { "jobs" }
            ),
        })
    }

    /// Moves counters (see the `ADJUST` script).
    async fn adjust(&self, owner: &str, token: [i64; 3], server: [i64; 3]) -> Result<()> {
        let mut c = self.conn().await?;
        self.scripts
            .adjust
            .arg(&self.settings.prefix)
            .arg(owner)
            .arg(token[0])
            .arg(token[1])
            .arg(token[2])
            .arg(server[0])
            .arg(server[1])
            .arg(server[2])
            .invoke_async::<i64>(&mut c)
            .await
            .map_err(|e| self.failed(&e))?;
        Ok(())
    }

    /// Charges `units` of estimated compute to `caller` (`429` beyond its
    /// hourly quota), atomically across nodes.
    pub(super) async fn charge_compute(&self, caller: &Caller, units: u64) -> Result<()> {
        let q = &caller.quota;
        // A job over the whole quota: refused as in memory, no round trip.
        Usage::default().charge_compute(q, units.min(q.compute_per_hour + 1), Instant::now())?;
        let mut c = self.conn().await?;
        let tag = new_id()?;
        let r: redis::Value = self
            .scripts
            .charge
            .arg(&self.settings.prefix)
            .arg(&*caller.name)
            .arg(units)
            .arg(q.compute_per_hour)
            .arg(now_ms())
            .arg(tag)
            .invoke_async(&mut c)
            .await
            .map_err(|e| self.failed(&e))?;
        let held: Vec<u64> = match r {
            redis::Value::Int(_) => return Ok(()),
            v => redis::from_redis_value(v)
                .map_err(|e| Error::Internal(format!("the store's compute answer: {e}")))?,
        };
        // Refused: the same refusal as in memory, from the hour's entries.
        let now = Instant::now();
        let mut u = Usage::with_compute(held.chunks_exact(2).map(|e| {
            let age = Duration::from_millis(e[0]).min(Duration::from_millis(HOUR_MS));
            (now.checked_sub(age).unwrap_or(now), e[1])
        }));
        u.charge_compute(q, units, now)?;
        Err(Error::Internal(
            "the store refused compute within the quota".into(),
        ))
    }

    /// Creates a queued job from its reservation and queues its unit;
    /// returns its id and status.
    pub(super) async fn create(
        &self,
        mut reservation: RedisReservation,
        info: &JobInfo,
        payload: Bytes,
    ) -> Result<(String, JobStatus)> {
        let id = new_id()?;
        let now = now_ms();
        let mut fields = job_fields(&reservation.owner, "queued", info, now)?;
        fields.extend([
            ("payload_bytes", reservation.bytes.to_string()),
            ("attempts", "0".into()),
        ]);
        let mut call = self.scripts.create.prepare_invoke();
        call.arg(&self.settings.prefix).arg(&id).arg(&payload[..]);
        for (k, v) in &fields {
            call.arg(*k).arg(v);
        }
        let mut c = self.conn().await?;
        call.invoke_async::<i64>(&mut c)
            .await
            .map_err(|e| self.failed(&e))?;
        reservation.used = true;
        let record: HashMap<String, String> = fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let status = self
            .status_of(&id, &self.instance().await?, &record, now)
            .ok_or_else(|| Error::Internal("a job record without its fields".into()))?;
        Ok((id, status))
    }

    /// The `404` of a job this store does not hold for the caller.
    fn not_found(&self, id: &str) -> Error {
        Error::NotFound(format!(
            "no job {id} in the job store (never created, deleted, expired, or another token's)"
        ))
    }

    /// The status of job `id` from its record, if it has not expired at `now`.
    fn status_of(
        &self,
        id: &str,
        instance: &str,
        r: &HashMap<String, String>,
        now: u64,
    ) -> Option<JobStatus> {
        let num = |k: &str| r.get(k).and_then(|v| v.parse::<u64>().ok());
        let tiles = tiles_of(r);
        let state = match (r.get("state")?.as_str(), &tiles) {
            (_, Some(t)) => tiled_state(&t.states),
            ("queued", _) => JobState::Queued,
            ("running", _) => JobState::Running,
            ("done", _) => JobState::Done,
            _ => JobState::Failed,
        };
        let retention = self.limits.retention.as_millis() as u64;
        let finished = num("finished_ms");
        // A tiled job counts from its last activity, once nothing is in
        // flight; a deleted one is gone for its owner at once.
        let since = match tiles {
            Some(_) if r.get("cancel").is_some_and(|c| c == "1") => return None,
            Some(_) => num("flying")
                .is_none_or(|f| f == 0)
                .then(|| num("last_ms").unwrap_or(0)),
            None => finished,
        };
        if since.is_some_and(|f| now >= f.saturating_add(retention)) {
            return None;
        }
        let created = num("created_ms").unwrap_or(0);
        let started = num("started_ms");
        let secs = |ms: u64| ms as f64 / 1000.0;
        Some(JobStatus {
            id: id.to_string(),
            instance: instance.to_string(),
            state,
            filters: r
                .get("labels")
                .and_then(|l| serde_json::from_str(l).ok())
                .unwrap_or_default(),
            width: num("width").unwrap_or(0) as u32,
            height: num("height").unwrap_or(0) as u32,
            key_bits: num("key_bits").unwrap_or(0) as u32,
            ciphertexts: num("ciphertexts").unwrap_or(0),
            progress_done: num("progress_done").unwrap_or(0),
            progress_total: num("progress_total").unwrap_or(0),
            validate_seconds: secs(num("validate_ms").unwrap_or(0)),
            queued_seconds: started.map(|s| secs(s.saturating_sub(created))),
            filter_seconds: started
                .zip(finished)
                .map(|(s, f)| secs(f.saturating_sub(s))),
            result_bytes: (state == JobState::Done || tiles.is_some())
                .then(|| num("result_bytes").unwrap_or(0)),
            expires_in_seconds: since
                .map(|f| (f.saturating_add(retention).saturating_sub(now)) / 1000),
            error: r.get("error").cloned(),
            tiles,
        })
    }

    /// The record of job `id` if it is `owner`'s.
    async fn record(&self, id: &str, owner: &str) -> Result<HashMap<String, String>> {
        let mut c = self.conn().await?;
        let r: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.key(&format!("job:{id}")))
            .query_async(&mut c)
            .await
            .map_err(|e| self.failed(&e))?;
        if r.get("owner").is_none_or(|o| o != owner) {
            return Err(self.not_found(id));
        }
        Ok(r)
    }

    /// The status of a job of `owner`; with `wait`, held until it
    /// finishes or `wait` passes (the record is polled).
    pub(super) async fn status(&self, id: &str, owner: &str, wait: Duration) -> Result<JobStatus> {
        let deadline = tokio::time::Instant::now() + wait;
        let instance = self.instance().await?;
        loop {
            let r = self.record(id, owner).await?;
            let st = self
                .status_of(id, &instance, &r, now_ms())
                .ok_or_else(|| self.not_found(id))?;
            let now = tokio::time::Instant::now();
            if st.state.is_finished() || now >= deadline {
                return Ok(st);
            }
            tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
        }
    }

    /// The result of a finished job of `owner`.
    pub(super) async fn result(&self, id: &str, owner: &str) -> Result<Bytes> {
        let r = self.record(id, owner).await?;
        let st = self
            .status_of(id, "", &r, now_ms())
            .ok_or_else(|| self.not_found(id))?;
        if st.tiles.is_some() {
            return Err(tiles::tiled_result(id));
        }
        match st.state {
            JobState::Done => {
                let mut c = self.conn().await?;
                let b: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(self.key(&format!("result:{id}")))
                    .query_async(&mut c)
                    .await
                    .map_err(|e| self.failed(&e))?;
                b.map(Bytes::from).ok_or_else(|| self.not_found(id))
            }
            JobState::Failed => Err(Error::Unprocessable(format!(
                "job {id} failed: {}",
                st.error.unwrap_or_default()
            ))),
            s => Err(Error::NotReady(format!(
                "job {id} is {}; wait with GET /v1/jobs/{id}?wait=30",
                if s == JobState::Queued {
                    "queued"
                } else {
                    "running"
                }
            ))),
        }
    }

    /// Deletes a job of `owner`: a finished or queued one goes at once,
    /// a running one is told to stop.
    pub(super) async fn delete(&self, id: &str, owner: &str) -> Result<Removed> {
        let mut c = self.conn().await?;
        let r: i64 = self
            .scripts
            .delete
            .arg(&self.settings.prefix)
            .arg(id)
            .arg(owner)
            .invoke_async(&mut c)
            .await
            .map_err(|e| self.failed(&e))?;
        match r {
            1 => Ok(Removed::Removed),
            2 => Ok(Removed::Cancelling),
            _ => Err(self.not_found(id)),
        }
    }

    /// Releases the jobs whose retention has passed; returns how many.
    pub(super) async fn sweep(&self) -> Result<usize> {
        let mut c = self.conn().await?;
        let n: i64 = self
            .scripts
            .sweep
            .arg(&self.settings.prefix)
            .arg(now_ms())
            .invoke_async(&mut c)
            .await
            .map_err(|e| self.failed(&e))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// A worker takes job `id`.
    pub(super) async fn start(&self, id: &str, worker: &str) -> Result<Started> {
        let mut c = self.conn().await?;
        let v: redis::Value = self
            .scripts
            .start
            .arg(&self.settings.prefix)
            .arg(id)
            .arg(worker)
            .arg(now_ms())
            .invoke_async(&mut c)
            .await
            .map_err(|e| self.failed(&e))?;
        started(v)
    }

    /// Stores the outcome of job `id` once (see `FINISH`); true if this
    /// call stored it.
    pub(super) async fn finish(
        &self,
        id: &str,
        outcome: &std::result::Result<Bytes, String>,
    ) -> Result<bool> {
        let mut c = self.conn().await?;
        let retention = self.limits.retention;
        let ttl = retention * 2 + TTL_MARGIN;
        let mut call = self.scripts.finish.prepare_invoke();
        call.arg(&self.settings.prefix).arg(id);
        match outcome {
            Ok(b) => call.arg(1).arg(&b[..]),
            Err(e) => call.arg(0).arg(e.as_str()),
        };
        call.arg(now_ms())
            .arg(retention.as_millis() as u64)
            .arg(ttl.as_millis() as u64);
        let r: i64 = call
            .invoke_async(&mut c)
            .await
            .map_err(|e| self.failed(&e))?;
        Ok(r == 1)
    }

    /// Writes a running job's progress (`counts`: done, total; none for
    /// a tile); returns whether the job was cancelled.
    pub(super) async fn heartbeat(&self, id: &str, counts: Option<(u64, u64)>) -> Result<bool> {
        let mut c = self.conn().await?;
        let key = self.key(&format!("job:{id}"));
        let mut pipe = redis::pipe();
        pipe.cmd("HGET").arg(&key).arg("cancel");
        if let Some((done, total)) = counts {
            pipe.cmd("HSET")
                .arg(&key)
                .arg("progress_done")
                .arg(done)
                .arg("progress_total")
                .arg(total)
                .ignore();
        }
        let (cancel,): (Option<String>,) = pipe
            .query_async(&mut c)
            .await
            .map_err(|e| self.failed(&e))?;
        Ok(cancel.as_deref() == Some("1"))
    }

    /// Creates a tiled job of `caller` from its checked manifest (the
    /// framed body, key included), all tiles missing: it counts as one
    /// stored job until it expires or is deleted.
    pub(super) async fn create_tiled(
        &self,
        caller: &Caller,
        info: &JobInfo,
        manifest: &[u8],
        plan: &enc_image::TilePlan,
    ) -> Result<(String, JobStatus)> {
        let id = new_id()?;
        let now = now_ms();
        let mut fields = job_fields(&caller.name, "tiled", info, now)?;
        fields.extend([
            ("tiles", plan.count().to_string()),
            ("tile_rows", plan.tile_rows().to_string()),
            ("halo_rows", plan.halo_rows().to_string()),
        ]);
        let (retention, ttl) = self.retention_ms();
        let mut call = self.scripts.create_tiled.prepare_invoke();
        call.arg(&self.settings.prefix)
            .arg(&*caller.name)
            .arg(caller.quota.stored_jobs)
            .arg(self.limits.max_jobs)
            .arg(now)
            .arg(retention)
            .arg(ttl)
            .arg(&id)
            .arg(manifest);
        for (k, v) in &fields {
            call.arg(*k).arg(v);
        }
        let mut c = self.conn().await?;
        let (code, n): (u64, u64) = call
            .invoke_async(&mut c)
            .await
            .map_err(|e| self.failed(&e))?;
        match code {
            0 => {}
            1 => {
                let mut u = Usage::default();
                u.jobs = n as usize;
                u.check_stored_jobs(&caller.quota)?;
                return Err(Error::Internal(
                    "the store refused a job within its quota".into(),
                ));
            }
            code => return Err(self.full(code, n, 0, false)),
        }
        let mut record: HashMap<String, String> = fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        record.insert("last_ms".into(), now.to_string());
        let status = self
            .status_of(&id, &self.instance().await?, &record, now)
            .ok_or_else(|| Error::Internal("a job record without its fields".into()))?;
        Ok((id, status))
    }

    /// The retention and the keys' TTL, in ms.
    fn retention_ms(&self) -> (u64, u64) {
        let retention = self.limits.retention;
        (
            retention.as_millis() as u64,
            (retention * 2 + TTL_MARGIN).as_millis() as u64,
        )
    }

    /// The manifest (framed, key included) of tiled job `id` of `owner`,
    /// its tile `index`'s existence checked.
    pub(super) async fn tile_manifest(&self, id: &str, owner: &str, index: usize) -> Result<Bytes> {
        let r = self.record(id, owner).await?;
        let st = self
            .status_of(id, "", &r, now_ms())
            .ok_or_else(|| self.not_found(id))?;
        let count = st.tiles.ok_or_else(|| tiles::not_tiled(id))?.states.len();
        if index >= count {
            return Err(tiles::no_such_tile(id, count, index));
        }
        let mut c = self.conn().await?;
        let m: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.key(&format!("manifest:{id}")))
            .query_async(&mut c)
            .await
            .map_err(|e| self.failed(&e))?;
        m.map(Bytes::from).ok_or_else(|| self.not_found(id))
    }

    /// Admits an upload of tile `index` of job `id` that may take `bytes`
    /// (see `RESERVE_TILE`): the tile must be missing, fetched or failed
    /// (else `409`), then the token's quotas (`429`) and the server's
    /// limits (`503`).
    pub(super) async fn reserve_tile(
        self: &Arc<Self>,
        caller: &Caller,
        id: &str,
        index: usize,
        bytes: usize,
    ) -> Result<RedisReservation> {
        let q = &caller.quota;
        let l = &self.limits;
        let mut c = self.conn().await?;
        let v: redis::Value = self
            .scripts
            .reserve_tile
            .arg(&self.settings.prefix)
            .arg(id)
            .arg(&*caller.name)
            .arg(index)
            .arg(bytes)
            .arg(q.concurrent_jobs)
            .arg(q.stored_bytes)
            .arg(l.max_stored_bytes)
            .arg(l.max_inflight_bytes)
            .arg(l.queue_capacity)
            .arg(now_ms())
            .arg(self.retention_ms().0)
            .invoke_async(&mut c)
            .await
            .map_err(|e| self.failed(&e))?;
        let items = items(v, "tile reservation")?;
        let (a, b, d) = (num(items.get(1)), num(items.get(2)), num(items.get(3)));
        match num(items.first()) {
            0 if items.len() == 4 => Ok(RedisReservation {
                store: Arc::clone(self),
                owner: Arc::clone(&caller.name),
                bytes,
                used: false,
                tile: Some((id.to_string(), index)),
                again: a == 1,
            }),
            0 => Err(self.not_found(id)),
            1 => {
                let mut u = Usage::default();
                u.in_flight = a as usize;
                u.jobs = b as usize;
                u.bytes = d as usize;
                u.check_in_flight(q)?;
                u.check_bytes(q, bytes)?;
                Err(Error::Internal(
                    "the store refused a tile within its quota".into(),
                ))
            }
            6 => Err(tiles::not_tiled(id)),
            7 => Err(tiles::no_such_tile(id, a as usize, index)),
            8 => Err(tiles::tile_taken(
                id,
                index,
                text(items.get(1)) == "uploading",
                tile_state(&text(items.get(1))),
            )),
            code => Err(self.full(code, a, bytes, true)),
        }
    }

    /// Queues a checked tile upload and its unit of work; returns the
    /// job's status. A job deleted meanwhile is `404`.
    pub(super) async fn queue_tile(
        &self,
        mut reservation: RedisReservation,
        payload: &[u8],
    ) -> Result<JobStatus> {
        let Some((id, index)) = reservation.tile.clone() else {
            return Err(Error::Internal(
                "a job's reservation used for a tile".into(),
            ));
        };
        let mut c = self.conn().await?;
        let queued: i64 = self
            .scripts
            .queue_tile
            .arg(&self.settings.prefix)
            .arg(&id)
            .arg(index)
            .arg(payload)
            .arg(reservation.bytes)
            .arg(now_ms())
            .invoke_async(&mut c)
            .await
            .map_err(|e| self.failed(&e))?;
        if queued != 1 {
            return Err(self.not_found(&id));
        }
        reservation.used = true;
        let owner = Arc::clone(&reservation.owner);
        self.status(&id, &owner, Duration::ZERO).await
    }

    /// A worker takes tile `index` of job `id`.
    pub(super) async fn start_tile(&self, id: &str, index: usize, worker: &str) -> Result<Started> {
        let mut c = self.conn().await?;
        let v: redis::Value = self
            .scripts
            .start_tile
            .arg(&self.settings.prefix)
            .arg(id)
            .arg(index)
            .arg(worker)
            .invoke_async(&mut c)
            .await
            .map_err(|e| self.failed(&e))?;
        started(v)
    }

    /// Stores the outcome of tile `index` of job `id` once (see
    /// `FINISH_TILE`); true if this call stored it.
    pub(super) async fn finish_tile(
        &self,
        id: &str,
        index: usize,
        outcome: &std::result::Result<Bytes, String>,
    ) -> Result<bool> {
        let mut c = self.conn().await?;
        let (retention, ttl) = self.retention_ms();
        let mut call = self.scripts.finish_tile.prepare_invoke();
        call.arg(&self.settings.prefix).arg(id).arg(index);
        match outcome {
            Ok(b) => call.arg(1).arg(&b[..]),
            Err(e) => call.arg(0).arg(e.as_str()),
        };
        call.arg(now_ms()).arg(retention).arg(ttl);
        let r: i64 = call
            .invoke_async(&mut c)
            .await
            .map_err(|e| self.failed(&e))?;
        Ok(r == 1)
    }

    /// Downloads tile `index` of job `id` of `owner`: its result, freed
    /// at once (the tile becomes `fetched`), or pending while it is
    /// queued or running. A missing tile is `409`, a fetched one `410`,
    /// a failed one `422`.
    pub(super) async fn fetch_tile(
        &self,
        id: &str,
        owner: &str,
        index: usize,
    ) -> Result<TileFetched> {
        let mut c = self.conn().await?;
        let (retention, ttl) = self.retention_ms();
        let v: redis::Value = self
            .scripts
            .fetch_tile
            .arg(&self.settings.prefix)
            .arg(id)
            .arg(owner)
            .arg(index)
            .arg(now_ms())
            .arg(retention)
            .arg(ttl)
            .invoke_async(&mut c)
            .await
            .map_err(|e| self.failed(&e))?;
        let items = items(v, "tile download")?;
        let refused = |state, error: Option<String>| {
            Err(tiles::no_tile_result(id, index, state, error.as_deref()))
        };
        match (num(items.first()), items.get(1)) {
            (1, Some(b)) => Ok(TileFetched::Ready(bytes(b))),
            (2, _) => Ok(TileFetched::Pending),
            (3, _) => refused(TileState::Fetched, None),
            (4, e) => refused(TileState::Failed, Some(text(e))),
            (5, _) => refused(TileState::Missing, None),
            (6, _) => Err(tiles::not_tiled(id)),
            (7, n) => Err(tiles::no_such_tile(id, num(n) as usize, index)),
            _ => Err(self.not_found(id)),
        }
    }

    /// Gives back a tile reservation that was not used (see
    /// `UNRESERVE_TILE`).
    async fn unreserve_tile(
        &self,
        owner: &str,
        id: &str,
        index: usize,
        bytes: usize,
    ) -> Result<()> {
        let mut c = self.conn().await?;
        let (retention, ttl) = self.retention_ms();
        self.scripts
            .unreserve_tile
            .arg(&self.settings.prefix)
            .arg(id)
            .arg(owner)
            .arg(index)
            .arg(bytes)
            .arg(now_ms())
            .arg(retention)
            .arg(ttl)
            .invoke_async::<i64>(&mut c)
            .await
            .map_err(|e| self.failed(&e))?;
        Ok(())
    }

    /// The tokens held in the store (`None`: no node has put any).
    pub(super) async fn tokens(&self) -> Result<Option<TokenFile>> {
        let mut c = self.conn().await?;
        let text: Option<String> = redis::cmd("GET")
            .arg(self.key("tokens"))
            .query_async(&mut c)
            .await
            .map_err(|e| self.failed(&e))?;
        text.map(|t| TokenFile::from_json(&t)).transpose()
    }

    /// Replaces the tokens held in the store with `file` (hashes only,
    /// as in the file).
    pub(super) async fn put_tokens(&self, file: &TokenFile) -> Result<()> {
        let mut c = self.conn().await?;
        redis::cmd("SET")
            .arg(self.key("tokens"))
            .arg(file.to_json())
            .query_async::<()>(&mut c)
            .await
            .map_err(|e| self.failed(&e))
    }

    /// The store's counters and the queue's length.
    pub(super) async fn counts(&self) -> Result<Counts> {
        let mut c = self.conn().await?;
        let (m, len): (HashMap<String, i64>, usize) = redis::pipe()
            .cmd("HGETALL")
            .arg(self.key("count"))
            .cmd("XLEN")
            .arg(self.key("work"))
            .query_async(&mut c)
            .await
            .map_err(|e| self.failed(&e))?;
        // No group yet (no worker has started): nothing is held.
        let held = redis::cmd("XPENDING")
            .arg(self.key("work"))
            .arg(GROUP)
            .query_async::<redis::streams::StreamPendingReply>(&mut c)
            .await
            .map_or(0, |p| p.count());
        let get = |k: &str| m.get(k).map_or(0, |&v| usize::try_from(v).unwrap_or(0));
        Ok(Counts {
            jobs: get("jobs"),
            inflight_jobs: get("inflight_jobs"),
            stored_bytes: get("stored_bytes"),
            inflight_bytes: get("inflight_bytes"),
            queue_entries: len,
            queue_held: held,
        })
    }
}

/// A job admitted before its upload is read: its place and bytes are
/// held in Redis, and given back if it is dropped before
/// [`RedisStore::create`].
#[derive(Debug)]
pub(super) struct RedisReservation {
    store: Arc<RedisStore>,
    owner: Arc<str>,
    bytes: usize,
    used: bool,
    /// A tile's upload: its job and index.
    tile: Option<(String, usize)>,
    /// The tile was filtered before (fetched or failed).
    again: bool,
}

impl RedisReservation {
    /// Whether the tile was filtered before (fetched or failed) and is
    /// sent again: its cost was not in the manifest's charge.
    pub(super) fn is_again(&self) -> bool {
        self.again
    }

    /// Gives the reservation back (a job's place, or a tile's).
    async fn give_back(&self) -> Result<()> {
        let b = self.bytes as i64;
        match &self.tile {
            Some((id, index)) => {
                self.store
                    .unreserve_tile(&self.owner, id, *index, self.bytes)
                    .await
            }
            None => {
                self.store
                    .adjust(&self.owner, [-1, -1, -b], [-1, -1, -b])
                    .await
            }
        }
    }

    /// Gives back what the upload did not use of the reservation.
    pub(super) async fn shrink_to(&mut self, bytes: usize) -> Result<()> {
        if bytes < self.bytes {
            let d = (self.bytes - bytes) as i64;
            self.store
                .adjust(&self.owner, [0, 0, -d], [0, 0, -d])
                .await?;
            self.bytes = bytes;
        }
        Ok(())
    }
}

impl Drop for RedisReservation {
    fn drop(&mut self) {
        if self.used {
            return;
        }
        let this = RedisReservation {
            store: Arc::clone(&self.store),
            owner: Arc::clone(&self.owner),
            bytes: self.bytes,
            used: true,
            tile: self.tile.take(),
            again: self.again,
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            // Given back even if Redis is away for a while: a place held
            // for nothing would count against the token until reset.
            rt.spawn(async move {
                let mut wait = Duration::from_millis(250);
                for _ in 0..RELEASE_ATTEMPTS {
                    match this.give_back().await {
                        Ok(()) => return,
                        Err(e) => tracing::warn!(
                            error = %e,
                            "cannot give back an unused upload's reservation yet"
                        ),
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(4));
                }
                tracing::error!(
                    owner = %this.owner,
                    bytes = this.bytes,
                    "gave up giving back an unused upload's reservation: the store's counters \
                     hold it until reset (docs/OPERATIONS.md)"
                );
            });
        }
    }
}
