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
//! - `expiry`: finished jobs by the time they expire, for the sweeper.
//!
//! Every change that moves a counter is one Lua script, so that limits
//! hold across nodes and a job's accounting is released exactly once.
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
use super::jobs::{JobInfo, new_id};
use super::quota::Usage;
use super::tokens::{Caller, TokenFile};
use crate::wire::{JobState, JobStatus};

/// The consumer group of the workers on the queue.
pub(super) const GROUP: &str = "workers";

/// Longest a command may take before the store counts as unreachable.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a worker's read of the queue blocks (`XREADGROUP BLOCK`).
pub(super) const READ_BLOCK: Duration = Duration::from_secs(1);
/// How often a long poll (`?wait=S`) looks at the job record.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
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
redis.call('HINCRBY', u, 'bytes', -pb)
redis.call('HINCRBY', c, 'inflight_jobs', -1)
redis.call('HINCRBY', c, 'inflight_bytes', -pb)
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
/// (or not yet expired, for the sweeper), 1 removed, 2 cancelling.
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
  if st == 'running' then
    if now ~= '' then return 0 end
    redis.call('HSET', k, 'cancel', 1)
    return 2
  end
  if st == 'queued' then
    if now ~= '' then return 0 end
    local pb = tonumber(redis.call('HGET', k, 'payload_bytes') or '0')
    redis.call('HINCRBY', u, 'in_flight', -1)
    redis.call('HINCRBY', u, 'bytes', -pb)
    redis.call('HINCRBY', c, 'inflight_jobs', -1)
    redis.call('HINCRBY', c, 'inflight_bytes', -pb)
    redis.call('DEL', p..'payload:'..id)
  else
    if now ~= '' then
      local due = redis.call('ZSCORE', p..'expiry', id)
      if due and tonumber(due) > tonumber(now) then return 0 end
    end
    local rb = tonumber(redis.call('HGET', k, 'result_bytes') or '0')
    redis.call('HINCRBY', u, 'bytes', -rb)
    redis.call('HINCRBY', c, 'stored_bytes', -rb)
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
        "{REMOVE_FN}\nreturn remove(ARGV[1], ARGV[2], ARGV[3], '')"
    ))
}

/// The sweeper: releases up to 100 expired jobs; returns how many.
fn sweep_script() -> Script {
    Script::new(&format!(
        "{REMOVE_FN}
local p, now, n = ARGV[1], ARGV[2], 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', p..'expiry', '-inf', now, 'LIMIT', 0, 100)) do
  n = n + remove(p, id, '', now)
end
return n"
    ))
}

/// The scripts, loaded once per process (EVALSHA, reloaded by the
/// client if Redis restarted and forgot them).
struct Scripts {
    reserve: Script,
    adjust: Script,
    charge: Script,
    create: Script,
    start: Script,
    finish: Script,
    delete: Script,
    sweep: Script,
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
        /// When the job was created (ms since the epoch).
        created_ms: u64,
        /// Deleted while queued or held by a stopped worker.
        cancelled: bool,
    },
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
                reserve: Script::new(RESERVE),
                adjust: Script::new(ADJUST),
                charge: Script::new(CHARGE),
                create: Script::new(CREATE),
                start: Script::new(START),
                finish: Script::new(FINISH),
                delete: delete_script(),
                sweep: sweep_script(),
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
        let r: (u8, u64, u64, u64) = self
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
            2 => Err(Error::Busy(format!(
                "{a} jobs are stored, at most {}; retry later",
                l.max_jobs
            ))),
            3 => Err(Error::Busy(format!(
                "{a} bytes of results are stored, at most {}; retry later",
                l.max_stored_bytes
            ))),
            4 => Err(Error::Busy(format!(
                "{a} bytes of uploads are in flight and this one may take {bytes}, at most {} \
                 in all; retry later",
                l.max_inflight_bytes
            ))),
            _ => Err(Error::Busy(format!(
                "the queue is full ({} jobs in flight); retry later",
                l.queue_capacity
            ))),
        }
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
        instance: &str,
    ) -> Result<(String, JobStatus)> {
        let id = new_id()?;
        let now = now_ms();
        let labels = serde_json::to_string(&info.labels)
            .map_err(|e| Error::Internal(format!("labels: {e}")))?;
        let fields: Vec<(&str, String)> = vec![
            ("owner", reservation.owner.to_string()),
            ("state", "queued".into()),
            ("labels", labels),
            ("width", info.width.to_string()),
            ("height", info.height.to_string()),
            ("key_bits", info.key_bits.to_string()),
            ("ciphertexts", info.ciphertexts.to_string()),
            ("validate_ms", info.validate.as_millis().to_string()),
            ("created_ms", now.to_string()),
            ("payload_bytes", reservation.bytes.to_string()),
            ("attempts", "0".into()),
        ];
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
            .status_of(&id, instance, &record, now)
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
        let state = match r.get("state")?.as_str() {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "done" => JobState::Done,
            _ => JobState::Failed,
        };
        let retention = self.limits.retention.as_millis() as u64;
        let finished = num("finished_ms");
        if finished.is_some_and(|f| now >= f.saturating_add(retention)) {
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
            result_bytes: (state == JobState::Done).then(|| num("result_bytes").unwrap_or(0)),
            expires_in_seconds: finished
                .map(|f| (f.saturating_add(retention).saturating_sub(now)) / 1000),
            error: r.get("error").cloned(),
            tiles: None,
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
    pub(super) async fn status(
        &self,
        id: &str,
        owner: &str,
        instance: &str,
        wait: Duration,
    ) -> Result<JobStatus> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let r = self.record(id, owner).await?;
            let st = self
                .status_of(id, instance, &r, now_ms())
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
        let items: Vec<redis::Value> = redis::from_redis_value(v)
            .map_err(|e| Error::Internal(format!("the store's start answer: {e}")))?;
        let code: i64 = items
            .first()
            .cloned()
            .and_then(|v| redis::from_redis_value(v).ok())
            .unwrap_or(0);
        Ok(match (code, items.as_slice()) {
            (1, [_, payload, created, cancel]) => {
                let text = |v: &redis::Value| {
                    redis::from_redis_value::<String>(v.clone()).unwrap_or_default()
                };
                Started::Run {
                    payload: Bytes::from(
                        redis::from_redis_value::<Vec<u8>>(payload.clone()).unwrap_or_default(),
                    ),
                    created_ms: text(created).parse().unwrap_or(0),
                    cancelled: text(cancel) == "1",
                }
            }
            (2, _) => Started::Finished,
            (3, _) => Started::PayloadLost,
            _ => Started::Gone,
        })
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

    /// Writes a running job's progress; returns whether it was cancelled.
    pub(super) async fn heartbeat(&self, id: &str, done: u64, total: u64) -> Result<bool> {
        let mut c = self.conn().await?;
        let key = self.key(&format!("job:{id}"));
        let (cancel,): (Option<String>,) = redis::pipe()
            .cmd("HGET")
            .arg(&key)
            .arg("cancel")
            .cmd("HSET")
            .arg(&key)
            .arg("progress_done")
            .arg(done)
            .arg("progress_total")
            .arg(total)
            .ignore()
            .query_async(&mut c)
            .await
            .map_err(|e| self.failed(&e))?;
        Ok(cancel.as_deref() == Some("1"))
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
}

impl RedisReservation {
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
        let (store, owner, b) = (
            Arc::clone(&self.store),
            Arc::clone(&self.owner),
            self.bytes as i64,
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            // Given back even if Redis is away for a while: a place held
            // for nothing would count against the token until reset.
            rt.spawn(async move {
                let mut wait = Duration::from_millis(250);
                for _ in 0..RELEASE_ATTEMPTS {
                    match store.adjust(&owner, [-1, -1, -b], [-1, -1, -b]).await {
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
                    owner = %owner,
                    bytes = b,
                    "gave up giving back an unused upload's reservation: the store's counters \
                     hold it until reset (docs/OPERATIONS.md)"
                );
            });
        }
    }
}
