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
//! - [`wire`]: the job envelope (magic, version, length-prefixed JSON
//!   spec, public key and encrypted image) and the JSON documents.
//! - [`server`]: [`Service`] (the axum router, worker pools, bounded queue,
//!   job store) and [`ServerHandle`] to run it in the background.
//! - [`client`]: [`Client`], on ureq: timeouts on every request, a
//!   deadline on every exchange, retries of refused and cut connections,
//!   and resubmission of a job the server lost in a restart (each server
//!   process has a random instance id, [`Service::instance`]).
//! - [`filters`]: the filter chain a request names (`he_filter`'s
//!   [`Filter`]), checked against the image's halo and slot width before
//!   any ciphertext work.
//!
//! `docs/SERVICE.md` at the root of the repository documents the API with
//! examples, and `docs/openapi.yaml` describes it formally.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use enc_image::{ColorLayout, EncryptedImage, Limits, NoProgress, PixelImage};
//! use he_service::{Client, Config, Filter, JobSpec, ServerHandle};
//! use std::time::Duration;
//!
//! let server = ServerHandle::start(Config { listen: "127.0.0.1:0".parse()?, ..Config::default() })?;
//! # let kp = paillier::Keypair::generate_insecure_for_tests(512)?;
//! # /*
//! let kp = paillier::Keypair::generate(3072)?;
//! # */
//! let img = PixelImage::new(8, 8, ColorLayout::Luma8, (0..64).map(|v| v * 4).collect())?;
//! let spec = JobSpec { filters: vec![Filter::Mean { k: 3 }] };
//! let opts = he_service::filters::encrypt_options(&spec.filters)?;
//! let enc = EncryptedImage::encrypt(&img, kp.private_key(), &opts, &NoProgress)?;
//!
//! let client = Client::new(&server.url())?;
//! let (out, _status) = client.filter(kp.public_key(), &spec, &enc, &Limits::default(),
//!                                    &NoProgress, Duration::from_secs(60))?;
//! let blurred = out.decrypt(kp.private_key(), &NoProgress)?.to_pixels();
//! let kernel = he_filter::Kernel::mean(3)?;
//! assert_eq!(blurred, he_filter::reference::filter(&img, &kernel, enc.meta().border()));
//! # Ok(()) }
//! ```

pub mod client;
mod config;
mod error;
pub mod filters;
mod jobs;
mod listener;
pub mod server;
pub mod wire;

pub use client::{Client, ClientOptions, JobRun, Notice};
pub use config::{Config, DEFAULT_PORT};
pub use error::{Error, Result};
pub use filters::Filter;
pub use server::{ServerHandle, Service};
pub use wire::{Envelope, JobSpec, JobState, JobStatus};

// The examples in the crate's README.md (its page on crates.io) run as doc
// tests, so that they stay true to the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
