//! The worker of the Redis store: takes units of work from the queue's
//! stream (`XREADGROUP` in the group `workers`), validates the payload
//! as the API did (Redis is not trusted either), filters it on this
//! process's filter pool and writes the result once. A unit is a job
//! (single upload) or one tile of a tiled job, checked against its
//! job's manifest as the API checked it.
//!
//! A unit stays pending until its result is written; while it runs the
//! worker claims it again every third of the visibility timeout (its
//! heartbeat, which also reads the job's cancel flag and writes its
//! progress). A unit idle longer than the visibility timeout belongs to
//! a stopped worker: another one claims it and redoes it. A unit
//! delivered more than `max_deliveries` times fails its job.
//!
//! Each process runs [`UNITS_AT_ONCE`] loops: one unit's payload is read
//! and validated while another is filtered. Redis down: each loop logs,
//! waits (doubling up to [`MAX_BACKOFF`]) and tries again; what it
//! holds stays pending in Redis, to be redone.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use redis::aio::ConnectionManager;
use redis::streams::{StreamPendingCountReply, StreamReadReply};
use tracing::{info, warn};

use super::admission::validate;
use super::drain::Stage;
use super::error::Result;
use super::handlers::{filter_logged, tile_task_id};
use super::jobs::{JobProgress, valid_id};
use super::pools::on_pool;
use super::redis_store::{GROUP, READ_BLOCK, RedisStore, Started, now_ms};
use super::service::{Held, Shared};
use super::tiles::{check_manifest, check_tile};

/// Units one process works on at once: the filter uses every thread of
/// the pool, so a second unit only overlaps its reading and checking
/// (and the writing of the result) with the first one's filter.
pub(super) const UNITS_AT_ONCE: usize = 2;
/// Longest wait between attempts when Redis is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(4);
/// Pending entries looked at per claim attempt.
const CLAIM_SCAN: usize = 10;

/// One unit of work taken from the queue.
struct Unit {
    /// The stream entry's id.
    entry: String,
    /// The job's id.
    job: String,
    /// The tile, for a unit of a tiled job.
    tile: Option<usize>,
    /// How many times the unit was handed out, this time included.
    deliveries: usize,
}

/// Runs one worker loop until the process drains.
pub(super) async fn run(shared: Arc<Shared>, store: Arc<RedisStore>) {
    let consumer = shared.instance().to_string();
    let mut backoff = Duration::from_millis(250);
    let mut blocking = None;
    // Whether the consumer group is known to exist: checked again after
    // any failure (Redis may have restarted without it).
    let mut group = false;
    loop {
        // Draining: no new unit; the one held was finished by `step`.
        if shared.drain.stage() != Stage::Serving {
            return;
        }
        let r = async {
            let conn = match &mut blocking {
                Some(c) => c,
                None => blocking.insert(store.blocking_conn()?),
            };
            if !group {
                ensure_group(&store, conn).await?;
                group = true;
            }
            step(&shared, &store, conn, &consumer).await
        }
        .await;
        match r {
            Ok(()) => backoff = Duration::from_millis(250),
            Err(e) => {
                group = false;
                warn!(
                    error = %e,
                    retry_ms = backoff.as_millis() as u64,
                    "worker: the store failed; waiting before trying again"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Creates the consumer group (and the stream) if missing.
async fn ensure_group(store: &RedisStore, c: &mut ConnectionManager) -> Result<()> {
    let r: redis::RedisResult<String> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(store.key("work"))
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(c)
        .await;
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(store.failed(&e)),
    }
}

/// One round: a unit left by a stopped worker if there is one, else a
/// new unit (waiting up to [`READ_BLOCK`]); works on it.
async fn step(
    shared: &Arc<Shared>,
    store: &Arc<RedisStore>,
    blocking: &mut ConnectionManager,
    consumer: &str,
) -> Result<()> {
    let unit = match claim(shared, store, consumer).await? {
        Some(u) => Some(u),
        None => read(store, blocking, consumer).await?,
    };
    if let Some(unit) = unit {
        work(shared, store, consumer, unit).await?;
    }
    Ok(())
}

/// Reads one new unit, waiting up to [`READ_BLOCK`].
async fn read(
    store: &RedisStore,
    c: &mut ConnectionManager,
    consumer: &str,
) -> Result<Option<Unit>> {
    let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg(consumer)
        .arg("COUNT")
        .arg(1)
        .arg("BLOCK")
        .arg(READ_BLOCK.as_millis() as u64)
        .arg("STREAMS")
        .arg(store.key("work"))
        .arg(">")
        .query_async(c)
        .await
        .map_err(|e| store.failed(&e))?;
    Ok(reply
        .and_then(|r| r.keys.into_iter().next())
        .and_then(|k| k.ids.into_iter().next())
        .map(|e| Unit {
            job: e.get::<String>("job").unwrap_or_default(),
            tile: e.get::<usize>("tile"),
            entry: e.id,
            deliveries: 1,
        }))
}

/// Takes over one unit another consumer has held, silent, for longer
/// than the visibility timeout, if there is one.
async fn claim(shared: &Shared, store: &RedisStore, consumer: &str) -> Result<Option<Unit>> {
    let mut c = store.conn().await?;
    let idle = store.settings().visibility_timeout.as_millis() as u64;
    let pending: StreamPendingCountReply = redis::cmd("XPENDING")
        .arg(store.key("work"))
        .arg(GROUP)
        .arg("IDLE")
        .arg(idle)
        .arg("-")
        .arg("+")
        .arg(CLAIM_SCAN)
        .query_async(&mut c)
        .await
        .map_err(|e| store.failed(&e))?;
    // This process's own units are included: those it works on are kept
    // fresh by their heartbeat, so one idle here was dropped (its store
    // call failed) and is taken up again.
    for p in pending.ids {
        // Only if still idle: of two workers trying, one gets it.
        let claimed: redis::streams::StreamClaimReply = redis::cmd("XCLAIM")
            .arg(store.key("work"))
            .arg(GROUP)
            .arg(consumer)
            .arg(idle)
            .arg(&p.id)
            .query_async(&mut c)
            .await
            .map_err(|e| store.failed(&e))?;
        let Some(e) = claimed.ids.into_iter().next() else {
            continue;
        };
        let job = e.get::<String>("job").unwrap_or_default();
        let tile = e.get::<usize>("tile");
        if p.consumer == consumer {
            info!(
                job = %job,
                tile = ?tile,
                idle_ms = p.last_delivered_ms as u64,
                "taking up again work this worker dropped"
            );
        } else {
            info!(
                job = %job,
                tile = ?tile,
                from = %p.consumer,
                idle_ms = p.last_delivered_ms as u64,
                deliveries = p.times_delivered + 1,
                "claimed work from a stopped worker"
            );
            shared.metrics.work_claimed();
        }
        return Ok(Some(Unit {
            entry: e.id,
            job,
            tile,
            deliveries: p.times_delivered + 1,
        }));
    }
    Ok(None)
}

/// Acknowledges and removes a unit: it is done with.
async fn ack(store: &RedisStore, entry: &str) -> Result<()> {
    let mut c = store.conn().await?;
    redis::pipe()
        .atomic()
        .cmd("XACK")
        .arg(store.key("work"))
        .arg(GROUP)
        .arg(entry)
        .ignore()
        .cmd("XDEL")
        .arg(store.key("work"))
        .arg(entry)
        .ignore()
        .query_async::<()>(&mut c)
        .await
        .map_err(|e| store.failed(&e))
}

/// Stores an outcome, trying again while Redis is unreachable (the
/// result is not lost while this process lives), then acknowledges.
async fn settle(
    shared: &Shared,
    store: &RedisStore,
    unit: &Unit,
    outcome: std::result::Result<Bytes, String>,
) {
    let mut backoff = Duration::from_millis(250);
    loop {
        let r = async {
            match unit.tile {
                Some(i) => store.finish_tile(&unit.job, i, &outcome).await?,
                None => store.finish(&unit.job, &outcome).await?,
            };
            ack(store, &unit.entry).await
        }
        .await;
        match r {
            Ok(()) => return,
            Err(e) if shared.drain.stage() == Stage::Stopping => {
                warn!(job = %unit.job, error = %e, "stopping: the unit stays pending for another worker");
                return;
            }
            Err(e) => {
                warn!(job = %unit.job, error = %e, "cannot store the outcome yet; trying again");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Works on one unit: takes the job, checks the payload, filters it
/// (heartbeating), stores the outcome and acknowledges the unit.
async fn work(
    shared: &Arc<Shared>,
    store: &Arc<RedisStore>,
    consumer: &str,
    unit: Unit,
) -> Result<()> {
    if !valid_id(&unit.job) {
        // Not one of ours (Redis is not trusted either): drop it.
        warn!(entry = %unit.entry, "a unit of work without a valid job id: dropped");
        return ack(store, &unit.entry).await;
    }
    let max = store.settings().max_deliveries as usize;
    if unit.deliveries > max {
        warn!(job = %unit.job, deliveries = unit.deliveries, "giving up on a unit");
        let why = format!(
            "the {} was handed to a worker {} times and never finished (each worker stopped \
             while filtering it); it is not tried again",
            if unit.tile.is_some() { "tile" } else { "job" },
            unit.deliveries - 1
        );
        settle(shared, store, &unit, Err(why)).await;
        return Ok(());
    }
    let _held = Held::new(shared);
    // Heartbeat from now on, so that reading and checking a large upload
    // does not look like a stopped worker.
    let progress = Arc::new(JobProgress::default());
    let beat = tokio::spawn(heartbeat(
        Arc::clone(store),
        unit.entry.clone(),
        unit.job.clone(),
        unit.tile,
        consumer.to_string(),
        Arc::clone(&progress),
    ));
    let _beat = AbortOnDrop(beat);
    let started = match unit.tile {
        Some(i) => store.start_tile(&unit.job, i, consumer).await?,
        None => store.start(&unit.job, consumer).await?,
    };
    let (payload, manifest, created_ms) = match started {
        Started::Gone | Started::Finished => return ack(store, &unit.entry).await,
        Started::PayloadLost => {
            let why = "the job's upload was lost by the store; submit it again".to_string();
            settle(shared, store, &unit, Err(why)).await;
            return Ok(());
        }
        Started::Run {
            cancelled: true, ..
        } => {
            settle(shared, store, &unit, Err("cancelled".into())).await;
            return Ok(());
        }
        Started::Run {
            payload,
            manifest,
            created_ms,
            ..
        } => (payload, manifest, created_ms),
    };
    let waited = Duration::from_millis(now_ms().saturating_sub(created_ms));
    let config = shared.config.clone();
    let tile = unit.tile;
    // A tile is checked against its job's manifest as the API did.
    let checked = on_pool(&shared.check_pool, move || match (tile, manifest) {
        (Some(i), Some(m)) => {
            let (spec, _) = check_manifest(&config, &m)?;
            let image = check_tile(&config, &spec, i, &payload)?;
            Ok((image, spec.pk, spec.chain))
        }
        _ => validate(&config, &payload).map(|j| (j.image, j.pk, j.chain)),
    })
    .await;
    let outcome = match checked {
        Err(e) => {
            warn!(job = %unit.job, tile = ?unit.tile, error = %e, "the stored upload does not check");
            Err(e.to_string())
        }
        Ok((image, pk, chain)) => {
            let what = match unit.tile {
                Some(i) => tile_task_id(&unit.job, i),
                None => unit.job.clone(),
            };
            let (sh, p) = (Arc::clone(shared), Arc::clone(&progress));
            let pool = shared.filter_pool()?;
            let out = on_pool(pool, move || {
                let _running = sh.metrics.job_running();
                Ok(filter_logged(&what, &image, &pk, &chain, &p, waited))
            })
            .await;
            // A job deleted meanwhile goes whatever the outcome (FINISH).
            out.unwrap_or_else(|e| Err(e.to_string()))
        }
    };
    settle(shared, store, &unit, outcome).await;
    Ok(())
}

/// Stops a task when dropped (the heartbeat of a unit, however the work
/// on it ends).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// While a unit runs: claims it again (so that it does not look idle),
/// writes the job's progress and stops the filter if the job was
/// deleted, every third of the visibility timeout.
async fn heartbeat(
    store: Arc<RedisStore>,
    entry: String,
    job: String,
    tile: Option<usize>,
    consumer: String,
    progress: Arc<JobProgress>,
) {
    let period = (store.settings().visibility_timeout / 3).max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(period).await;
        let beat = async {
            let mut c = store.conn().await?;
            redis::cmd("XCLAIM")
                .arg(store.key("work"))
                .arg(GROUP)
                .arg(&consumer)
                .arg(0)
                .arg(&entry)
                .arg("JUSTID")
                .query_async::<redis::Value>(&mut c)
                .await
                .map_err(|e| store.failed(&e))?;
            // A tile's progress is not the job's: only a job's is written.
            let counts = tile.is_none().then(|| progress.counts());
            store.heartbeat(&job, counts).await
        };
        match beat.await {
            Ok(true) => {
                info!(job = %job, "job deleted while running: stopping its filter");
                progress.cancel();
            }
            Ok(false) => {}
            Err(e) => warn!(job = %job, error = %e, "heartbeat failed"),
        }
    }
}
