//! The filter chain of a request: what the client may ask for, the checks
//! made before any ciphertext work, and its evaluation.
//!
//! This is the one place that knows about filters; the rest of the crate
//! only calls [`label`](FilterSpec::label), [`check_chain`],
//! [`apply_chain`] and [`encrypt_options`].

use enc_image::{EncryptOptions, EncryptedImage, ImageMeta, Layout, Progress, bits_for_range};
use he_filter::Kernel;
use paillier::PublicKey;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::wire::FilterInfo;

/// One filter of a chain, as it appears in the JSON spec:
/// `{"name": "mean", "k": 3}` or
/// `{"name": "kernel", "size": 3, "weights": [0, -1, 0, -1, 5, -1, 0, -1, 0], "divisor": 1}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum FilterSpec {
    /// The `k x k` mean (box blur), k odd.
    Mean {
        /// Kernel side.
        k: usize,
    },
    /// Any square kernel of integer weights with a positive divisor
    /// (correlation, as OpenCV's `filter2D`).
    Kernel {
        /// Kernel side, odd.
        size: usize,
        /// Row-major weights, `size * size` of them.
        weights: Vec<i64>,
        /// The divisor, carried exactly as the image's public scale.
        divisor: u64,
    },
}

impl FilterSpec {
    /// The kernel this filter evaluates, checked.
    pub fn kernel(&self) -> Result<Kernel> {
        Ok(match self {
            FilterSpec::Mean { k } => Kernel::mean(*k)?,
            FilterSpec::Kernel {
                size,
                weights,
                divisor,
            } => Kernel::new(*size, weights.clone(), *divisor)?,
        })
    }

    /// The canonical name, recorded in the image's history.
    #[must_use]
    pub fn label(&self) -> String {
        match self {
            FilterSpec::Mean { k } => format!("mean {k}x{k}"),
            FilterSpec::Kernel { size, divisor, .. } => format!("kernel {size}x{size}/{divisor}"),
        }
    }
}

/// The filters a spec may name, for `GET /v1/info`.
#[must_use]
pub fn supported() -> Vec<FilterInfo> {
    vec![
        FilterInfo {
            name: "mean".into(),
            parameters: r#"{"k": odd kernel side}"#.into(),
            description: "k x k mean (box blur), OpenCV's blur".into(),
        },
        FilterInfo {
            name: "kernel".into(),
            parameters: r#"{"size": odd side, "weights": [size*size integers, row-major], "divisor": positive integer}"#
                .into(),
            description: "any integer kernel divided exactly by its divisor, OpenCV's filter2D".into(),
        },
    ]
}

/// The range of `sum w_i x_i` for `x_i` in `[lo, hi]`.
fn range_after(weights: &[i64], lo: i64, hi: i64) -> Result<(i64, i64)> {
    let (mut nlo, mut nhi) = (0i128, 0i128);
    for &w in weights {
        let (a, b) = (
            i128::from(w) * i128::from(lo),
            i128::from(w) * i128::from(hi),
        );
        nlo += a.min(b);
        nhi += a.max(b);
    }
    let fit = |v: i128| {
        i64::try_from(v).map_err(|_| Error::Unprocessable("value range overflows 64 bits".into()))
    };
    Ok((fit(nlo)?, fit(nhi)?))
}

/// The description after one kernel, checking the halo and every
/// intermediate range against the slot width, as `he_filter::apply` does.
fn after_kernel(meta: &ImageMeta, kernel: &Kernel, label: String) -> Result<ImageMeta> {
    let (lo, hi) = meta.digit_range();
    meta.check_radius(kernel.radius() as u32, &label)?;
    let (nlo, nhi) = if let Some((col, row)) = kernel.separable() {
        let (hlo, hhi) = range_after(&row, lo, hi)?;
        meta.check_digit_range(hlo, hhi, &format!("{label} (horizontal pass)"))?;
        range_after(&col, hlo, hhi)?
    } else {
        for i in 0..kernel.size() {
            let (rlo, rhi) = range_after(kernel.row(i), lo, hi)?;
            meta.check_digit_range(rlo, rhi, &format!("{label} (row {i})"))?;
        }
        range_after(kernel.weights(), lo, hi)?
    };
    let scale = meta.scale().divided_by(kernel.divisor())?;
    Ok(meta.after_filter(kernel.radius() as u32, nlo, nhi, scale, label)?)
}

/// Checks a whole chain against an image's description (halo, slot width,
/// scale) without any ciphertext work, and returns the description of the
/// result.
pub fn check_chain(meta: &ImageMeta, chain: &[FilterSpec]) -> Result<ImageMeta> {
    let mut m = meta.clone();
    for f in chain {
        m = after_kernel(&m, &f.kernel()?, f.label())?;
    }
    Ok(m)
}

/// Applies a chain, in order, on the current rayon pool.
pub fn apply_chain(
    img: &EncryptedImage,
    pk: &PublicKey,
    chain: &[FilterSpec],
    progress: &dyn Progress,
) -> Result<EncryptedImage> {
    let mut cur = img.clone();
    for f in chain {
        cur = he_filter::apply(&cur, pk, &f.kernel()?.named(f.label()), progress)?;
    }
    Ok(cur)
}

/// What the client must encrypt with for the chain to fit: the sum of the
/// radii as halo, and slots wide enough for every intermediate range.
pub fn encrypt_options(chain: &[FilterSpec]) -> Result<EncryptOptions> {
    let (mut lo, mut hi, mut halo) = (0i64, 255i64, 0u32);
    let (mut min_lo, mut max_hi) = (lo, hi);
    for f in chain {
        let k = f.kernel()?;
        halo += k.radius() as u32;
        let rows: Vec<(i64, i64)> = match k.separable() {
            Some((col, row)) => {
                let (hlo, hhi) = range_after(&row, lo, hi)?;
                let out = range_after(&col, hlo, hhi)?;
                vec![(hlo, hhi), out]
            }
            None => {
                let mut v = (0..k.size())
                    .map(|i| range_after(k.row(i), lo, hi))
                    .collect::<Result<Vec<_>>>()?;
                v.push(range_after(k.weights(), lo, hi)?);
                v
            }
        };
        for &(a, b) in &rows {
            min_lo = min_lo.min(a);
            max_hi = max_hi.max(b);
        }
        (lo, hi) = rows.last().copied().unwrap_or((lo, hi));
    }
    let slot_bits = bits_for_range(min_lo, max_hi);
    Ok(EncryptOptions {
        layout: Layout::Packed { slot_bits, halo },
        ..EncryptOptions::default()
    })
}
