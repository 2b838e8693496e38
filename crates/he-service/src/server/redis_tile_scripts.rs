//! The Lua scripts of tiled jobs in the Redis store (`redis_store.rs`
//! runs them). A tiled job's record `job:{id}` has `state` `tiled`, the
//! tile count `tiles`, tiles in flight `flying`, `result_bytes`, the last
//! activity `last_ms`, the last tile error `error` and per tile `t{i}`
//! (its state: `missing`, `uploading`, `queued`, `running`, `done`,
//! `fetched`, `failed`), `p{i}` (the state before an upload),
//! `pb{i}` (its payload's bytes), `rb{i}` (its result's bytes) and
//! `q{i}` (when it was queued, ms). The manifest is `manifest:{id}`, a
//! tile's upload `tile:{id}:{i}` and its result `tres:{id}:{i}`.
//!
//! A tile in flight holds one place in flight and its bytes, as a job
//! does; the job holds one stored job until it is removed. Retention
//! counts from the last activity once no tile is in flight.

/// Functions the tiled scripts (and the removal of any job) share (a
/// count given back is `0 - n`, as `redis_store.rs` says why):
/// `tile_release` gives back a queued or running tile's payload,
/// `tiled_drop` removes a job with nothing in flight and its results,
/// `tiled_touch` records activity (and removes a deleted job once
/// nothing is in flight), `tiled_live` says whether the record is a live
/// tiled job of `owner` (-1), else 0 (not found) or 6 (not tiled).
pub(super) const TILE_FN: &str = r"
local function tile_release(p, id, k, o, i)
  local pb = tonumber(redis.call('HGET', k, 'pb'..i) or '0')
  local u, c = p..'usage:'..o, p..'count'
  redis.call('HINCRBY', u, 'in_flight', -1)
  redis.call('HINCRBY', u, 'bytes', 0 - pb)
  redis.call('HINCRBY', c, 'inflight_jobs', -1)
  redis.call('HINCRBY', c, 'inflight_bytes', 0 - pb)
  redis.call('HSET', k, 'pb'..i, 0)
  redis.call('HINCRBY', k, 'flying', -1)
  redis.call('DEL', p..'tile:'..id..':'..i)
end
local function tiled_drop(p, id, k, o)
  local n = tonumber(redis.call('HGET', k, 'tiles') or '0')
  for i = 0, n - 1 do redis.call('DEL', p..'tres:'..id..':'..i, p..'tile:'..id..':'..i) end
  local rb = tonumber(redis.call('HGET', k, 'result_bytes') or '0')
  local u, c = p..'usage:'..o, p..'count'
  redis.call('HINCRBY', u, 'bytes', 0 - rb)
  redis.call('HINCRBY', c, 'stored_bytes', 0 - rb)
  redis.call('HINCRBY', u, 'jobs', -1)
  redis.call('HINCRBY', c, 'jobs', -1)
  redis.call('DEL', k, p..'manifest:'..id)
  redis.call('ZREM', p..'expiry', id)
end
local function tiled_touch(p, id, k, o, now, ret, ttl)
  redis.call('HSET', k, 'last_ms', now)
  if tonumber(redis.call('HGET', k, 'flying') or '0') > 0 then
    redis.call('ZREM', p..'expiry', id)
    return
  end
  if redis.call('HGET', k, 'cancel') == '1' then
    tiled_drop(p, id, k, o)
    return
  end
  redis.call('ZADD', p..'expiry', now + ret, id)
  redis.call('PEXPIRE', k, ttl)
  redis.call('PEXPIRE', p..'manifest:'..id, ttl)
  local n = tonumber(redis.call('HGET', k, 'tiles') or '0')
  for i = 0, n - 1 do
    if redis.call('HGET', k, 't'..i) == 'done' then
      redis.call('PEXPIRE', p..'tres:'..id..':'..i, ttl)
    end
  end
end
local function tiled_live(k, owner, now, ret)
  local r = redis.call('HMGET', k, 'state', 'owner', 'cancel', 'flying', 'last_ms')
  if not r[1] or r[2] ~= owner or r[3] == '1' then return 0 end
  if r[1] ~= 'tiled' then return 6 end
  if tonumber(r[4] or '0') == 0 and tonumber(r[5] or '0') + ret <= now then return 0 end
  return -1
end
";

/// Creates a tiled job, all tiles missing: ARGV prefix, owner, the
/// token's stored-jobs quota, `max_jobs`, now, retention ms, key TTL ms,
/// id, manifest, then the record's fields and values. Returns {0, 0}
/// created, {1, jobs} over the token's quota, {2, jobs} the server full.
pub(super) const CREATE_TILED: &str = r"
local p, o, now = ARGV[1], ARGV[2], tonumber(ARGV[5])
local u, c = p..'usage:'..o, p..'count'
local uj = tonumber(redis.call('HGET', u, 'jobs') or '0')
if uj >= tonumber(ARGV[3]) then return {1, uj} end
local cj = tonumber(redis.call('HGET', c, 'jobs') or '0')
if cj >= tonumber(ARGV[4]) then return {2, cj} end
local id = ARGV[8]
local k = p..'job:'..id
redis.call('HSET', k, unpack(ARGV, 10))
redis.call('HSET', k, 'last_ms', now, 'flying', 0, 'result_bytes', 0)
redis.call('SET', p..'manifest:'..id, ARGV[9], 'PX', ARGV[7])
redis.call('PEXPIRE', k, ARGV[7])
redis.call('HINCRBY', u, 'jobs', 1)
redis.call('HINCRBY', c, 'jobs', 1)
redis.call('ZADD', p..'expiry', now + tonumber(ARGV[6]), id)
return {0, 0}
";

/// Admits an upload of a tile: ARGV prefix, id, owner, index, bytes,
/// the token's `concurrent_jobs` and `stored_bytes`, `max_stored_bytes`,
/// `max_inflight_bytes`, `queue_capacity`, now, retention ms. Returns
/// {0, again} (again: 1 if the tile was filtered before), {0} not found,
/// {1, in_flight, jobs, bytes} over the token's quota, {3, stored},
/// {4, in flight bytes}, {5, in flight} the server full, {6} not tiled,
/// {7, tiles} no such tile, {8, state} the tile is taken.
pub(super) const RESERVE_TILE: &str = r"
local p, id, o, i, bytes = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local k = p..'job:'..id
local now = tonumber(ARGV[11])
local live = tiled_live(k, o, now, tonumber(ARGV[12]))
if live >= 0 then return {live, 0, 0, 0} end
local n = tonumber(redis.call('HGET', k, 'tiles'))
if i >= n then return {7, n, 0, 0} end
local t = redis.call('HGET', k, 't'..i) or 'missing'
if t ~= 'missing' and t ~= 'fetched' and t ~= 'failed' then return {8, t, 0, 0} end
local u, c = p..'usage:'..o, p..'count'
local function g(key, f) return tonumber(redis.call('HGET', key, f) or '0') end
local uf, uj, ub = g(u, 'in_flight'), g(u, 'jobs'), g(u, 'bytes')
if uf >= tonumber(ARGV[6]) or ub + bytes > tonumber(ARGV[7]) then return {1, uf, uj, ub} end
local cs, ci, cf = g(c, 'stored_bytes'), g(c, 'inflight_bytes'), g(c, 'inflight_jobs')
if cs >= tonumber(ARGV[8]) then return {3, cs, 0, 0} end
if ci + bytes > tonumber(ARGV[9]) then return {4, ci, 0, 0} end
if cf >= tonumber(ARGV[10]) then return {5, cf, 0, 0} end
redis.call('HINCRBY', u, 'in_flight', 1)
redis.call('HINCRBY', u, 'bytes', bytes)
redis.call('HINCRBY', c, 'inflight_jobs', 1)
redis.call('HINCRBY', c, 'inflight_bytes', bytes)
redis.call('HSET', k, 't'..i, 'uploading', 'p'..i, t, 'last_ms', now)
redis.call('HINCRBY', k, 'flying', 1)
redis.call('ZREM', p..'expiry', id)
redis.call('PERSIST', k)
redis.call('PERSIST', p..'manifest:'..id)
if t == 'missing' then return {0, 0, 0, 0} end
return {0, 1, 0, 0}
";

/// Gives back an unused tile reservation: ARGV prefix, id, owner,
/// index, bytes, now, retention ms, key TTL ms. The tile goes back to
/// its state before the upload.
pub(super) const UNRESERVE_TILE: &str = r"
local p, id, o, i, b = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local u, c = p..'usage:'..o, p..'count'
redis.call('HINCRBY', u, 'in_flight', -1)
redis.call('HINCRBY', u, 'bytes', 0 - b)
redis.call('HINCRBY', c, 'inflight_jobs', -1)
redis.call('HINCRBY', c, 'inflight_bytes', 0 - b)
local k = p..'job:'..id
if redis.call('HGET', k, 't'..i) == 'uploading' then
  redis.call('HSET', k, 't'..i, redis.call('HGET', k, 'p'..i) or 'missing')
  redis.call('HINCRBY', k, 'flying', -1)
  tiled_touch(p, id, k, o, tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8])
end
return 1
";

/// Queues a checked tile upload and its unit of work: ARGV prefix, id,
/// index, payload, bytes, now. Returns 1, or 0 if the job was deleted
/// meanwhile (the reservation is then given back).
pub(super) const QUEUE_TILE: &str = r"
local p, id, i = ARGV[1], ARGV[2], ARGV[3]
local k = p..'job:'..id
if redis.call('HGET', k, 'cancel') == '1' or redis.call('HGET', k, 't'..i) ~= 'uploading' then
  return 0
end
redis.call('SET', p..'tile:'..id..':'..i, ARGV[4])
redis.call('HSET', k, 't'..i, 'queued', 'pb'..i, ARGV[5], 'q'..i, ARGV[6], 'last_ms', ARGV[6])
redis.call('XADD', p..'work', '*', 'job', id, 'tile', i)
return 1
";

/// A worker takes a tile: ARGV prefix, id, index, worker. {0} gone, {2}
/// not queued (finished, or its job deleted), {3} payload lost, or {1,
/// payload, manifest, queued_ms, cancel}.
pub(super) const START_TILE: &str = r"
local p, id, i = ARGV[1], ARGV[2], ARGV[3]
local k = p..'job:'..id
if redis.call('HGET', k, 'state') ~= 'tiled' then return {0} end
local t = redis.call('HGET', k, 't'..i)
if t ~= 'queued' and t ~= 'running' then return {2} end
local payload = redis.call('GET', p..'tile:'..id..':'..i)
if not payload then return {3} end
redis.call('HSET', k, 't'..i, 'running', 'w'..i, ARGV[4])
return {1, payload, redis.call('GET', p..'manifest:'..id) or '', redis.call('HGET', k, 'q'..i) or '0',
  redis.call('HGET', k, 'cancel') or '0'}
";

/// Stores a tile's outcome once: ARGV prefix, id, index, ok (1/0), the
/// result or the error, now, retention ms, key TTL ms. Returns 1 stored,
/// 2 the job was deleted meanwhile, 0 nothing to do (a second write).
pub(super) const FINISH_TILE: &str = r"
local p, id, i = ARGV[1], ARGV[2], ARGV[3]
local k = p..'job:'..id
if redis.call('HGET', k, 'state') ~= 'tiled' then return 0 end
local t = redis.call('HGET', k, 't'..i)
if t ~= 'queued' and t ~= 'running' then return 0 end
local o = redis.call('HGET', k, 'owner')
tile_release(p, id, k, o, i)
local r = 1
if redis.call('HGET', k, 'cancel') == '1' then
  redis.call('HSET', k, 't'..i, 'failed')
  r = 2
elseif ARGV[4] == '1' then
  local rb = #ARGV[5]
  redis.call('SET', p..'tres:'..id..':'..i, ARGV[5], 'PX', ARGV[8])
  redis.call('HSET', k, 't'..i, 'done', 'rb'..i, rb)
  redis.call('HINCRBY', k, 'result_bytes', rb)
  redis.call('HINCRBY', p..'usage:'..o, 'bytes', rb)
  redis.call('HINCRBY', p..'count', 'stored_bytes', rb)
else
  redis.call('HSET', k, 't'..i, 'failed', 'error', 'tile '..i..': '..ARGV[5])
end
tiled_touch(p, id, k, o, tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8])
return r
";

/// Downloads a tile's result and frees it: ARGV prefix, id, owner,
/// index, now, retention ms, key TTL ms. {1, result}, {0} not found,
/// {2} queued or running, {3} fetched already, {4, error} failed, {5}
/// not uploaded, {6} not tiled, {7, tiles} no such tile.
pub(super) const FETCH_TILE: &str = r"
local p, id, o, i = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local k = p..'job:'..id
local now, ret = tonumber(ARGV[5]), tonumber(ARGV[6])
local live = tiled_live(k, o, now, ret)
if live >= 0 then return {live} end
local n = tonumber(redis.call('HGET', k, 'tiles'))
if i >= n then return {7, n} end
local t = redis.call('HGET', k, 't'..i) or 'missing'
if t == 'queued' or t == 'running' then return {2} end
if t == 'fetched' then return {3} end
if t == 'failed' then return {4, redis.call('HGET', k, 'error') or 'cancelled'} end
if t ~= 'done' then return {5} end
local key = p..'tres:'..id..':'..i
local b = redis.call('GET', key)
local rb = tonumber(redis.call('HGET', k, 'rb'..i) or '0')
redis.call('DEL', key)
redis.call('HSET', k, 't'..i, 'fetched', 'rb'..i, 0)
redis.call('HINCRBY', k, 'result_bytes', 0 - rb)
redis.call('HINCRBY', p..'usage:'..o, 'bytes', 0 - rb)
redis.call('HINCRBY', p..'count', 'stored_bytes', 0 - rb)
tiled_touch(p, id, k, o, now, ret, ARGV[7])
if not b then return {3} end
return {1, b}
";

/// The tiled branch of `remove` (`redis_store.rs`), run with `k`, `o`,
/// `owner`-checked: a DELETE releases the queued tiles at once and tells
/// running ones to stop (2), or removes the job (1); the sweeper removes
/// it only with nothing in flight and its retention passed.
pub(super) const REMOVE_TILED: &str = r"
    local n, busy = tonumber(redis.call('HGET', k, 'tiles') or '0'), 0
    for i = 0, n - 1 do
      local t = redis.call('HGET', k, 't'..i)
      if t == 'queued' and now == '' then
        tile_release(p, id, k, o, i)
        redis.call('HSET', k, 't'..i, 'failed')
      elseif t == 'queued' or t == 'running' or t == 'uploading' then
        busy = busy + 1
      end
    end
    if busy > 0 then
      if now ~= '' then return 0 end
      redis.call('HSET', k, 'cancel', 1)
      return 2
    end
    if now ~= '' then
      local due = redis.call('ZSCORE', p..'expiry', id)
      if due and tonumber(due) > tonumber(now) then return 0 end
    end
    tiled_drop(p, id, k, o)
    return 1
";
