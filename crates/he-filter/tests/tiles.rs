//! A tiled job is bit for bit the whole-image job: random sizes (1xN,
//! Nx1), tile heights down to one row, random chains, every border mode
//! and colour layout; compared with the whole-image encrypted path and
//! with the plaintext reference. And the pipeline keeps its window, stops
//! on the first error and reports its work per phase.
#![allow(clippy::unwrap_used)] // test helpers may unwrap: a panic is a test failure

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use common::{border, color, filter, image_of};
use enc_image::{
    BorderMode, ColorLayout, DecryptedImage, EncryptOptions, EncryptedImage, Layout, Limits,
    NoProgress, Phase, PixelImage, Progress, TilePlan,
};
use he_filter::tiled::{
    EncryptedTile, LocalServer, TileOptions, TileServer, TiledJob, filter_tiled,
};
use he_filter::{Error, Filter, reference};
use paillier::Keypair;
use proptest::prelude::*;

fn keypair() -> &'static Keypair {
    common::keypair(1024)
}

/// The whole-image path: one encryption, the chain, trimmed, decrypted.
fn whole(img: &PixelImage, chain: &[Filter], opts: &EncryptOptions) -> DecryptedImage {
    let kp = keypair();
    let enc = EncryptedImage::encrypt(img, kp.private_key(), opts, &NoProgress).unwrap();
    he_filter::apply_chain(&enc, kp.public_key(), chain, &NoProgress)
        .unwrap()
        .trim_halo()
        .decrypt(kp.private_key(), &NoProgress)
        .unwrap()
}

/// Whether the chain fits a 1024-bit key's plaintexts.
fn fits(chain: &[Filter]) -> bool {
    match he_filter::encrypt_options(chain) {
        Ok(opts) => match opts.layout {
            Layout::Packed { halo, slot_bits } => {
                enc_image::Geometry::total_slots(1024, slot_bits) > 4 * halo
            }
            Layout::Unpacked => true,
        },
        Err(_) => false,
    }
}

/// An image and a tile height from 1 row to a bit more than its height.
fn image_and_tile_rows() -> impl Strategy<Value = (PixelImage, usize)> {
    image_of(color()).prop_flat_map(|img| {
        let h = img.height();
        let rows = prop_oneof![Just(1usize), 1..=h + 1];
        (Just(img), rows)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn tiled_equals_the_whole_image(
        (img, tile_rows) in image_and_tile_rows(),
        chain in proptest::collection::vec(filter(), 1..=2),
        b in border(),
        window in 1usize..=3,
    ) {
        prop_assume!(fits(&chain));
        let opts = he_filter::encrypt_options(&chain).unwrap().border(b);
        let tiles = TileOptions::default().tile_rows(tile_rows).window(window);
        let got = filter_tiled(&img, &chain, keypair().private_key(), &opts, &tiles, &NoProgress).unwrap();
        prop_assert_eq!(&got, &whole(&img, &chain, &opts), "{:?} by {} rows", chain, tile_rows);
        prop_assert_eq!(&got, &reference::apply_chain(&img, &chain, b).unwrap());
    }

    #[test]
    fn grey_chains_tile_exactly(
        (img, tile_rows) in image_of(prop_oneof![Just(ColorLayout::Rgb8), Just(ColorLayout::Rgba8)])
            .prop_flat_map(|img| { let h = img.height(); (Just(img), 1..=h) }),
        before in proptest::option::of(filter()),
        b in border(),
    ) {
        let chain: Vec<Filter> = before.into_iter().chain([Filter::Grey]).collect();
        prop_assume!(fits(&chain));
        let opts = he_filter::encrypt_options(&chain).unwrap().border(b);
        let tiles = TileOptions::default().tile_rows(tile_rows);
        let got = filter_tiled(&img, &chain, keypair().private_key(), &opts, &tiles, &NoProgress).unwrap();
        prop_assert_eq!(got, reference::apply_chain(&img, &chain, b).unwrap());
    }

    /// Each decrypted tile, taken alone, is its rows of the plaintext
    /// reference of the whole image, and so is the reference of its rows.
    #[test]
    fn each_tile_is_its_rows_of_the_reference(
        (img, tile_rows) in image_and_tile_rows(),
        f in filter(),
        b in border(),
    ) {
        let chain = [f];
        prop_assume!(fits(&chain));
        let kp = keypair();
        let opts = he_filter::encrypt_options(&chain).unwrap().border(b);
        let job = TiledJob::new(&img, &chain, &opts, kp.public_key(), &TileOptions::default().tile_rows(tile_rows)).unwrap();
        let server = LocalServer::from_bytes(&kp.public_key().to_bytes(), &chain, Limits::default()).unwrap();
        let want = reference::apply_chain(&img, &chain, b).unwrap();
        let row_len = img.width() * want.color().channels();
        for index in 0..job.plan().count() {
            let up = job.encrypt_tile(index, kp.private_key(), &NoProgress).unwrap();
            let rows = up.rows.clone();
            let down = server.filter(&up.bytes, &NoProgress).unwrap();
            let tile = job.decrypt_tile(index, &down, kp.private_key(), &NoProgress).unwrap();
            prop_assert_eq!(&tile.rows, &rows);
            prop_assert_eq!(tile.image.height(), rows.len());
            prop_assert_eq!(tile.image.values(), &want.values()[rows.start * row_len..rows.end * row_len]);
            prop_assert_eq!(tile.image.scale(), want.scale());
            let alone = reference::apply_chain_rows(&img, &chain, b, rows).unwrap();
            prop_assert_eq!(&alone, &tile.image);
        }
    }

    /// The plaintext reference of each band of rows, stacked, is the
    /// reference of the whole image (no encryption: many cases).
    #[test]
    fn reference_rows_stack_to_the_whole(
        (img, tile_rows) in image_and_tile_rows(),
        chain in proptest::collection::vec(filter(), 1..=3),
        b in border(),
    ) {
        let whole = reference::apply_chain(&img, &chain, b).unwrap();
        let plan = TilePlan::new(img.width(), img.height(), tile_rows, 0).unwrap();
        let mut values = Vec::new();
        for rows in plan.iter() {
            let part = reference::apply_chain_rows(&img, &chain, b, rows).unwrap();
            prop_assert_eq!(part.scale(), whole.scale());
            values.extend_from_slice(part.values());
        }
        prop_assert_eq!(values, whole.values());
    }
}

fn photo(w: usize, h: usize, color: ColorLayout) -> PixelImage {
    let n = w * h * color.channels();
    PixelImage::new(w, h, color, (0..n).map(|i| (i * 73 % 256) as u8).collect()).unwrap()
}

#[test]
fn reference_rows_refuses_rows_outside_the_image() {
    let img = photo(3, 4, ColorLayout::Luma8);
    let chain = [Filter::Mean { k: 3 }];
    let b = BorderMode::Replicate;
    assert!(reference::apply_chain_rows(&img, &chain, b, 2..5).is_err());
    assert!(reference::apply_chain_rows(&img, &chain, b, 2..2).is_err());
    assert!(reference::apply_chain_rows(&img, &chain, b, 3..4).is_ok());
}

/// A server that checks the window: when it filters tile `i`, tiles
/// `i - window + 1` and earlier must have left the pipeline (the sink
/// counts them). Fails tile `fail_at` if asked.
struct Watching<'a> {
    inner: LocalServer,
    delivered: &'a AtomicUsize,
    window: usize,
    widest: AtomicUsize,
    fail_at: Option<usize>,
}

impl TileServer for Watching<'_> {
    type Error = Error;
    fn filter_tile(
        &self,
        tile: EncryptedTile,
        progress: &dyn Progress,
    ) -> he_filter::Result<Vec<u8>> {
        // Tiles alive: this one and those between it and the sink.
        let alive = tile.index + 1 - self.delivered.load(Ordering::SeqCst);
        assert!(
            alive <= self.window,
            "tile {} with {alive} alive",
            tile.index
        );
        self.widest.fetch_max(alive, Ordering::SeqCst);
        if self.fail_at == Some(tile.index) {
            return Err(Error::Parameter(format!("refused tile {}", tile.index)));
        }
        self.inner.filter_tile(tile, progress)
    }
}

fn watching<'a>(chain: &[Filter], delivered: &'a AtomicUsize, window: usize) -> Watching<'a> {
    let kp = keypair();
    Watching {
        inner: LocalServer::from_bytes(&kp.public_key().to_bytes(), chain, Limits::default())
            .unwrap(),
        delivered,
        window,
        widest: AtomicUsize::new(0),
        fail_at: None,
    }
}

#[test]
fn the_window_bounds_the_tiles_alive() {
    let kp = keypair();
    let img = photo(23, 30, ColorLayout::Rgb8);
    let chain = [Filter::Mean { k: 3 }];
    let opts = he_filter::encrypt_options(&chain).unwrap();
    for window in [1, 2, 3] {
        let tiles = TileOptions::default().tile_rows(3).window(window);
        let job = TiledJob::new(&img, &chain, &opts, kp.public_key(), &tiles).unwrap();
        assert_eq!(job.plan().count(), 10);
        let delivered = AtomicUsize::new(0);
        let server = watching(&chain, &delivered, window);
        let mut order = Vec::new();
        job.run(kp.private_key(), &server, &NoProgress, |tile| {
            // A slow sink lets the earlier stages run ahead, up to the window.
            std::thread::sleep(std::time::Duration::from_millis(20));
            order.push(tile.index);
            delivered.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        assert_eq!(order, (0..10).collect::<Vec<_>>());
        assert!(server.widest.load(Ordering::SeqCst) <= window);
        if window == 1 {
            assert_eq!(server.widest.load(Ordering::SeqCst), 1);
        }
    }
}

#[test]
fn the_first_error_stops_the_job() {
    let kp = keypair();
    let img = photo(11, 12, ColorLayout::Luma8);
    let chain = [Filter::Mean { k: 3 }];
    let opts = he_filter::encrypt_options(&chain).unwrap();
    let tiles = TileOptions::default().tile_rows(2);
    let job = TiledJob::new(&img, &chain, &opts, kp.public_key(), &tiles).unwrap();
    // The server fails tile 2: tiles 0 and 1 reach the sink, nothing after.
    let delivered = AtomicUsize::new(0);
    let mut server = watching(&chain, &delivered, 3);
    server.fail_at = Some(2);
    let got = Mutex::new(Vec::new());
    let err = job
        .run(kp.private_key(), &server, &NoProgress, |t| {
            got.lock().unwrap().push(t.index);
            delivered.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap_err();
    assert!(err.to_string().contains("refused tile 2"), "{err}");
    assert_eq!(*got.lock().unwrap(), vec![0, 1]);
    // The sink fails tile 1: the job stops with its error.
    let none = AtomicUsize::new(0);
    let server = watching(&chain, &none, 6);
    let err = job
        .run(kp.private_key(), &server, &NoProgress, |t| {
            if t.index == 1 {
                Err(Error::Parameter("sink full".into()))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
    assert!(err.to_string().contains("sink full"), "{err}");
}

/// A progress whose cancel flag the test sets.
#[derive(Default)]
struct Cancel(std::sync::atomic::AtomicBool);

impl Progress for Cancel {
    fn cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[test]
fn a_cancelled_job_stops_between_tiles() {
    let kp = keypair();
    let img = photo(11, 20, ColorLayout::Luma8);
    let chain = [Filter::Mean { k: 3 }];
    let opts = he_filter::encrypt_options(&chain).unwrap();
    let tiles = TileOptions::default().tile_rows(2);
    let job = TiledJob::new(&img, &chain, &opts, kp.public_key(), &tiles).unwrap();
    assert_eq!(job.plan().count(), 10);
    // Cancelled once the sink has tile 1: no later tile reaches the sink,
    // and the server stops getting tiles within the window.
    let delivered = AtomicUsize::new(0);
    let server = watching(&chain, &delivered, 3);
    let cancel = Cancel::default();
    let mut got = Vec::new();
    let err = job
        .run(kp.private_key(), &server, &cancel, |t| {
            got.push(t.index);
            delivered.fetch_add(1, Ordering::SeqCst);
            if t.index == 1 {
                cancel.0.store(true, Ordering::SeqCst);
            }
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert_eq!(got, vec![0, 1]);
    let alive = server.widest.load(Ordering::SeqCst);
    assert!(alive <= 3, "{alive} tiles alive");
    // Cancelled before it starts: no tile is encrypted or filtered.
    let none = AtomicUsize::new(0);
    let server = watching(&chain, &none, 3);
    let err = job
        .run(kp.private_key(), &server, &cancel, |_| {
            panic!("a cancelled job delivers nothing")
        })
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert_eq!(server.widest.load(Ordering::SeqCst), 0);
}

#[test]
fn results_of_another_chain_or_tile_are_refused() {
    let kp = keypair();
    let img = photo(9, 8, ColorLayout::Luma8);
    let chain = [Filter::Mean { k: 3 }];
    let opts = he_filter::encrypt_options(&chain).unwrap();
    let tiles = TileOptions::default().tile_rows(3);
    let job = TiledJob::new(&img, &chain, &opts, kp.public_key(), &tiles).unwrap();
    let pk_bytes = kp.public_key().to_bytes();
    // A server that applies another chain than the one asked for.
    let other = LocalServer::from_bytes(&pk_bytes, &[Filter::Sharpen], Limits::default()).unwrap();
    let err = job
        .run(kp.private_key(), &other, &NoProgress, |_| Ok(()))
        .unwrap_err();
    assert!(err.to_string().contains("sharpen"), "{err}");
    // Tile 2 (2 rows) returned for tile 0 (3 rows).
    let server = LocalServer::from_bytes(&pk_bytes, &chain, Limits::default()).unwrap();
    let up = job.encrypt_tile(2, kp.private_key(), &NoProgress).unwrap();
    let down = server.filter(&up.bytes, &NoProgress).unwrap();
    let err = job
        .decrypt_tile(0, &down, kp.private_key(), &NoProgress)
        .unwrap_err();
    assert!(err.to_string().contains("tile 0"), "{err}");
    assert!(
        job.decrypt_tile(2, &down, kp.private_key(), &NoProgress)
            .is_ok()
    );
    assert!(job.encrypt_tile(3, kp.private_key(), &NoProgress).is_err());
}

#[test]
fn unpacked_images_run_as_one_tile_only() {
    let kp = keypair();
    let img = photo(4, 5, ColorLayout::Luma8);
    let chain = [Filter::Mean { k: 3 }];
    let b = BorderMode::Reflect101;
    let opts = EncryptOptions::unpacked().border(b);
    let got = filter_tiled(
        &img,
        &chain,
        kp.private_key(),
        &opts,
        &TileOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(got, reference::apply_chain(&img, &chain, b).unwrap());
    let err = filter_tiled(
        &img,
        &chain,
        kp.private_key(),
        &opts,
        &TileOptions::default().tile_rows(2),
        &NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains("unpacked"), "{err}");
    let err = TiledJob::new(
        &img,
        &chain,
        &he_filter::encrypt_options(&chain).unwrap(),
        kp.public_key(),
        &TileOptions::default().window(0),
    )
    .unwrap_err();
    assert!(err.to_string().contains("window"), "{err}");
}

/// Counts the units of each phase.
#[derive(Default)]
struct Counting {
    started: Mutex<Vec<(Phase, u64)>>,
    encrypt: AtomicU64,
    filter: AtomicU64,
    decrypt: AtomicU64,
    finished: AtomicUsize,
}

impl Progress for Counting {
    fn start(&self, phase: Phase, total: u64) {
        self.started.lock().unwrap().push((phase, total));
    }
    fn advance(&self, _n: u64) {
        panic!("a pipelined job reports its phase with every unit");
    }
    fn advance_phase(&self, phase: Phase, n: u64) {
        match phase {
            Phase::Encrypt => &self.encrypt,
            Phase::Filter => &self.filter,
            Phase::Decrypt => &self.decrypt,
            other => panic!("unexpected phase {other}"),
        }
        .fetch_add(n, Ordering::SeqCst);
    }
    fn finish(&self) {
        self.finished.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn progress_reports_every_unit_of_each_phase() {
    let kp = keypair();
    let img = photo(40, 17, ColorLayout::Rgba8);
    let chain = [Filter::Gaussian { k: 3, sigma: None }, Filter::Grey];
    let opts = he_filter::encrypt_options(&chain).unwrap();
    let tiles = TileOptions::default().tile_rows(4);
    let job = TiledJob::new(&img, &chain, &opts, kp.public_key(), &tiles).unwrap();
    let totals = job.totals();
    let server =
        LocalServer::from_bytes(&kp.public_key().to_bytes(), &chain, Limits::default()).unwrap();
    let p = Counting::default();
    job.run(kp.private_key(), &server, &p, |_| Ok(())).unwrap();
    assert_eq!(
        *p.started.lock().unwrap(),
        vec![
            (Phase::Encrypt, totals.encrypt),
            (Phase::Filter, totals.filter),
            (Phase::Decrypt, totals.decrypt)
        ]
    );
    assert_eq!(p.encrypt.load(Ordering::SeqCst), totals.encrypt);
    assert_eq!(p.filter.load(Ordering::SeqCst), totals.filter);
    assert_eq!(p.decrypt.load(Ordering::SeqCst), totals.decrypt);
    assert_eq!(p.finished.load(Ordering::SeqCst), 1);
    // Five tiles of 4 rows: each encrypts its rows and 2 halo rows, so
    // more than the whole image; decryption is the image's rows only.
    let one = TiledJob::new(
        &img,
        &chain,
        &opts,
        kp.public_key(),
        &TileOptions::default(),
    )
    .unwrap()
    .totals();
    assert!(totals.encrypt > one.encrypt && totals.decrypt >= one.decrypt);
}

/// Each decrypted tile passes the spot check of its own rows, and fails
/// that of another tile's rows (a server returning the wrong tile).
#[test]
fn each_tile_is_spot_checked_against_its_rows() {
    let kp = keypair();
    let img = photo(23, 9, ColorLayout::Rgb8);
    let chain = [Filter::Mean { k: 3 }, Filter::Sharpen];
    let opts = he_filter::encrypt_options(&chain).unwrap();
    let job = TiledJob::new(
        &img,
        &chain,
        &opts,
        kp.public_key(),
        &TileOptions::default().tile_rows(3),
    )
    .unwrap();
    let server =
        LocalServer::from_bytes(&kp.public_key().to_bytes(), &chain, Limits::default()).unwrap();
    let mut tiles = Vec::new();
    job.run(kp.private_key(), &server, &NoProgress, |t| {
        tiles.push(t);
        Ok(())
    })
    .unwrap();
    let check = he_filter::SpotCheck::default();
    for t in &tiles {
        he_filter::spot_check_rows(
            &img,
            &chain,
            opts.border,
            &t.meta,
            &t.image,
            t.rows.clone(),
            &check,
        )
        .unwrap();
    }
    let e = he_filter::spot_check_rows(
        &img,
        &chain,
        opts.border,
        &tiles[0].meta,
        &tiles[0].image,
        tiles[1].rows.clone(),
        &check,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Verification(_)), "{e}");
    assert!(
        he_filter::spot_check_rows(
            &img,
            &chain,
            opts.border,
            &tiles[0].meta,
            &tiles[0].image,
            8..10,
            &check
        )
        .is_err()
    );
}

/// Running a subset of the tiles delivers those tiles only, with their
/// own totals, and refuses unknown or repeated indices before any work.
#[test]
fn a_subset_of_the_tiles_runs_alone() {
    let kp = keypair();
    let img = photo(11, 7, ColorLayout::Luma8);
    let chain = [Filter::Mean { k: 3 }];
    let opts = he_filter::encrypt_options(&chain).unwrap();
    let job = TiledJob::new(
        &img,
        &chain,
        &opts,
        kp.public_key(),
        &TileOptions::default().tile_rows(2),
    )
    .unwrap();
    let server =
        LocalServer::from_bytes(&kp.public_key().to_bytes(), &chain, Limits::default()).unwrap();
    let whole = reference::apply_chain(&img, &chain, opts.border).unwrap();
    let mut got = Vec::new();
    job.run_tiles(&[3, 1], kp.private_key(), &server, &NoProgress, |t| {
        let w = img.width();
        assert_eq!(
            t.image.values(),
            &whole.values()[t.rows.start * w..t.rows.end * w]
        );
        got.push(t.index);
        Ok(())
    })
    .unwrap();
    assert_eq!(got, [3, 1]);
    let sum = job.totals_of([0, 1, 2, 3]);
    assert_eq!(sum, job.totals());
    assert!(job.totals_of([1]).encrypt < sum.encrypt);
    for bad in [&[4][..], &[1, 1]] {
        let e = job
            .run_tiles(bad, kp.private_key(), &server, &NoProgress, |_| Ok(()))
            .unwrap_err();
        assert!(matches!(e, Error::Parameter(_)), "{e}");
    }
}

/// A local server that records which tiles it filtered.
struct Recording {
    server: LocalServer,
    seen: Mutex<Vec<usize>>,
}

impl TileServer for Recording {
    type Error = Error;
    fn filter_tile(&self, tile: EncryptedTile, progress: &dyn Progress) -> Result<Vec<u8>, Error> {
        self.seen.lock().unwrap().push(tile.index);
        self.server.filter(&tile.bytes, progress)
    }
}

#[test]
fn an_interrupted_job_resumes_with_the_remaining_tiles_only_and_exactly() {
    let kp = keypair();
    let img = photo(23, 14, ColorLayout::Rgb8);
    let chain = [Filter::Mean { k: 3 }];
    let opts = he_filter::encrypt_options(&chain).unwrap();
    let tiles = TileOptions::default().tile_rows(2);
    let job = TiledJob::new(&img, &chain, &opts, kp.public_key(), &tiles).unwrap();
    assert_eq!(job.plan().count(), 7);
    let server = Recording {
        server: LocalServer::from_bytes(&kp.public_key().to_bytes(), &chain, Limits::default())
            .unwrap(),
        seen: Mutex::new(Vec::new()),
    };
    // The first run stops after three tiles reached the sink (as if the
    // client were killed once they were saved).
    let mut done: Vec<Option<DecryptedImage>> = vec![None; 7];
    let err = job
        .run(kp.private_key(), &server, &NoProgress, |t| {
            if t.index == 3 {
                return Err(Error::Parameter("interrupted".into()));
            }
            done[t.index] = Some(t.image);
            Ok(())
        })
        .unwrap_err();
    assert!(err.to_string().contains("interrupted"), "{err}");
    let todo: Vec<usize> = (0..7).filter(|&i| done[i].is_none()).collect();
    assert_eq!(todo, vec![3, 4, 5, 6]);
    // The second run does those tiles and nothing else.
    server.seen.lock().unwrap().clear();
    let p = Counting::default();
    job.run_tiles(&todo, kp.private_key(), &server, &p, |t| {
        assert!(done[t.index].is_none(), "tile {} done twice", t.index);
        done[t.index] = Some(t.image);
        Ok(())
    })
    .unwrap();
    assert_eq!(*server.seen.lock().unwrap(), todo);
    let rest = job.totals_of(todo.iter().copied());
    let first = job.totals_of([0, 1, 2]);
    assert_eq!(rest.encrypt + first.encrypt, job.totals().encrypt);
    assert_eq!(rest.decrypt + first.decrypt, job.totals().decrypt);
    assert_eq!(p.encrypt.load(Ordering::SeqCst), rest.encrypt);
    assert_eq!(p.filter.load(Ordering::SeqCst), rest.filter);
    assert_eq!(p.decrypt.load(Ordering::SeqCst), rest.decrypt);
    assert!(rest.encrypt < job.totals().encrypt && rest.decrypt < job.totals().decrypt);
    // Together, the tiles are the whole image's result, exactly.
    let parts: Vec<DecryptedImage> = done.into_iter().map(Option::unwrap).collect();
    let values: Vec<i64> = parts.iter().flat_map(|d| d.values().to_vec()).collect();
    let whole = DecryptedImage::new(23, 14, parts[0].color(), values, parts[0].scale()).unwrap();
    assert_eq!(
        whole,
        reference::apply_chain(&img, &chain, opts.border).unwrap()
    );
    // Nothing to do is done at once; repeated tiles or tiles outside the
    // plan are refused before any work.
    job.run_tiles(&[], kp.private_key(), &server, &p, |_| {
        panic!("no tile to deliver")
    })
    .unwrap();
    for bad in [&[4, 2, 4][..], &[7]] {
        server.seen.lock().unwrap().clear();
        assert!(
            job.run_tiles(bad, kp.private_key(), &server, &NoProgress, |_| Ok(()))
                .is_err()
        );
        assert!(server.seen.lock().unwrap().is_empty());
    }
}
