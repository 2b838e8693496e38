//! The Redis store against a real `redis-server` started by the tests
//! (a throwaway instance on a free loopback port, no persistence, its
//! own directory, killed when dropped). Without `redis-server` on the
//! PATH the tests say so loudly and pass, unless `HE_REQUIRE_REDIS` is
//! set (CI), which makes that a failure.

#![allow(clippy::unwrap_used)] // test helpers may unwrap: a panic is a test failure

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use enc_image::{BorderMode, ColorLayout, EncryptedImage, NoProgress, PixelImage};
use he_filter::{Filter, reference};
use paillier::Keypair;

use super::config::{Config, RedisSettings, Role, StoreKind};
use super::{ServerHandle, Service};
use crate::client::{self, Client, FilterRequest};
use crate::wire::{JOB_CONTENT_TYPE, JobSpec, JobState, MANIFEST_CONTENT_TYPE};

/// A `redis-server` of the tests' own.
struct TestRedis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

static PREFIXES: AtomicUsize = AtomicUsize::new(0);

impl TestRedis {
    /// Starts one, or `None` (after saying why) if `redis-server` is not
    /// installed and `HE_REQUIRE_REDIS` is unset.
    fn start() -> Option<TestRedis> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok();
        if !found {
            assert!(
                std::env::var_os("HE_REQUIRE_REDIS").is_none(),
                "HE_REQUIRE_REDIS is set but redis-server is not on the PATH"
            );
            eprintln!(
                "\n!!!!!!!! SKIPPED: redis-server is not on the PATH, the Redis store is NOT \
                 tested (apt install redis-server; set HE_REQUIRE_REDIS=1 to make this a \
                 failure) !!!!!!!!\n"
            );
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("he-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = TestRedis {
            child: None,
            port,
            dir,
        };
        r.run();
        Some(r)
    }

    /// Starts the server (again) on its port and waits until it answers.
    fn run(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis::Client::open(self.url().as_str())
            .and_then(|c| c.get_connection())
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_err()
        {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server (as a crash would).
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// A store of its own in this Redis (a key prefix per test).
    fn settings(&self) -> RedisSettings {
        let mut s = RedisSettings::new(&self.url(), None).unwrap();
        s.prefix = format!("t{}:", PREFIXES.fetch_add(1, Ordering::Relaxed));
        s
    }

    /// Reads the next unit of the work stream (under `prefix`) as a
    /// worker that then dies would: `dead-worker` never acks it, so it
    /// stays pending. The entry read.
    fn read_as_dead_worker(&self, prefix: &str) -> redis::streams::StreamId {
        let mut c = self.sync_conn();
        let work = format!("{prefix}work");
        let _: redis::RedisResult<String> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&work)
            .arg("workers")
            .arg("0")
            .arg("MKSTREAM")
            .query(&mut c);
        let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("workers")
            .arg("dead-worker")
            .arg("COUNT")
            .arg(1)
            .arg("STREAMS")
            .arg(&work)
            .arg(">")
            .query(&mut c)
            .unwrap();
        read.keys[0].ids[0].clone()
    }

    fn sync_conn(&self) -> redis::Connection {
        redis::Client::open(self.url().as_str())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A node of `role` on a free loopback port, sharing `store`.
fn node(store: &RedisSettings, role: Role, tweak: impl FnOnce(&mut Config)) -> ServerHandle {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: std::num::NonZeroUsize::new(1),
        store: StoreKind::Redis(store.clone()),
        role,
        ..Config::default()
    };
    tweak(&mut config);
    ServerHandle::start(config).unwrap()
}

struct Job {
    kp: Keypair,
    img: PixelImage,
    spec: JobSpec,
    enc: EncryptedImage,
}

fn job(seed: u64) -> Job {
    let kp = Keypair::generate_insecure_for_tests(512).unwrap();
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data = (0..7 * 5 * 3)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect();
    let img = PixelImage::new(7, 5, ColorLayout::Rgb8, data).unwrap();
    let spec = JobSpec::new(vec![Filter::Mean { k: 3 }]);
    let opts = spec.encrypt_options().unwrap();
    let enc = EncryptedImage::encrypt(&img, kp.private_key(), &opts, &NoProgress).unwrap();
    Job { kp, img, spec, enc }
}

impl Job {
    /// Whether `result` (the server's bytes) is this job's exact result.
    fn check(&self, result: &[u8]) {
        let out =
            EncryptedImage::from_bytes(result, self.kp.public_key(), &enc_image::Limits::default())
                .unwrap();
        let got = out.decrypt(self.kp.private_key(), &NoProgress).unwrap();
        let want =
            reference::apply_chain(&self.img, &self.spec.filters, BorderMode::Replicate).unwrap();
        assert_eq!(got, want);
    }

    fn submit(&self, client: &Client) -> client::Result<crate::wire::JobStatus> {
        client.submit(self.kp.public_key(), &self.spec, &self.enc, &NoProgress)
    }
}

/// Waits for job `id` to finish (long polls), at most `within`.
fn finished(client: &Client, id: &str, within: Duration) -> crate::wire::JobStatus {
    let deadline = Instant::now() + within;
    loop {
        let st = client.status(id, Duration::from_secs(2)).unwrap();
        if st.state.is_finished() {
            return st;
        }
        assert!(Instant::now() < deadline, "job {id} did not finish: {st:?}");
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// The store holds no job, nothing in flight and no bytes, as every node
/// sees it.
fn assert_nothing_held(client: &Client) {
    let h = client.health().unwrap();
    assert_eq!(
        (
            h.jobs_stored,
            h.jobs_in_flight,
            h.stored_bytes,
            h.inflight_bytes
        ),
        (0, 0, 0, 0)
    );
}

#[test]
fn an_api_node_and_a_worker_share_a_redis_and_run_jobs_exactly() {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    let store = redis.settings();
    let api = node(&store, Role::Api, |_| {});
    let worker = node(&store, Role::Worker, |_| {});
    let client = Client::new(&api.url()).unwrap();
    let h = client.health().unwrap();
    assert_eq!((h.store.as_str(), h.role.as_str()), ("redis", "api"));
    assert!(h.store_reachable);
    assert!(client.info().unwrap().tiled_jobs);
    let wh = Client::new(&worker.url()).unwrap().health().unwrap();
    assert_eq!((wh.store.as_str(), wh.role.as_str()), ("redis", "worker"));
    // The worker serves health and metrics only.
    let r = agent()
        .get(format!("{}/v1/info", worker.url()))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    for seed in 1..=2 {
        let j = job(seed);
        let request = FilterRequest {
            timeout: Duration::from_secs(60),
            ..FilterRequest::new(j.kp.public_key(), &j.spec, &j.enc)
        };
        let (out, status) = client.filter(&request).unwrap();
        assert_eq!(status.state, JobState::Done);
        let got = out.decrypt(j.kp.private_key(), &NoProgress).unwrap();
        let want = reference::apply_chain(&j.img, &j.spec.filters, BorderMode::Replicate).unwrap();
        assert_eq!(got, want);
    }
    // Every job was collected: the store's counters are back to zero.
    assert_nothing_held(&client);
    // The queue is empty, and the worker took the units over from nobody.
    let metrics = agent()
        .get(format!("{}/metrics", worker.url()))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    for line in [
        "he_queue_units{state=\"waiting\"} 0",
        "he_queue_units{state=\"held\"} 0",
        "he_work_claimed_total 0",
        "he_jobs_stored 0",
    ] {
        assert!(metrics.contains(line), "{line} not in {metrics}");
    }
    // A manifest that does not load is refused as in memory.
    let r = agent()
        .post(format!("{}/v1/jobs", api.url()))
        .header("content-type", MANIFEST_CONTENT_TYPE)
        .send(&b"{}"[..])
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[test]
fn a_unit_left_by_a_stopped_worker_is_claimed_and_finished() {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    let mut store = redis.settings();
    store.visibility_timeout = Duration::from_millis(600);
    let api = node(&store, Role::Api, |_| {});
    let client = Client::new(&api.url()).unwrap();
    let j = job(7);
    let id = j.submit(&client).unwrap().id;
    // A worker that reads the unit and dies: it stays pending, never acked.
    let entry = &redis.read_as_dead_worker(&store.prefix);
    let mut c = redis.sync_conn();
    let work = format!("{}work", store.prefix);
    assert_eq!(entry.get::<String>("job").as_deref(), Some(id.as_str()));
    // A unit that names no valid job is dropped, not worked on.
    let _: String = redis::cmd("XADD")
        .arg(&work)
        .arg("*")
        .arg("job")
        .arg("../../etc")
        .query(&mut c)
        .unwrap();
    // A live worker takes it over after the visibility timeout.
    let worker = node(&store, Role::Worker, |_| {});
    let st = finished(&client, &id, Duration::from_secs(60));
    assert_eq!(st.state, JobState::Done, "{st:?}");
    j.check(&client.result(&id, &NoProgress).unwrap());
    let s = worker.service();
    let text = s.shared.metrics.render(&s.shared.gauges());
    assert!(text.contains("\nhe_work_claimed_total 1\n"), "{text}");
    // The unit is acknowledged and gone from the queue.
    let pending: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
        .arg(&work)
        .arg("workers")
        .query(&mut c)
        .unwrap();
    assert_eq!(pending.count(), 0);
    let len: usize = redis::cmd("XLEN").arg(&work).query(&mut c).unwrap();
    assert_eq!(len, 0, "units left in the queue");
    client.delete(&id).unwrap();
}

#[test]
fn a_unit_delivered_too_often_fails_its_job() {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    let mut store = redis.settings();
    store.visibility_timeout = Duration::from_millis(300);
    store.max_deliveries = 1;
    let api = node(&store, Role::Api, |_| {});
    let client = Client::new(&api.url()).unwrap();
    let id = job(3).submit(&client).unwrap().id;
    redis.read_as_dead_worker(&store.prefix);
    let _worker = node(&store, Role::Worker, |_| {});
    let st = finished(&client, &id, Duration::from_secs(30));
    assert_eq!(st.state, JobState::Failed);
    assert!(
        st.error.as_deref().unwrap_or("").contains("1 times"),
        "{st:?}"
    );
    // A failed job holds no result: deleting it gives back its place.
    client.delete(&id).unwrap();
    assert_nothing_held(&client);
}

#[test]
fn with_redis_down_the_api_answers_503_and_works_again_when_it_is_back() {
    let Some(mut redis) = TestRedis::start() else {
        return;
    };
    let store = redis.settings();
    let node = node(&store, Role::All, |_| {});
    let client = Client::new(&node.url()).unwrap();
    let j = job(11);
    let id = j.submit(&client).unwrap().id;
    finished(&client, &id, Duration::from_secs(60));

    redis.kill();
    let r = agent()
        .get(format!("{}/v1/health", node.url()))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let h: crate::wire::Health =
        serde_json::from_str(&r.into_body().read_to_string().unwrap()).unwrap();
    assert!(!h.store_reachable);
    let r = agent()
        .post(format!("{}/v1/jobs", node.url()))
        .header("content-type", JOB_CONTENT_TYPE)
        .send(&b"HEJOB"[..])
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body = r.into_body().read_to_string().unwrap();
    assert!(body.contains("Redis at 127.0.0.1"), "{body}");
    let r = agent()
        .get(format!("{}/v1/jobs/{id}", node.url()))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);

    // Back (empty: this test's Redis keeps nothing): jobs run again, and
    // the worker made its consumer group again.
    redis.run();
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.health().is_err() {
        assert!(Instant::now() < deadline, "the node did not reconnect");
        std::thread::sleep(Duration::from_millis(100));
    }
    let j = job(12);
    let id = j.submit(&client).unwrap().id;
    let st = finished(&client, &id, Duration::from_secs(60));
    assert_eq!(st.state, JobState::Done);
    j.check(&client.result(&id, &NoProgress).unwrap());
}

/// The `404` of `GET /v1/jobs/{id}` from `node`, and the instance in it.
fn not_found_instance(node: &ServerHandle, id: &str) -> Option<String> {
    let r = agent()
        .get(format!("{}/v1/jobs/{id}", node.url()))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let body: crate::wire::ErrorBody =
        serde_json::from_str(&r.into_body().read_to_string().unwrap()).unwrap();
    body.instance
}

#[test]
fn every_node_answers_with_the_store_instance_which_changes_only_with_redis_data() {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    let store = redis.settings();
    let api1 = node(&store, Role::Api, |_| {});
    let api2 = node(&store, Role::Api, |_| {});
    let worker = node(&store, Role::Worker, |_| {});
    let (c1, c2) = (
        Client::new(&api1.url()).unwrap(),
        Client::new(&api2.url()).unwrap(),
    );
    let j = job(21);
    let accepted = j.submit(&c1).unwrap();
    let instance = accepted.instance.clone();
    assert_eq!(
        finished(&c2, &accepted.id, Duration::from_secs(60)).instance,
        instance
    );
    // One instance on every node (health and info); each node has its own id.
    let healths = [&api1, &api2, &worker].map(|n| Client::new(&n.url()).unwrap().health().unwrap());
    for (h, n) in healths.iter().zip([&api1, &api2, &worker]) {
        assert_eq!(h.instance, instance);
        assert_eq!(h.node, n.service().instance());
        assert_ne!(h.node, instance);
    }
    assert_ne!(healths[0].node, healths[1].node);
    assert_eq!(c2.info().unwrap().instance, instance);
    // Deleted through api1, the job is a 404 from api2 with the job's
    // instance: deleted, not lost (the client does not submit it again).
    c1.delete(&accepted.id).unwrap();
    assert_eq!(
        not_found_instance(&api2, &accepted.id),
        Some(instance.clone())
    );
    // Redis loses its data: a job it held is a 404 from another instance
    // (lost: the client submits it again), the same on every node.
    let lost = j.submit(&c1).unwrap();
    assert_eq!(lost.instance, instance);
    finished(&c1, &lost.id, Duration::from_secs(60));
    redis::cmd("FLUSHALL")
        .query::<()>(&mut redis.sync_conn())
        .unwrap();
    let after = not_found_instance(&api2, &lost.id).expect("a 404 with an instance");
    assert_ne!(after, instance);
    assert_eq!(not_found_instance(&api1, &lost.id), Some(after.clone()));
    assert_eq!(c1.health().unwrap().instance, after);
}

#[test]
fn a_result_written_twice_is_one_result() {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    let store = redis.settings();
    // No worker: the test plays two workers that both finish the job.
    let api = node(&store, Role::Api, |_| {});
    let client = Client::new(&api.url()).unwrap();
    let id = job(5).submit(&client).unwrap().id;
    let s: &Service = api.service();
    let rs = std::sync::Arc::clone(s.shared.redis.as_ref().unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (first, second) = rt.block_on(async {
        assert!(matches!(
            rs.start(&id, "w1").await.unwrap(),
            super::redis_store::Started::Run { .. }
        ));
        let first = rs.finish(&id, &Ok(vec![1u8; 100].into())).await.unwrap();
        let second = rs.finish(&id, &Ok(vec![2u8; 300].into())).await.unwrap();
        (first, second)
    });
    assert!(first && !second);
    assert_eq!(client.result(&id, &NoProgress).unwrap(), vec![1u8; 100]);
    let h = client.health().unwrap();
    assert_eq!(
        (h.stored_bytes, h.jobs_stored, h.jobs_in_flight),
        (100, 1, 0)
    );
    client.delete(&id).unwrap();
    let h = client.health().unwrap();
    assert_eq!((h.stored_bytes, h.jobs_stored, h.inflight_bytes), (0, 0, 0));
}

#[test]
fn a_quota_used_up_through_one_api_node_is_refused_by_the_other() {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    let store = redis.settings();
    let mut tokens = super::tokens::TokenFile::default();
    let token = tokens.create("alice", 0).unwrap();
    // Only node a is given the tokens: it puts them into Redis, and node
    // b reads them from there. No worker: jobs stay queued, in flight.
    let a = node(&store, Role::Api, |c| {
        c.tokens = Some(tokens.clone());
        c.quota.concurrent_jobs = 1;
    });
    let b = node(&store, Role::Api, |c| c.quota.concurrent_jobs = 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    let unknown = format!("{}/v1/jobs/{}", b.url(), "0".repeat(32));
    while agent().get(&unknown).call().unwrap().status().as_u16() != 401 {
        assert!(Instant::now() < deadline, "node b never asked for a token");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ca = Client::new(&a.url()).unwrap().with_token(&token).unwrap();
    let cb = Client::new(&b.url()).unwrap().with_token(&token).unwrap();
    let j = job(9);
    let id = j.submit(&ca).unwrap().id;
    match j.submit(&cb).unwrap_err() {
        client::Error::Server { status, message } => {
            assert_eq!(status, 429);
            assert!(message.contains("concurrent_jobs"), "{message}");
        }
        e => panic!("expected 429, got {e}"),
    }
    // Node b sees a's job (same token) and deletes it: the quota frees.
    assert_eq!(
        cb.status(&id, Duration::ZERO).unwrap().state,
        JobState::Queued
    );
    cb.delete(&id).unwrap();
    let id2 = j.submit(&cb).unwrap().id;
    ca.delete(&id2).unwrap();
    let h = ca.health().unwrap();
    assert_eq!(
        (h.jobs_stored, h.jobs_in_flight, h.inflight_bytes),
        (0, 0, 0)
    );
}

#[test]
fn roles_other_than_all_need_the_redis_store() {
    for role in [Role::Api, Role::Worker] {
        let e = Service::new(Config {
            role,
            ..Config::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("shared store"), "{e}");
    }
    // The password never shows in the settings' Debug.
    let s = RedisSettings::new("redis://:sesame-0123@127.0.0.1:6379/2", None).unwrap();
    assert!(RedisSettings::url_has_password(
        "redis://:sesame-0123@127.0.0.1:6379/2"
    ));
    assert!(!RedisSettings::url_has_password("redis://127.0.0.1:6379/2"));
    assert_eq!(s.address(), "127.0.0.1:6379/2");
    let debug = format!(
        "{:?}",
        Config {
            store: StoreKind::Redis(s),
            ..Config::default()
        }
    );
    assert!(!debug.contains("sesame"), "{debug}");
}

#[test]
fn a_draining_worker_takes_no_new_unit_and_another_one_does() {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    let store = redis.settings();
    let api = node(&store, Role::Api, |_| {});
    let client = Client::new(&api.url()).unwrap();
    let first = node(&store, Role::Worker, |_| {});
    let j = job(21);
    let id = j.submit(&client).unwrap().id;
    assert_eq!(
        finished(&client, &id, Duration::from_secs(60)).state,
        JobState::Done
    );
    // Holding nothing, the worker drains at once (jobs are the store's).
    first.drain().unwrap();
    let id = j.submit(&client).unwrap().id;
    let st = client.status(&id, Duration::from_millis(1500)).unwrap();
    assert_eq!(st.state, JobState::Queued, "a stopped worker took it");
    let _second = node(&store, Role::Worker, |_| {});
    let st = finished(&client, &id, Duration::from_secs(60));
    assert_eq!(st.state, JobState::Done);
    j.check(&client.result(&id, &NoProgress).unwrap());
}

#[test]
fn a_unit_a_worker_dropped_itself_is_taken_up_again() {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    let mut store = redis.settings();
    store.visibility_timeout = Duration::from_millis(500);
    let api = node(&store, Role::Api, |_| {});
    let client = Client::new(&api.url()).unwrap();
    let j = job(31);
    let id = j.submit(&client).unwrap().id;
    // The only worker's consumer read the unit and lost it (as when a
    // store call fails after the read), before the worker serves.
    let worker = Service::new(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: std::num::NonZeroUsize::new(1),
        store: StoreKind::Redis(store.clone()),
        role: Role::Worker,
        ..Config::default()
    })
    .unwrap();
    let mut c = redis.sync_conn();
    let work = format!("{}work", store.prefix);
    let _: redis::RedisResult<String> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&work)
        .arg("workers")
        .arg("0")
        .arg("MKSTREAM")
        .query(&mut c);
    let _: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg(worker.instance())
        .arg("STREAMS")
        .arg(&work)
        .arg(">")
        .query(&mut c)
        .unwrap();
    let worker = ServerHandle::start_service(worker).unwrap();
    let st = finished(&client, &id, Duration::from_secs(60));
    assert_eq!(st.state, JobState::Done);
    j.check(&client.result(&id, &NoProgress).unwrap());
    // Its own unit: not counted as work of a stopped worker.
    let s = worker.service();
    let text = s.shared.metrics.render(&s.shared.gauges());
    assert!(text.contains("\nhe_work_claimed_total 0\n"), "{text}");
}

#[test]
fn an_expired_job_goes_with_its_bytes() {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    let store = redis.settings();
    let node = node(&store, Role::All, |c| c.retention = Duration::from_secs(4));
    let client = Client::new(&node.url()).unwrap();
    let id = job(41).submit(&client).unwrap().id;
    assert_eq!(
        finished(&client, &id, Duration::from_secs(60)).state,
        JobState::Done
    );
    let h = client.health().unwrap();
    assert_eq!(h.jobs_stored, 1);
    assert!(h.stored_bytes > 0);
    // Never collected: the sweeper releases it after the retention.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let h = client.health().unwrap();
        if h.jobs_stored == 0 {
            assert_eq!((h.stored_bytes, h.inflight_bytes), (0, 0));
            break;
        }
        assert!(Instant::now() < deadline, "never swept: {h:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    match client.status(&id, Duration::ZERO).unwrap_err() {
        client::Error::Server { status, .. } => assert_eq!(status, 404),
        e => panic!("expected 404, got {e}"),
    }
    let mut c = redis.sync_conn();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*:{id}", store.prefix))
        .query(&mut c)
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}

#[test]
fn compute_per_hour_is_counted_across_nodes() {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    let store = redis.settings();
    let a = node(&store, Role::Api, |_| {});
    let b = node(&store, Role::Api, |_| {});
    let (ra, rb) = (
        std::sync::Arc::clone(a.service().shared.redis.as_ref().unwrap()),
        std::sync::Arc::clone(b.service().shared.redis.as_ref().unwrap()),
    );
    let who = super::tokens::Caller {
        name: std::sync::Arc::from("carol#01234567"),
        quota: super::Quota {
            compute_per_hour: 10,
            ..super::Quota::default()
        },
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        ra.charge_compute(&who, 6).await.unwrap();
        // 6 + 6 > 10, through the other node too.
        match rb.charge_compute(&who, 6).await.unwrap_err() {
            super::Error::Quota {
                kind, retry_after, ..
            } => {
                assert_eq!(kind, super::QuotaKind::ComputePerHour);
                assert!((3500..=3600).contains(&retry_after), "{retry_after}");
            }
            e => panic!("expected a quota error, got {e}"),
        }
        rb.charge_compute(&who, 4).await.unwrap();
        assert!(matches!(
            ra.charge_compute(&who, 1).await.unwrap_err(),
            super::Error::Quota { .. }
        ));
        // One job over the whole hour's quota: 422, not a 429 to retry.
        assert!(matches!(
            ra.charge_compute(&who, 11).await.unwrap_err(),
            super::Error::OverBudget { .. }
        ));
    });
}

/// A tiled job's image, chain and key, its tiles encrypted by hand.
struct Tiled {
    kp: Keypair,
    img: PixelImage,
    chain: Vec<Filter>,
    tile_rows: usize,
}

impl Tiled {
    /// A `w`x`h` image in tiles of `tile_rows` rows.
    fn new(w: usize, h: usize, tile_rows: usize, seed: u8) -> Self {
        let data = (0..w * h)
            .map(|i| (i as u8).wrapping_mul(37).wrapping_add(seed))
            .collect();
        Tiled {
            kp: Keypair::generate_insecure_for_tests(512).unwrap(),
            img: PixelImage::new(w, h, ColorLayout::Luma8, data).unwrap(),
            chain: vec![Filter::Mean { k: 3 }],
            tile_rows,
        }
    }

    fn job(&self) -> he_filter::tiled::TiledJob<'_> {
        let opts = he_filter::encrypt_options(&self.chain).unwrap();
        he_filter::tiled::TiledJob::new(
            &self.img,
            &self.chain,
            &opts,
            self.kp.public_key(),
            &he_filter::tiled::TileOptions::default().tile_rows(self.tile_rows),
        )
        .unwrap()
    }

    /// Creates the job through `client`; returns its id and tile count.
    fn create(&self, client: &Client) -> client::Result<(String, usize)> {
        let opts = he_filter::encrypt_options(&self.chain).unwrap();
        let plan = *self.job().plan();
        let m = crate::wire::TiledManifest::new(self.chain.clone(), self.img.color(), plan, &opts);
        let st = client.create_tiled_job(&m, self.kp.public_key())?;
        Ok((st.id, plan.count()))
    }

    fn upload(
        &self,
        client: &Client,
        id: &str,
        i: usize,
    ) -> client::Result<crate::wire::JobStatus> {
        let tile = self
            .job()
            .encrypt_tile(i, self.kp.private_key(), &NoProgress)
            .unwrap()
            .bytes;
        client.upload_tile(id, i, &tile, &NoProgress)
    }

    /// Downloads tile `i` (waiting) and checks it is the chain's exact
    /// result at its rows.
    fn check(&self, client: &Client, id: &str, i: usize) {
        let out = match client
            .download_tile(id, i, Duration::from_secs(60), 1 << 20)
            .unwrap()
        {
            client::TileDownload::Ready(b) => b,
            client::TileDownload::Pending(st) => panic!("tile {i} still pending: {st:?}"),
        };
        let out =
            EncryptedImage::from_bytes(&out, self.kp.public_key(), &enc_image::Limits::default())
                .unwrap();
        let got = out.decrypt(self.kp.private_key(), &NoProgress).unwrap();
        let rows = self.job().plan().iter().nth(i).unwrap();
        let want = reference::apply_chain_rows(&self.img, &self.chain, BorderMode::Replicate, rows)
            .unwrap();
        assert_eq!(got.values(), want.values(), "tile {i}");
    }
}

fn status_code(e: &client::Error) -> u16 {
    match e {
        client::Error::Server { status, .. } => *status,
        e => panic!("expected an error status, got {e}"),
    }
}

#[test]
fn a_tiled_job_spreads_over_two_workers_and_comes_back_exact() {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    let store = redis.settings();
    let api = node(&store, Role::Api, |_| {});
    let _w1 = node(&store, Role::Worker, |_| {});
    let _w2 = node(&store, Role::Worker, |_| {});
    let client = Client::new(&api.url()).unwrap();
    assert!(client.info().unwrap().tiled_jobs);
    // 16 rows in tiles of 2: 8 tiles, each a unit of work of its own.
    let t = Tiled::new(9, 16, 2, 5);
    let (id, n) = t.create(&client).unwrap();
    assert_eq!(n, 8);
    for i in 0..n {
        t.upload(&client, &id, i).unwrap();
    }
    for i in 0..n {
        t.check(&client, &id, i);
    }
    let st = client.status(&id, Duration::ZERO).unwrap();
    assert_eq!(st.state, JobState::Done);
    assert_eq!(
        st.tiles.unwrap().states,
        vec![crate::wire::TileState::Fetched; n]
    );
    // Downloaded tiles are freed: 410 the second time.
    let e = client
        .download_tile(&id, 0, Duration::ZERO, 1 << 20)
        .unwrap_err();
    assert_eq!(status_code(&e), 410, "{e}");
    // Both workers filtered tiles of the job.
    let mut c = redis.sync_conn();
    let workers: std::collections::HashSet<String> = (0..n)
        .map(|i| {
            redis::cmd("HGET")
                .arg(format!("{}job:{id}", store.prefix))
                .arg(format!("w{i}"))
                .query::<String>(&mut c)
                .unwrap()
        })
        .collect();
    assert_eq!(workers.len(), 2, "{workers:?}");
    // A whole result is not a tiled job's, as in memory.
    assert_eq!(
        status_code(&client.result(&id, &NoProgress).unwrap_err()),
        400
    );
    client.delete(&id).unwrap();
    assert_nothing_held(&client);
}

#[test]
fn a_tile_unit_left_by_a_stopped_worker_is_claimed_and_finished() {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    let mut store = redis.settings();
    store.visibility_timeout = Duration::from_millis(600);
    let api = node(&store, Role::Api, |_| {});
    let client = Client::new(&api.url()).unwrap();
    let t = Tiled::new(6, 4, 2, 9);
    let (id, _) = t.create(&client).unwrap();
    t.upload(&client, &id, 1).unwrap();
    // A worker that reads the tile's unit and dies.
    let entry = &redis.read_as_dead_worker(&store.prefix);
    assert_eq!(entry.get::<String>("job").as_deref(), Some(id.as_str()));
    assert_eq!(entry.get::<usize>("tile"), Some(1));
    let worker = node(&store, Role::Worker, |_| {});
    t.check(&client, &id, 1);
    let s = worker.service();
    let text = s.shared.metrics.render(&s.shared.gauges());
    assert!(text.contains("\nhe_work_claimed_total 1\n"), "{text}");
    let len: usize = redis::cmd("XLEN")
        .arg(format!("{}work", store.prefix))
        .query(&mut redis.sync_conn())
        .unwrap();
    assert_eq!(len, 0, "units left in the queue");
    // Tile 0 was never sent: the job is queued, not done.
    let st = client.status(&id, Duration::ZERO).unwrap();
    assert_eq!(st.state, JobState::Queued);
    client.delete(&id).unwrap();
}

#[test]
fn deleting_a_tiled_job_frees_its_bytes_and_keys() {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    let store = redis.settings();
    let api = node(&store, Role::Api, |_| {});
    let client = Client::new(&api.url()).unwrap();
    let mut c = redis.sync_conn();
    let keys_of = |c: &mut redis::Connection, id: &str| -> Vec<String> {
        redis::cmd("KEYS")
            .arg(format!("{}*{id}*", store.prefix))
            .query(c)
            .unwrap()
    };
    let t = Tiled::new(6, 4, 2, 3);
    // No worker yet: a queued tile holds its upload's bytes and a place.
    let (id, _) = t.create(&client).unwrap();
    t.upload(&client, &id, 0).unwrap();
    let h = client.health().unwrap();
    assert_eq!((h.jobs_stored, h.jobs_in_flight), (1, 1));
    assert!(h.inflight_bytes > 0);
    assert!(!keys_of(&mut c, &id).is_empty());
    client.delete(&id).unwrap();
    assert_nothing_held(&client);
    assert!(
        keys_of(&mut c, &id).is_empty(),
        "{:?}",
        keys_of(&mut c, &id)
    );
    // Its unit is dropped by the worker, and a filtered tile's result
    // is freed by the delete.
    let _worker = node(&store, Role::Worker, |_| {});
    let (id, n) = t.create(&client).unwrap();
    for i in 0..n {
        t.upload(&client, &id, i).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.status(&id, Duration::from_secs(1)).unwrap().state != JobState::Done {
        assert!(Instant::now() < deadline, "the tiles were never filtered");
    }
    let h = client.health().unwrap();
    assert_eq!(
        (h.jobs_stored, h.jobs_in_flight, h.inflight_bytes),
        (1, 0, 0)
    );
    let held = h.stored_bytes;
    assert!(held > 0);
    let st = client.status(&id, Duration::ZERO).unwrap();
    assert_eq!(st.result_bytes, Some(held as u64));
    client.delete(&id).unwrap();
    let h = client.health().unwrap();
    assert_eq!((h.jobs_stored, h.stored_bytes, h.inflight_bytes), (0, 0, 0));
    assert!(
        keys_of(&mut c, &id).is_empty(),
        "{:?}",
        keys_of(&mut c, &id)
    );
    assert_eq!(
        status_code(&client.status(&id, Duration::ZERO).unwrap_err()),
        404
    );
}

#[test]
fn a_quota_holds_for_manifests_and_tiles_across_two_api_nodes() {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    let store = redis.settings();
    let mut tokens = super::tokens::TokenFile::default();
    let token = tokens.create("alice", 0).unwrap();
    // No worker: tiles stay queued, in flight.
    let a = node(&store, Role::Api, |c| {
        c.tokens = Some(tokens.clone());
        c.quota.stored_jobs = 1;
        c.quota.concurrent_jobs = 1;
    });
    let b = node(&store, Role::Api, |c| {
        c.quota.stored_jobs = 1;
        c.quota.concurrent_jobs = 1;
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let unknown = format!("{}/v1/jobs/{}", b.url(), "0".repeat(32));
    while agent().get(&unknown).call().unwrap().status().as_u16() != 401 {
        assert!(Instant::now() < deadline, "node b never asked for a token");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ca = Client::new(&a.url()).unwrap().with_token(&token).unwrap();
    let cb = Client::new(&b.url()).unwrap().with_token(&token).unwrap();
    let t = Tiled::new(6, 4, 2, 1);
    let (id, _) = t.create(&ca).unwrap();
    // One stored job: a second manifest, through the other node, is 429.
    match t.create(&cb).unwrap_err() {
        client::Error::Server { status, message } => {
            assert_eq!(status, 429);
            assert!(message.contains("stored_jobs"), "{message}");
        }
        e => panic!("expected 429, got {e}"),
    }
    // One tile in flight: the second, through the other node, is 429.
    t.upload(&ca, &id, 0).unwrap();
    match t.upload(&cb, &id, 1).unwrap_err() {
        client::Error::Server { status, message } => {
            assert_eq!(status, 429);
            assert!(message.contains("concurrent_jobs"), "{message}");
        }
        e => panic!("expected 429, got {e}"),
    }
    // The same tile again is 409 on either node.
    assert_eq!(status_code(&t.upload(&cb, &id, 0).unwrap_err()), 409);
    cb.delete(&id).unwrap();
    let (id, _) = t.create(&cb).unwrap();
    ca.delete(&id).unwrap();
    let h = ca.health().unwrap();
    assert_eq!(
        (h.jobs_stored, h.jobs_in_flight, h.inflight_bytes),
        (0, 0, 0)
    );
}

#[test]
fn a_tile_sent_again_after_its_download_is_charged_again() {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    let store = redis.settings();
    let t = Tiled::new(6, 4, 2, 2);
    // The manifest's charge and one tile's, as the server counts them.
    let opts = he_filter::encrypt_options(&t.chain).unwrap();
    let m = crate::wire::TiledManifest::new(t.chain.clone(), t.img.color(), *t.job().plan(), &opts);
    let framed = m.encode(&t.kp.public_key().to_bytes());
    let (spec, whole) = super::tiles::check_manifest(&Config::default(), &framed).unwrap();
    let tile = he_filter::estimate_cost(spec.expected(0), &spec.chain)
        .unwrap()
        .whole_units();
    let mut tokens = super::tokens::TokenFile::default();
    let token = tokens.create("alice", 0).unwrap();
    let node = node(&store, Role::All, |c| {
        c.tokens = Some(tokens.clone());
        c.quota.compute_per_hour = whole + tile;
    });
    let client = Client::new(&node.url())
        .unwrap()
        .with_token(&token)
        .unwrap();
    let (id, _) = t.create(&client).unwrap();
    t.upload(&client, &id, 0).unwrap();
    t.check(&client, &id, 0);
    // Sent again: its estimate is charged again, which the hour holds once.
    t.upload(&client, &id, 0).unwrap();
    t.check(&client, &id, 0);
    match t.upload(&client, &id, 0).unwrap_err() {
        client::Error::Server { status, message } => {
            assert_eq!(status, 429);
            assert!(message.contains("compute_per_hour"), "{message}");
        }
        e => panic!("expected 429, got {e}"),
    }
    // Refused before its upload: the reservation is given back (by a
    // task of the node, so soon rather than at once) and the tile is
    // fetched again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = client.health().unwrap();
        if (h.jobs_in_flight, h.inflight_bytes, h.stored_bytes) == (0, 0, 0) {
            break;
        }
        assert!(Instant::now() < deadline, "the reservation is held: {h:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = client.status(&id, Duration::ZERO).unwrap();
    assert_eq!(st.tiles.unwrap().states[0], crate::wire::TileState::Fetched);
    client.delete(&id).unwrap();
}

#[test]
fn a_tile_delivered_too_often_fails_and_may_be_sent_again() {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    let mut store = redis.settings();
    store.visibility_timeout = Duration::from_millis(300);
    store.max_deliveries = 1;
    let api = node(&store, Role::Api, |_| {});
    let client = Client::new(&api.url()).unwrap();
    let t = Tiled::new(6, 4, 2, 4);
    let (id, _) = t.create(&client).unwrap();
    t.upload(&client, &id, 0).unwrap();
    redis.read_as_dead_worker(&store.prefix);
    let _worker = node(&store, Role::Worker, |_| {});
    let e = client
        .download_tile(&id, 0, Duration::from_secs(30), 1 << 20)
        .unwrap_err();
    assert_eq!(status_code(&e), 422, "{e}");
    assert!(e.to_string().contains("1 times"), "{e}");
    let st = client.status(&id, Duration::ZERO).unwrap();
    assert_eq!(st.tiles.unwrap().states[0], crate::wire::TileState::Failed);
    assert!(st.error.unwrap_or_default().starts_with("tile 0: "));
    // Its place and bytes were given back; sent again, it is filtered.
    let h = client.health().unwrap();
    assert_eq!((h.jobs_in_flight, h.inflight_bytes), (0, 0));
    t.upload(&client, &id, 0).unwrap();
    t.check(&client, &id, 0);
    client.delete(&id).unwrap();
}
