//! Admission of an upload: content type, declared length, reading the
//! body within a limit and a time, and the full check of what it holds.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use enc_image::EncryptedImage;
use he_filter::Filter;
use http_body_util::BodyExt;
use paillier::PublicKey;

use super::config::Config;
use super::error::{Error, Result};
use crate::wire::{Envelope, JOB_CONTENT_TYPE};

/// A validated upload, ready to filter.
pub(super) struct Checked {
    pub(super) pk: PublicKey,
    pub(super) image: EncryptedImage,
    pub(super) chain: Vec<Filter>,
    pub(super) labels: Vec<String>,
    /// The estimated work of the chain on this image.
    pub(super) cost: he_filter::Cost,
}

pub(super) fn check_content_type(headers: &HeaderMap) -> Result<()> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case(JOB_CONTENT_TYPE) {
        Ok(())
    } else {
        Err(Error::UnsupportedMediaType(format!(
            "Content-Type is {:?}, jobs are sent as {JOB_CONTENT_TYPE}",
            ct.chars().take(80).collect::<String>()
        )))
    }
}

pub(super) fn content_length(headers: &HeaderMap) -> Result<Option<usize>> {
    headers
        .get(header::CONTENT_LENGTH)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
                .ok_or_else(|| Error::BadRequest("Content-Length is not a number".into()))
        })
        .transpose()
}

/// Reads at most `limit` bytes within `timeout`; `hint` is the declared
/// length, if any, to allocate once.
pub(super) async fn read_body(
    body: Body,
    limit: usize,
    hint: Option<usize>,
    timeout: Duration,
) -> Result<Bytes> {
    let read = async move {
        let mut body = body;
        let mut buf = Vec::with_capacity(hint.map_or(0, |n| n.min(limit)));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                // Cut by the connection layer: silent or too slow (body.rs).
                if let Some(why) = super::body::timeout_of(&e) {
                    return Error::Timeout(why);
                }
                Error::BadRequest(format!(
                    "the body ended early or could not be read ({e}) after {} bytes",
                    buf.len()
                ))
            })?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    return Err(Error::TooLarge(format!(
                        "the body exceeds the limit of {limit} bytes"
                    )));
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(Bytes::from(buf))
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| {
        Error::Timeout(format!(
            "the body did not arrive within {} s",
            timeout.as_secs()
        ))
    })?
}

/// Loads and checks everything in an upload: the envelope, the key, the
/// image against the limits and the key, and the chain against the image.
pub(super) fn validate(config: &Config, body: &[u8]) -> Result<Checked> {
    let env = Envelope::decode(body)?;
    let chain = env.spec.filters;
    if chain.is_empty() {
        return Err(Error::BadRequest("the spec names no filter".into()));
    }
    if chain.len() > config.max_chain_len {
        return Err(Error::Unprocessable(format!(
            "{} filters in the chain, at most {} allowed",
            chain.len(),
            config.max_chain_len
        )));
    }
    let pk = PublicKey::from_bytes(env.public_key)
        .map_err(|e| Error::BadRequest(format!("public key: {e}")))?;
    let image = EncryptedImage::from_bytes(env.image, &pk, &config.image_limits()).map_err(
        |e| match e {
            enc_image::Error::Limit(_) => Error::TooLarge(format!("encrypted image: {e}")),
            e => Error::BadRequest(format!("encrypted image: {e}")),
        },
    )?;
    he_filter::check_chain(image.meta(), &chain)
        .map_err(|e| Error::Unprocessable(e.to_string()))?;
    let cost = he_filter::estimate_cost(image.meta(), &chain)
        .map_err(|e| Error::Unprocessable(e.to_string()))?;
    if cost.whole_units() > config.max_job_cost {
        return Err(Error::OverBudget {
            estimate: cost.whole_units(),
            budget: config.max_job_cost,
            hint: format!(
                "{cost}; send a smaller image or tiles, a smaller kernel, or a smaller key"
            ),
        });
    }
    let labels = chain.iter().map(Filter::label).collect();
    Ok(Checked {
        pk,
        image,
        chain,
        labels,
        cost,
    })
}
