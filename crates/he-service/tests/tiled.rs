//! Tiled jobs through a real server (and a hostile fake one): exact
//! results for several tile heights, tile states, downloads before later
//! uploads, per-tile and per-manifest limits, tiles that do not match
//! the manifest, ownership, retention from the last activity, and wrong
//! tiles caught by the client before anything reaches the caller.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::TcpListener;
use std::sync::Mutex;
use std::time::Duration;

use enc_image::{BorderMode, ColorLayout, EncryptedImage, Limits, NoProgress, PixelImage};
use he_filter::tiled::{LocalServer, TileOptions, TiledJob};
use he_filter::{Filter, reference};
use he_service::client::{self, Client, ImageRequest, TileDownload, TiledRequest};
use he_service::server::tokens::TokenFile;
use he_service::wire::{JobSpec, JobStatus, TileState, TiledManifest};
use paillier::Keypair;

use common::*;

/// Runs `spec` on `img` through `client` tile by tile; returns the
/// decrypted values in order (exact, before the scale) and the run.
fn run_tiled(
    client: &Client,
    kp: &Keypair,
    img: &PixelImage,
    spec: &JobSpec,
    tile_rows: usize,
) -> client::Result<(Vec<i64>, client::TiledRun)> {
    let mut values = Vec::new();
    let mut rows = Vec::new();
    let request = TiledRequest {
        border: BorderMode::Reflect101,
        tiles: TileOptions::default().tile_rows(tile_rows),
        timeout: TIMEOUT,
        ..TiledRequest::new(kp, img, spec)
    };
    let run = client.filter_image_tiled(&request, |tile, report| {
        assert!(report.ciphertexts_sampled > 0);
        rows.push(tile.rows.clone());
        values.extend_from_slice(tile.image.values());
        Ok(())
    })?;
    let want: Vec<_> = run.plan.iter().collect();
    assert_eq!(rows, want, "tiles arrive in plan order");
    Ok((values, run))
}

#[test]
fn tiled_results_are_exact_for_any_tile_height_and_chain() {
    let server = server(|_| {});
    let client = Client::new(&server.url()).unwrap();
    let kp = key();
    let img = image(13, 11, ColorLayout::Rgb8, 7);
    for (chain, heights) in [
        (vec![Filter::Mean { k: 3 }], vec![1, 4, 11]),
        // Halo 2: two neighbourhood filters.
        (vec![Filter::Mean { k: 3 }, Filter::Sharpen], vec![1, 3]),
        (vec![Filter::Gaussian { k: 5, sigma: None }], vec![5]),
    ] {
        let spec = spec(chain.clone());
        let want = reference::apply_chain(&img, &chain, BorderMode::Reflect101).unwrap();
        for rows in heights {
            let (values, run) = run_tiled(&client, &kp, &img, &spec, rows).unwrap();
            assert_eq!(values, want.values(), "{chain:?} in tiles of {rows} rows");
            assert_eq!(run.ran, 11usize.div_ceil(rows));
            assert_eq!(run.stats.jobs_created, 1);
        }
    }
    // Every job was deleted at its end; nothing is held.
    let h = client.health().unwrap();
    assert_eq!((h.jobs_stored, h.stored_bytes, h.inflight_bytes), (0, 0, 0));
}

/// A manifest and its tiles, encrypted by hand, for the protocol tests.
struct Tiles {
    kp: Keypair,
    img: PixelImage,
    chain: Vec<Filter>,
    tile_rows: usize,
}

impl Tiles {
    fn new(w: usize, h: usize, tile_rows: usize) -> Self {
        Tiles {
            kp: key(),
            img: image(w, h, ColorLayout::Luma8, 3),
            chain: vec![Filter::Mean { k: 3 }],
            tile_rows,
        }
    }
    fn job(&self) -> TiledJob<'_> {
        let opts = he_filter::encrypt_options(&self.chain).unwrap();
        TiledJob::new(
            &self.img,
            &self.chain,
            &opts,
            self.kp.public_key(),
            &TileOptions::default().tile_rows(self.tile_rows),
        )
        .unwrap()
    }
    fn manifest(&self) -> TiledManifest {
        let opts = he_filter::encrypt_options(&self.chain).unwrap();
        TiledManifest::new(
            self.chain.clone(),
            self.img.color(),
            *self.job().plan(),
            &opts,
        )
    }
    fn tile(&self, i: usize) -> Vec<u8> {
        self.job()
            .encrypt_tile(i, self.kp.private_key(), &NoProgress)
            .unwrap()
            .bytes
    }
}

fn states(client: &Client, id: &str) -> Vec<TileState> {
    client
        .status(id, Duration::ZERO)
        .unwrap()
        .tiles
        .unwrap()
        .states
}

fn status_of(e: &client::Error) -> u16 {
    match e {
        client::Error::Server { status, .. } => *status,
        e => panic!("expected an error status, got {e}"),
    }
}

fn ready(d: TileDownload) -> Vec<u8> {
    match d {
        TileDownload::Ready(b) => b,
        TileDownload::Pending(st) => panic!("still pending: {st:?}"),
    }
}

#[test]
fn tiles_are_uploaded_checked_and_downloaded_one_by_one() {
    let mut tokens = TokenFile::default();
    let alice = tokens.create("alice", 1).unwrap();
    let bob = tokens.create("bob", 2).unwrap();
    let server = server(|c| c.tokens = Some(tokens));
    let client = Client::new(&server.url())
        .unwrap()
        .with_token(&alice)
        .unwrap();
    let other = Client::new(&server.url())
        .unwrap()
        .with_token(&bob)
        .unwrap();
    // 10 rows in tiles of 4: 4, 4 and 2 rows.
    let t = Tiles::new(9, 10, 4);
    let job = client
        .create_tiled_job(&t.manifest(), t.kp.public_key())
        .unwrap();
    let id = job.id.clone();
    assert_eq!(job.tiles.as_ref().unwrap().states, [TileState::Missing; 3]);
    assert_eq!(
        (job.tiles.unwrap().tile_rows, job.width, job.height),
        (4, 9, 10)
    );

    // Tile 0 goes up and comes back before the others are even encrypted.
    client.upload_tile(&id, 0, &t.tile(0), &NoProgress).unwrap();
    let e = client
        .upload_tile(&id, 0, &t.tile(0), &NoProgress)
        .unwrap_err();
    assert!(matches!(status_of(&e), 409), "{e}");
    let out = ready(client.download_tile(&id, 0, TIMEOUT, 1 << 20).unwrap());
    assert_eq!(
        states(&client, &id),
        [TileState::Fetched, TileState::Missing, TileState::Missing]
    );
    let out = EncryptedImage::from_bytes(&out, t.kp.public_key(), &Limits::default()).unwrap();
    let got = out.decrypt(t.kp.private_key(), &NoProgress).unwrap();
    let want = reference::apply_chain_rows(&t.img, &t.chain, BorderMode::Replicate, 0..4).unwrap();
    assert_eq!(got.values(), want.values());
    // Freed once downloaded: 410, and it may be uploaded again.
    let e = client
        .download_tile(&id, 0, Duration::ZERO, 1 << 20)
        .unwrap_err();
    assert_eq!(status_of(&e), 410, "{e}");
    // A missing tile: 409; past the plan: 404.
    let e = client
        .download_tile(&id, 1, Duration::ZERO, 1 << 20)
        .unwrap_err();
    assert_eq!(status_of(&e), 409, "{e}");
    let e = client
        .upload_tile(&id, 3, &t.tile(2), &NoProgress)
        .unwrap_err();
    assert_eq!(status_of(&e), 404, "{e}");

    // Another token sees nothing of the job.
    for e in [
        other.status(&id, Duration::ZERO).unwrap_err(),
        other
            .upload_tile(&id, 1, &t.tile(1), &NoProgress)
            .unwrap_err(),
        other
            .download_tile(&id, 0, Duration::ZERO, 1 << 20)
            .unwrap_err(),
    ] {
        assert_eq!(status_of(&e), 404, "{e}");
    }

    // Tiles that do not match the manifest: another tile's rows (the last
    // tile is 2 rows high), another key, another chain's encryption.
    let e = client
        .upload_tile(&id, 2, &t.tile(1), &NoProgress)
        .unwrap_err();
    assert_eq!(status_of(&e), 422, "{e}");
    assert!(
        e.to_string().contains("does not match the job's manifest"),
        "{e}"
    );
    assert!(e.to_string().contains("9x4, the tile is 9x2"), "{e}");
    let stranger = Tiles::new(9, 10, 4);
    let e = client
        .upload_tile(&id, 1, &stranger.tile(1), &NoProgress)
        .unwrap_err();
    assert!(matches!(status_of(&e), 400 | 422), "{e}");
    let wider = Tiles {
        chain: vec![Filter::Mean { k: 5 }],
        ..Tiles::new(9, 10, 4)
    };
    let wider = Tiles {
        kp: t.kp.clone(),
        ..wider
    };
    let e = client
        .upload_tile(&id, 1, &wider.tile(1), &NoProgress)
        .unwrap_err();
    assert_eq!(status_of(&e), 422, "{e}");
    assert!(e.to_string().contains("packing or halo"), "{e}");
    assert_eq!(states(&client, &id)[1..], [TileState::Missing; 2]);
    // Not an encrypted image at all: 400; another content type: 415.
    let e = client
        .upload_tile(&id, 1, b"not a tile", &NoProgress)
        .unwrap_err();
    assert_eq!(status_of(&e), 400, "{e}");

    // The rest, then everything is done and the job can go.
    for i in 1..3 {
        client.upload_tile(&id, i, &t.tile(i), &NoProgress).unwrap();
    }
    for i in 1..3 {
        ready(client.download_tile(&id, i, TIMEOUT, 1 << 20).unwrap());
    }
    let st = client.status(&id, Duration::ZERO).unwrap();
    assert_eq!(st.state, he_service::wire::JobState::Done);
    assert_eq!(st.tiles.unwrap().states, [TileState::Fetched; 3]);
    client.delete(&id).unwrap();
    assert_eq!(
        status_of(&client.status(&id, Duration::ZERO).unwrap_err()),
        404
    );
    let h = client.health().unwrap();
    assert_eq!((h.jobs_stored, h.stored_bytes, h.inflight_bytes), (0, 0, 0));
}

#[test]
fn limits_apply_per_tile_and_per_manifest() {
    // A tile of 4 rows of a 300-pixel-wide RGB image at 512 bits is about
    // 12 KiB of ciphertexts; the body limit is 100 KiB.
    let small = server(|c| c.max_body_bytes = 100 << 10);
    let client = Client::new(&small.url()).unwrap();
    let t = Tiles {
        img: image(300, 40, ColorLayout::Rgb8, 5),
        ..Tiles::new(1, 1, 4)
    };
    let id = client
        .create_tiled_job(&t.manifest(), t.kp.public_key())
        .unwrap()
        .id;
    // A tile upload over the body limit: 413 before it is read.
    let e = client
        .upload_tile(&id, 0, &vec![0u8; 200 << 10], &NoProgress)
        .unwrap_err();
    assert_eq!(status_of(&e), 413, "{e}");
    client.upload_tile(&id, 0, &t.tile(0), &NoProgress).unwrap();
    // Tiles of the whole height would not fit in one upload: 413 at once.
    let whole = Tiles { tile_rows: 40, ..t };
    let e = client
        .create_tiled_job(&whole.manifest(), whole.kp.public_key())
        .unwrap_err();
    assert_eq!(status_of(&e), 413, "{e}");
    assert!(e.to_string().contains("use fewer rows per tile"), "{e}");

    // The manifest's estimate of the whole job is held to the budget.
    let poor = server(|c| c.max_job_cost = 0);
    let client = Client::new(&poor.url()).unwrap();
    let e = client
        .create_tiled_job(&whole.manifest(), whole.kp.public_key())
        .unwrap_err();
    assert_eq!(status_of(&e), 422, "{e}");
    assert!(e.to_string().contains("over budget"), "{e}");
}

#[test]
fn retention_counts_from_the_last_activity() {
    let server = server(|c| c.retention = Duration::from_secs(4));
    let client = Client::new(&server.url()).unwrap();
    let t = Tiles::new(8, 6, 2);
    let id = client
        .create_tiled_job(&t.manifest(), t.kp.public_key())
        .unwrap()
        .id;
    // Activity every 1.5 s keeps the job past its retention of 4 s.
    for i in 0..3 {
        std::thread::sleep(Duration::from_millis(1500));
        client.upload_tile(&id, i, &t.tile(i), &NoProgress).unwrap();
    }
    let st = client.status(&id, Duration::ZERO).unwrap();
    assert!(st.expires_in_seconds.is_none_or(|s| s <= 4), "{st:?}");
    // Then idle: gone once the retention has passed.
    let idle = std::time::Instant::now();
    let e = loop {
        match client.status(&id, Duration::ZERO) {
            Err(e) => break e,
            Ok(_) => assert!(idle.elapsed() < Duration::from_secs(15), "never expired"),
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status_of(&e), 404, "{e}");
    assert!(
        idle.elapsed() >= Duration::from_secs(3),
        "{:?}",
        idle.elapsed()
    );
}

#[test]
fn an_image_too_large_for_one_upload_goes_through_in_tiles() {
    let server = server(|c| c.max_body_bytes = 64 << 10);
    let client = Client::new(&server.url()).unwrap();
    let kp = key();
    let img = image(120, 64, ColorLayout::Rgb8, 11);
    let spec = spec(vec![Filter::Mean { k: 3 }]);
    // One upload is over the limit.
    let e = client
        .filter_image(&ImageRequest::new(&kp, &img, &spec))
        .unwrap_err();
    assert_eq!(status_of(&e), 413, "{e}");
    let (values, run) = run_tiled(&client, &kp, &img, &spec, 8).unwrap();
    let want = reference::apply_chain(&img, &spec.filters, BorderMode::Reflect101).unwrap();
    assert_eq!(values, want.values());
    assert_eq!(run.ran, 8);
    assert!(run.stats.uploaded > 64 << 10, "{:?}", run.stats);
}

/// How the fake server lies about tile results.
#[derive(Clone, Copy, Debug)]
enum Lie {
    /// Tile i > 0 answered with tile i - 1's result.
    PreviousTile,
    /// One ciphertext of tile 1 replaced by another of the same tile.
    ChangedCiphertext,
}

/// A fake server that speaks the tiled protocol, filters honestly with
/// the manifest's key and chain, and lies as told.
fn hostile(lie: Lie) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let filter: Mutex<Option<(LocalServer, usize, Vec<u8>)>> = Mutex::new(None);
        let results: Mutex<Vec<Option<Vec<u8>>>> = Mutex::new(Vec::new());
        let status = |tiles: usize| JobStatus {
            id: "0123456789abcdef0123456789abcdef".into(),
            instance: "0123456789abcdef".into(),
            state: he_service::wire::JobState::Queued,
            filters: vec![],
            width: 0,
            height: 0,
            key_bits: 512,
            ciphertexts: 0,
            progress_done: 0,
            progress_total: 0,
            validate_seconds: 0.0,
            queued_seconds: None,
            filter_seconds: None,
            result_bytes: None,
            expires_in_seconds: None,
            error: None,
            tiles: Some(he_service::wire::TilesStatus {
                tile_rows: 1,
                halo_rows: 1,
                states: vec![TileState::Missing; tiles],
            }),
        };
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let Some((line, body)) = read_request(&mut conn) else {
                continue;
            };
            let (code, ctype, answer): (u16, &str, Vec<u8>) = if line.starts_with("post") {
                let (m, key) = TiledManifest::decode(&body).unwrap();
                let n = m.plan.count();
                let local = LocalServer::from_bytes(key, &m.filters, Limits::default()).unwrap();
                *filter.lock().unwrap() = Some((local, n, key.to_vec()));
                *results.lock().unwrap() = vec![None; n];
                (
                    201,
                    "application/json",
                    serde_json::to_vec(&status(n)).unwrap(),
                )
            } else {
                let index: usize = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.split("/tiles/").nth(1))
                    .and_then(|p| p.split('?').next())
                    .and_then(|p| p.parse().ok())
                    .unwrap();
                let guard = filter.lock().unwrap();
                let (server, n, key) = guard.as_ref().unwrap();
                if line.starts_with("put") {
                    let out = server.filter(&body, &NoProgress).unwrap();
                    results.lock().unwrap()[index] = Some(out);
                    (
                        202,
                        "application/json",
                        serde_json::to_vec(&status(*n)).unwrap(),
                    )
                } else {
                    let r = results.lock().unwrap();
                    let honest = r[index].clone().unwrap();
                    let out = match lie {
                        Lie::PreviousTile if index > 0 => r[index - 1].clone().unwrap(),
                        Lie::ChangedCiphertext if index == 1 => {
                            let pk = paillier::PublicKey::from_bytes(key).unwrap();
                            let img = EncryptedImage::from_bytes(&honest, &pk, &Limits::default())
                                .unwrap();
                            let mut c = img.ciphertexts().to_vec();
                            let last = c.len() - 1;
                            c.swap(0, last);
                            EncryptedImage::from_parts(img.meta().clone(), c)
                                .unwrap()
                                .to_bytes()
                        }
                        _ => honest,
                    };
                    (200, "application/vnd.he-toolkit.image", out)
                }
            };
            use std::io::Write;
            let head = format!(
                "HTTP/1.1 {code} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                answer.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&answer);
        }
    });
    url
}

#[test]
fn a_wrong_tile_from_the_server_is_caught_before_the_caller_sees_it() {
    for lie in [Lie::PreviousTile, Lie::ChangedCiphertext] {
        let url = hostile(lie);
        let client = Client::new(&url).unwrap().on_notice(|_| {});
        let kp = key();
        let img = image(20, 8, ColorLayout::Rgb8, 9);
        let spec = spec(vec![Filter::Mean { k: 3 }]);
        let mut delivered = Vec::new();
        let request = TiledRequest {
            tiles: TileOptions::default().tile_rows(2),
            timeout: TIMEOUT,
            ..TiledRequest::new(&kp, &img, &spec)
        };
        let e = client
            .filter_image_tiled(&request, |tile, _| {
                delivered.push(tile.index);
                Ok(())
            })
            .unwrap_err();
        assert!(matches!(e, client::Error::Verification(_)), "{lie:?}: {e}");
        assert_eq!(
            delivered,
            [0],
            "{lie:?}: only the honest tile reached the caller"
        );
    }
}

#[test]
fn an_interrupted_job_resumes_from_the_tiles_it_lacks() {
    let server = server(|_| {});
    let notices = std::sync::Arc::new(Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&notices);
    let client = Client::new(&server.url())
        .unwrap()
        .on_notice(move |n| seen.lock().unwrap().push(n.to_string()));
    let kp = key();
    let img = image(10, 9, ColorLayout::Rgb8, 4);
    let spec = spec(vec![Filter::Mean { k: 3 }]);
    let want = reference::apply_chain(&img, &spec.filters, BorderMode::Replicate).unwrap();
    let row = |r: std::ops::Range<usize>| want.values()[r.start * 30..r.end * 30].to_vec();
    let jobs = Mutex::new(Vec::new());
    let on_job = |st: &JobStatus| jobs.lock().unwrap().push(st.id.clone());
    let base = TiledRequest {
        tiles: TileOptions::default().tile_rows(2),
        timeout: TIMEOUT,
        on_job: &on_job,
        ..TiledRequest::new(&kp, &img, &spec)
    };
    // Interrupted after two tiles (the sink gives up on the third).
    let mut held = Vec::new();
    let e = client
        .filter_image_tiled(&base, |tile, _| {
            if held.len() == 2 {
                return Err(client::Error::Options("interrupted".into()));
            }
            held.push(tile.index);
            assert_eq!(tile.image.values(), row(tile.rows.clone()));
            Ok(())
        })
        .unwrap_err();
    assert!(e.to_string().contains("interrupted"), "{e}");
    assert_eq!(held, [0, 1]);
    let id = jobs.lock().unwrap()[0].clone();
    // The job is still there, with its tiles' states.
    let st = client.status(&id, Duration::ZERO).unwrap();
    assert_eq!(st.tiles.unwrap().states[..2], [TileState::Fetched; 2]);
    // Resumed on the same job: only the missing tiles run.
    let mut rest = Vec::new();
    let resumed = TiledRequest {
        job: Some(&id),
        skip: &held,
        ..base
    };
    let run = client
        .filter_image_tiled(&resumed, |tile, _| {
            assert_eq!(tile.image.values(), row(tile.rows.clone()));
            rest.push(tile.index);
            Ok(())
        })
        .unwrap();
    assert_eq!(
        (rest, run.ran, run.job.unwrap().id.as_str()),
        (vec![2, 3, 4], 3, id.as_str())
    );
    assert_eq!(run.stats.jobs_created, 0);
    // A job the server no longer knows: a new one, for the missing tiles only.
    let mut rest = Vec::new();
    let run = client
        .filter_image_tiled(
            &TiledRequest {
                skip: &[0, 2, 3],
                ..resumed
            },
            |tile, _| {
                assert_eq!(tile.image.values(), row(tile.rows.clone()));
                rest.push(tile.index);
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(rest, [1, 4]);
    assert_eq!(run.stats.jobs_created, 1);
    assert_ne!(run.job.unwrap().id, id);
    assert_eq!(jobs.lock().unwrap().len(), 2);
    assert!(
        notices.lock().unwrap().iter().any(|n| n.contains(&id)),
        "{:?}",
        notices.lock().unwrap()
    );
    // Every tile already held: nothing is sent, not even to a server
    // that is gone, and no job is opened or charged.
    let gone = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dead = Client::new(&format!("http://{gone}")).unwrap();
    let run = dead
        .filter_image_tiled(
            &TiledRequest {
                skip: &[0, 1, 2, 3, 4],
                ..resumed
            },
            |tile, _| panic!("tile {} ran", tile.index),
        )
        .unwrap();
    assert_eq!((run.ran, run.job), (0, None));
    // Attaching to a job of another image is refused.
    let job = client
        .create_tiled_job(
            &TiledManifest::new(
                spec.filters.clone(),
                ColorLayout::Rgb8,
                enc_image::TilePlan::new(10, 7, 2, 1).unwrap(),
                &he_filter::encrypt_options(&spec.filters).unwrap(),
            ),
            kp.public_key(),
        )
        .unwrap();
    let e = client
        .filter_image_tiled(
            &TiledRequest {
                job: Some(&job.id),
                ..base
            },
            |_, _| Ok(()),
        )
        .unwrap_err();
    assert!(matches!(e, client::Error::Protocol(_)), "{e}");
}

/// A tile sent again after its result was fetched is filtered again, so
/// it is charged again: the manifest's charge covered each tile once, and
/// re-uploads cannot turn one job within budget into unbounded compute.
#[test]
fn a_tile_sent_again_is_charged_again() {
    let server = server(|c| c.quota.compute_per_hour = 3);
    let client = Client::new(&server.url()).unwrap();
    let t = Tiles::new(4, 6, 2);
    let id = client
        .create_tiled_job(&t.manifest(), t.kp.public_key())
        .unwrap()
        .id;
    let tile = t.tile(0);
    let mut refused = None;
    for round in 0..6 {
        match client.upload_tile(&id, 0, &tile, &NoProgress) {
            Ok(_) => {
                ready(client.download_tile(&id, 0, TIMEOUT, 1 << 20).unwrap());
            }
            Err(e) => {
                refused = Some((round, status_of(&e)));
                break;
            }
        }
    }
    // The manifest took 1 unit (round 0's first upload is in it) and each
    // upload again 1: rounds 1 and 2 fill the quota of 3, round 3 is over.
    assert_eq!(refused, Some((3, 429)), "re-uploads were not charged");
    client.delete(&id).unwrap();
}
