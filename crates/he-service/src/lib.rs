//! The online service: an HTTP server that filters Paillier-encrypted
//! images with public keys only, and its blocking client.
//!
//! ```text
//! client (private key)                          server (public keys, ciphertexts)
//! encrypt, frame an envelope --POST /v1/jobs-->  admit (queue), read (size limit),
//!                            <--202 {"id"}----   validate on the check pool
//! GET /v1/jobs/{id}?wait=30  <--state, progress  filter on the filter pool (rayon)
//! GET /v1/jobs/{id}/result   <--ciphertexts---   keep the result for `retention`
//! DELETE /v1/jobs/{id}; decrypt, check
//! ```
//!
//! An image too large for one upload goes as a tiled job: `POST /v1/jobs`
//! with a manifest ([`wire::TiledManifest`]), then each tile `PUT
//! /v1/jobs/{id}/tiles/{i}` (checked against the manifest, filtered as it
//! arrives) and `GET /v1/jobs/{id}/tiles/{i}` (freed once fetched);
//! `client::Client::filter_image_tiled` runs it as a pipeline.
//!
//! - [`wire`]: what both sides say, depending on neither: the job
//!   envelope (magic, version, length-prefixed JSON spec, public key and
//!   encrypted image, digest), the filter spec ([`wire::JobSpec`], a chain
//!   of `he_filter`'s `Filter`), the job status and the other JSON
//!   documents.
//! - `server` (cargo feature `server`): `Service` (the axum router,
//!   worker pools, bounded queue, job store), `ServerHandle` to run it in
//!   the background, `Config`, and `server::Error`, which answers each
//!   failure with its HTTP status.
//! - `client` (cargo feature `client`): `Client`, on ureq: timeouts on
//!   every request, a deadline on every exchange, retries of refused and
//!   cut connections, and resubmission of a job the server lost in a
//!   restart (each server process has a random instance id);
//!   `client::Error` holds no HTTP-framework type.
//!
//! Both features are on by default. A program that only talks to a
//! server depends on `he-service` with `default-features = false,
//! features = ["client"]` and builds neither axum nor tokio.
//!
//! `docs/SERVICE.md` at the root of the repository documents the API with
//! examples, and `docs/openapi.yaml` describes it formally.
//!
//! ```
//! # #[cfg(all(feature = "server", feature = "client"))]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use enc_image::{ColorLayout, EncryptedImage, NoProgress, PixelImage};
//! use he_filter::Filter;
//! use he_service::client::{Client, FilterRequest};
//! use he_service::server::{Config, ServerHandle};
//! use he_service::wire::JobSpec;
//!
//! let server = ServerHandle::start(Config { listen: "127.0.0.1:0".parse()?, ..Config::default() })?;
//! # let kp = paillier::Keypair::generate_insecure_for_tests(512)?;
//! # /*
//! let kp = paillier::Keypair::generate(3072)?;
//! # */
//! let img = PixelImage::new(8, 8, ColorLayout::Luma8, (0..64).map(|v| v * 4).collect())?;
//! let spec = JobSpec::new(vec![Filter::Mean { k: 3 }]);
//! let enc = EncryptedImage::encrypt(&img, kp.private_key(), &spec.encrypt_options()?, &NoProgress)?;
//!
//! let client = Client::new(&server.url())?;
//! let (out, _status) = client.filter(&FilterRequest::new(kp.public_key(), &spec, &enc))?;
//! let blurred = out.decrypt(kp.private_key(), &NoProgress)?.to_pixels();
//! let kernel = he_filter::Kernel::mean(3)?;
//! assert_eq!(blurred, he_filter::reference::filter(&img, &kernel, enc.meta().border()));
//! # Ok(()) }
//! # #[cfg(not(all(feature = "server", feature = "client")))]
//! # fn main() {}
//! ```

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "server")]
pub mod server;
pub mod wire;

// The examples in the crate's README.md (its page on crates.io) run as doc
// tests, so that they stay true to the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
