//! Paillier primitives at 2048 and 3072 bits: key generation, encryption
//! (public key and key holder), decryption, homomorphic add and mul_plain,
//! single-threaded and as rayon batches; public-key encryption in each mode
//! (textbook, short exponent) in `public_encrypt_mode`.
//!
//! `cargo bench --bench paillier` (all), or with a filter such as
//! `cargo bench --bench paillier -- 'decrypt/'`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use paillier::{Integer, Keypair, ShortExponentEncryptor};

const SIZES: [u32; 2] = [2048, 3072];
const BATCH: usize = 64;

fn single_thread() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("thread pool")
}

/// Runs `f` `iters` times inside `pool` (one hop into the pool per sample,
/// not per iteration) and returns the time taken.
fn timed_in<R>(pool: Option<&rayon::ThreadPool>, iters: u64, f: impl Fn() -> R + Sync) -> Duration {
    let run = || {
        let t = Instant::now();
        for _ in 0..iters {
            black_box(f());
        }
        t.elapsed()
    };
    match pool {
        Some(p) => p.install(run),
        None => run(),
    }
}

/// One key pair per size, made once per run (key generation at 3072 bits
/// takes seconds, and a filtered run still calls every group).
fn keys() -> &'static [(u32, Keypair)] {
    static KEYS: std::sync::OnceLock<Vec<(u32, Keypair)>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        SIZES
            .iter()
            .map(|&bits| {
                let kp = Keypair::generate(bits).expect("keygen");
                kp.private_key().precompute();
                (bits, kp)
            })
            .collect()
    })
}

fn primitives(c: &mut Criterion) {
    let one = single_thread();
    let keys = keys();
    let m = Integer::from(123_456_789);
    let k = Integer::from(0x0100_1001u32);
    let mut g = c.benchmark_group("paillier");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (bits, kp) in keys {
        let (pk, sk) = (kp.public_key(), kp.private_key());
        let ct = sk.encrypt(&m).expect("encrypt");
        let ct2 = sk.encrypt(&k).expect("encrypt");
        let one = Some(&one);
        g.bench_function(BenchmarkId::new("encrypt_public", bits), |b| {
            b.iter_custom(|it| timed_in(one, it, || pk.encrypt(&m).expect("encrypt")))
        });
        g.bench_function(BenchmarkId::new("encrypt_key_holder", bits), |b| {
            b.iter_custom(|it| timed_in(one, it, || sk.encrypt(&m).expect("encrypt")))
        });
        g.bench_function(BenchmarkId::new("decrypt", bits), |b| {
            b.iter_custom(|it| timed_in(one, it, || sk.decrypt(&ct).expect("decrypt")))
        });
        g.bench_function(BenchmarkId::new("add", bits), |b| {
            b.iter_custom(|it| timed_in(one, it, || pk.add(&ct, &ct2)))
        });
        g.bench_function(BenchmarkId::new("mul_plain_small", bits), |b| {
            b.iter_custom(|it| timed_in(one, it, || pk.mul_plain(&ct, &k)))
        });
    }
    g.finish();
}

fn batches(c: &mut Criterion) {
    let one = single_thread();
    let keys = keys();
    let ms: Vec<Integer> = (0..BATCH as i64)
        .map(|i| Integer::from(i * 7919 - 100_000))
        .collect();
    let mut g = c.benchmark_group("paillier_batch");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4))
        .sample_size(10);
    g.throughput(Throughput::Elements(BATCH as u64));
    for (bits, kp) in keys {
        let sk = kp.private_key();
        let cts = sk.encrypt_many(&ms).expect("encrypt");
        for (threads, pool) in [("1_thread", Some(&one)), ("all_threads", None)] {
            g.bench_function(
                BenchmarkId::new(format!("encrypt_key_holder/{threads}"), bits),
                |b| {
                    b.iter_custom(|it| {
                        timed_in(pool, it, || sk.encrypt_many(&ms).expect("encrypt"))
                    })
                },
            );
            g.bench_function(BenchmarkId::new(format!("decrypt/{threads}"), bits), |b| {
                b.iter_custom(|it| timed_in(pool, it, || sk.decrypt_many(&cts).expect("decrypt")))
            });
        }
    }
    g.finish();
}

/// Public-key encryption, textbook (`r^n`) against short exponent
/// (`h_s^a` from a table): one at a time on one thread, and batches on all
/// cores. The table is built once, outside the timing.
fn public_encrypt_mode(c: &mut Criterion) {
    let one = single_thread();
    let keys = keys();
    let m = Integer::from(123_456_789);
    let ms: Vec<Integer> = (0..BATCH as i64)
        .map(|i| Integer::from(i * 7919 - 100_000))
        .collect();
    let mut g = c.benchmark_group("public_encrypt_mode");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
    for (bits, kp) in keys {
        let pk = kp.public_key();
        let short = ShortExponentEncryptor::new(pk);
        let one = Some(&one);
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("textbook/1_thread", bits), |b| {
            b.iter_custom(|it| timed_in(one, it, || pk.encrypt(&m).expect("encrypt")))
        });
        g.bench_function(BenchmarkId::new("short_exponent/1_thread", bits), |b| {
            b.iter_custom(|it| timed_in(one, it, || short.encrypt(&m).expect("encrypt")))
        });
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_function(BenchmarkId::new("textbook/all_threads", bits), |b| {
            b.iter_custom(|it| timed_in(None, it, || pk.encrypt_many(&ms).expect("encrypt")))
        });
        g.bench_function(BenchmarkId::new("short_exponent/all_threads", bits), |b| {
            b.iter_custom(|it| timed_in(None, it, || short.encrypt_many(&ms).expect("encrypt")))
        });
    }
    g.finish();
}

fn keygen(c: &mut Criterion) {
    let mut g = c.benchmark_group("paillier_keygen");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    for bits in SIZES {
        g.bench_with_input(BenchmarkId::from_parameter(bits), &bits, |b, &bits| {
            b.iter(|| Keypair::generate(bits).expect("keygen"))
        });
    }
    g.finish();
}

/// criterion's macros generate an undocumented `pub fn`: they live here,
/// where the lints that want documentation are allowed.
#[allow(missing_docs, unreachable_pub)]
mod run {
    use super::{batches, keygen, primitives, public_encrypt_mode};

    criterion::criterion_group!(benches, primitives, batches, public_encrypt_mode, keygen);
}

criterion_main!(run::benches);
