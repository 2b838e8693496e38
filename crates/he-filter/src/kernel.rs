//! Kernels: square integer weights with a public divisor.

use enc_image::gcd;

use crate::error::{Error, Result};

/// Largest accepted kernel side.
pub const MAX_KERNEL_SIZE: usize = 63;
/// Largest accepted absolute weight.
pub const MAX_WEIGHT: i64 = 1 << 24;

/// A `k x k` kernel (k odd) of integer weights and a positive divisor.
///
/// Filtering computes, for every pixel, the correlation
/// `out(x, y) = sum_{i,j} w[i][j] * in(x + j - r, y + i - r) / divisor`
/// with `r = k / 2` (as OpenCV's `filter2D`), with the image's border mode.
/// The division is exact: it becomes the image's public scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    size: usize,
    weights: Vec<i64>,
    divisor: u64,
    name: String,
    /// Whether a separable kernel may run as two 1-D passes.
    one_d_passes: bool,
}

impl Kernel {
    /// A kernel from row-major weights. `size` must be odd (1 to 63),
    /// `weights.len() == size * size`, `divisor > 0`, `|w| <= 2^24`.
    pub fn new(size: usize, weights: Vec<i64>, divisor: u64) -> Result<Self> {
        if size == 0 || size.is_multiple_of(2) || size > MAX_KERNEL_SIZE {
            return Err(Error::Kernel(format!(
                "size must be odd, 1 to {MAX_KERNEL_SIZE}; got {size}"
            )));
        }
        if weights.len() != size * size {
            return Err(Error::Kernel(format!(
                "a {size}x{size} kernel needs {} weights, got {}",
                size * size,
                weights.len()
            )));
        }
        if divisor == 0 {
            return Err(Error::Kernel("divisor must be positive".into()));
        }
        if let Some(w) = weights
            .iter()
            .find(|w| w.unsigned_abs() > MAX_WEIGHT.unsigned_abs())
        {
            return Err(Error::Kernel(format!(
                "weight {w} exceeds the limit of {MAX_WEIGHT} in absolute value"
            )));
        }
        let name = format!("kernel {size}x{size}/{divisor}");
        Ok(Kernel {
            size,
            weights,
            divisor,
            name,
            one_d_passes: true,
        })
    }

    /// The separable kernel `column x row` (outer product: weight `(i, j)`
    /// is `column[i] * row[j]`) with a divisor. Both vectors have the same
    /// odd length.
    pub fn outer(column: &[i64], row: &[i64], divisor: u64) -> Result<Self> {
        if column.len() != row.len() {
            return Err(Error::Kernel(format!(
                "column ({}) and row ({}) weights differ in length",
                column.len(),
                row.len()
            )));
        }
        let k = row.len();
        if k == 0 || k.is_multiple_of(2) || k > MAX_KERNEL_SIZE {
            return Err(Error::Kernel(format!(
                "size must be odd, 1 to {MAX_KERNEL_SIZE}; got {k}"
            )));
        }
        let mut weights = Vec::with_capacity(k * k);
        for &c in column {
            for &r in row {
                let w = c
                    .checked_mul(r)
                    .filter(|w| w.unsigned_abs() <= MAX_WEIGHT.unsigned_abs())
                    .ok_or_else(|| {
                        Error::Kernel(format!(
                            "weight {c} x {r} exceeds the limit of {MAX_WEIGHT} in absolute value"
                        ))
                    })?;
                weights.push(w);
            }
        }
        Kernel::new(k, weights, divisor)
    }

    /// The same kernel, always evaluated as a full `k x k` kernel even when
    /// it is separable (for measuring what the 1-D passes save).
    #[must_use]
    pub fn without_1d_passes(mut self) -> Self {
        self.one_d_passes = false;
        self
    }

    /// Reads a kernel from text: `k` lines of `k` whitespace-separated
    /// integer weights, then optionally a line `divisor D`; `#` starts a
    /// comment, blank lines are ignored. Without a divisor line the divisor
    /// is 1.
    ///
    /// ```
    /// let k = he_filter::Kernel::parse_text("# blur\n1 2 1\n2 4 2\n1 2 1\ndivisor 16\n")?;
    /// assert_eq!((k.size(), k.divisor()), (3, 16));
    /// # Ok::<(), he_filter::Error>(())
    /// ```
    pub fn parse_text(text: &str) -> Result<Self> {
        if text.len() > 1 << 20 {
            return Err(Error::Kernel("kernel file larger than 1 MiB".into()));
        }
        let mut rows: Vec<Vec<i64>> = Vec::new();
        let mut divisor = None;
        for (no, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let at = |msg: String| Error::Kernel(format!("line {}: {msg}", no + 1));
            if let Some(d) = line.strip_prefix("divisor") {
                if divisor.is_some() {
                    return Err(at("a second divisor line".into()));
                }
                let d = d.trim();
                divisor =
                    Some(d.parse::<u64>().ok().filter(|&d| d > 0).ok_or_else(|| {
                        at(format!("divisor must be a positive integer, got {d:?}"))
                    })?);
                continue;
            }
            if divisor.is_some() {
                return Err(at("weights after the divisor line".into()));
            }
            if rows.len() >= MAX_KERNEL_SIZE {
                return Err(at(format!("more than {MAX_KERNEL_SIZE} rows")));
            }
            let row = line
                .split_whitespace()
                .map(|t| {
                    t.parse::<i64>()
                        .map_err(|_| at(format!("{t:?} is not an integer weight")))
                })
                .collect::<Result<Vec<_>>>()?;
            if let Some(first) = rows.first()
                && first.len() != row.len()
            {
                return Err(at(format!(
                    "{} weights, but the first row has {}",
                    row.len(),
                    first.len()
                )));
            }
            rows.push(row);
        }
        let k = rows.len();
        if k == 0 {
            return Err(Error::Kernel("no weights found".into()));
        }
        if rows[0].len() != k {
            return Err(Error::Kernel(format!(
                "the kernel must be square: {k} rows of {} weights",
                rows[0].len()
            )));
        }
        Kernel::new(k, rows.concat(), divisor.unwrap_or(1))
    }

    /// The `k x k` mean (box) filter: all weights 1, divisor `k^2`
    /// (OpenCV's `blur`).
    pub fn mean(k: usize) -> Result<Self> {
        if k == 0 || k.is_multiple_of(2) || k > MAX_KERNEL_SIZE {
            return Err(Error::Kernel(format!(
                "mean filter size must be odd, 1 to {MAX_KERNEL_SIZE}; got {k}"
            )));
        }
        Ok(Kernel::new(k, vec![1; k * k], (k * k) as u64)?.named(format!("mean {k}x{k}")))
    }

    /// Sets the name recorded in the image's history.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The name recorded in the image's history.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Side length.
    #[must_use]
    pub fn size(&self) -> usize {
        self.size
    }
    /// `size / 2`.
    #[must_use]
    pub fn radius(&self) -> usize {
        self.size / 2
    }
    /// Divisor.
    #[must_use]
    pub fn divisor(&self) -> u64 {
        self.divisor
    }
    /// Row-major weights.
    #[must_use]
    pub fn weights(&self) -> &[i64] {
        &self.weights
    }
    /// Weight at row `i`, column `j`.
    #[must_use]
    pub fn weight(&self, i: usize, j: usize) -> i64 {
        self.weights[i * self.size + j]
    }
    /// Row `i` of the weights.
    #[must_use]
    pub fn row(&self, i: usize) -> &[i64] {
        &self.weights[i * self.size..(i + 1) * self.size]
    }

    /// If the kernel is an outer product `column x row` of integer vectors,
    /// those vectors (so it can run as two cheaper 1-D passes).
    #[must_use]
    pub fn separable(&self) -> Option<(Vec<i64>, Vec<i64>)> {
        if !self.one_d_passes {
            return None;
        }
        let k = self.size;
        let Some(r0) = (0..k).find(|&i| self.row(i).iter().any(|&w| w != 0)) else {
            return Some((vec![0; k], vec![0; k]));
        };
        let g = self
            .row(r0)
            .iter()
            .fold(0u64, |g, &w| gcd(g.into(), w.unsigned_abs().into()) as u64);
        let row: Vec<i64> = self.row(r0).iter().map(|&w| w / g as i64).collect();
        let j0 = row.iter().position(|&w| w != 0)?;
        let mut col = Vec::with_capacity(k);
        for i in 0..k {
            let ri = self.row(i);
            if ri[j0] % row[j0] != 0 {
                return None;
            }
            let c = ri[j0] / row[j0];
            if ri.iter().zip(&row).any(|(&a, &b)| a != c * b) {
                return None;
            }
            col.push(c);
        }
        Some((col, row))
    }
}

impl Kernel {
    /// If the kernel is `alpha * delta + column x row` (a separable kernel
    /// plus a multiple of the identity at the centre, as an unsharp mask
    /// `(1 + a) x - a B x` is) with `alpha != 0` and the kernel itself not
    /// separable: `(alpha, column, row)`, so that it can run as two 1-D
    /// passes and one short exponentiation of the centre.
    #[must_use]
    pub fn separable_plus_centre(&self) -> Option<(i64, Vec<i64>, Vec<i64>)> {
        let k = self.size;
        let r = k / 2;
        if !self.one_d_passes || k < 3 || self.separable().is_some() {
            return None;
        }
        // A row other than the centre's fixes the row vector; a column
        // other than the centre's, where that row is non-zero, the column.
        let i0 = (0..k).find(|&i| i != r && self.row(i).iter().any(|&w| w != 0))?;
        let g = self
            .row(i0)
            .iter()
            .fold(0u64, |g, &w| gcd(g.into(), w.unsigned_abs().into()) as u64);
        let row: Vec<i64> = self.row(i0).iter().map(|&w| w / g as i64).collect();
        let j0 = (0..k).find(|&j| j != r && row[j] != 0)?;
        let mut col = Vec::with_capacity(k);
        for i in 0..k {
            let w = self.weight(i, j0);
            if w % row[j0] != 0 {
                return None;
            }
            col.push(w / row[j0]);
        }
        for (i, &c) in col.iter().enumerate() {
            for (j, &w) in row.iter().enumerate() {
                if (i, j) != (r, r) && self.weight(i, j) != c * w {
                    return None;
                }
            }
        }
        let alpha = self.weight(r, r) - col[r] * row[r];
        (alpha != 0).then_some((alpha, col, row))
    }
}

/// The range of `sum w_i x_i` for `x_i` in `[lo, hi]` (`lo <= 0 <= hi`).
/// Subsets of the terms (partial windows at chunk edges) stay inside it.
pub(crate) fn range_after(weights: &[i64], lo: i64, hi: i64) -> Result<(i64, i64)> {
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
        i64::try_from(v).map_err(|_| Error::Kernel("value range overflows 64 bits".into()))
    };
    Ok((fit(nlo)?, fit(nhi)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_separable_kernels() {
        let sobel_x = Kernel::new(3, vec![-1, 0, 1, -2, 0, 2, -1, 0, 1], 1).unwrap();
        let (c, r) = sobel_x.separable().unwrap();
        assert_eq!((c, r), (vec![1, 2, 1], vec![-1, 0, 1]));
        let mean = Kernel::mean(5).unwrap();
        assert_eq!(mean.separable().unwrap(), (vec![1; 5], vec![1; 5]));
        let laplacian = Kernel::new(3, vec![0, 1, 0, 1, -4, 1, 0, 1, 0], 1).unwrap();
        assert_eq!(laplacian.separable(), None);
        let scaled = Kernel::new(3, vec![2, 4, 2, 0, 0, 0, -3, -6, -3], 1).unwrap();
        assert_eq!(scaled.separable().unwrap(), (vec![2, 0, -3], vec![1, 2, 1]));
    }

    #[test]
    fn detects_a_separable_kernel_plus_a_centre() {
        // 2 x - B x with B the 3x3 binomial over 16: 32 delta - b b^T.
        let b = [1, 2, 1];
        let mut w: Vec<i64> = (0..9).map(|i| -b[i / 3] * b[i % 3]).collect();
        w[4] += 32;
        let k = Kernel::new(3, w, 16).unwrap();
        assert_eq!(k.separable(), None);
        let (alpha, col, row) = k.separable_plus_centre().unwrap();
        assert_eq!(alpha, 32);
        let rebuilt: Vec<i64> = (0..9)
            .map(|i| col[i / 3] * row[i % 3] + if i == 4 { alpha } else { 0 })
            .collect();
        assert_eq!(rebuilt, k.weights());
        // Separable kernels and others are not this.
        assert_eq!(Kernel::mean(3).unwrap().separable_plus_centre(), None);
        let laplacian = Kernel::new(3, vec![0, 1, 0, 1, -4, 1, 0, 1, 0], 1).unwrap();
        assert_eq!(laplacian.separable_plus_centre(), None);
        assert_eq!(k.without_1d_passes().separable_plus_centre(), None);
    }

    #[test]
    fn refuses_bad_kernels() {
        assert!(Kernel::new(2, vec![1; 4], 1).is_err());
        assert!(Kernel::new(3, vec![1; 8], 1).is_err());
        assert!(Kernel::new(3, vec![1; 9], 0).is_err());
        assert!(Kernel::new(1, vec![MAX_WEIGHT + 1], 1).is_err());
        assert!(Kernel::new(1, vec![i64::MIN], 1).is_err());
        assert!(Kernel::outer(&[i64::MIN], &[1], 1).is_err());
        assert!(Kernel::mean(0).is_err());
        assert!(Kernel::mean(4).is_err());
    }

    #[test]
    fn parses_kernel_text() {
        let k = Kernel::parse_text("0 -1 0\n-1 5 -1  # centre\n\n0 -1 0\n").unwrap();
        assert_eq!(k.weights(), &[0, -1, 0, -1, 5, -1, 0, -1, 0]);
        assert_eq!(k.divisor(), 1);
        let k = Kernel::parse_text("1 1 1\n1 1 1\n1 1 1\ndivisor 9").unwrap();
        assert_eq!(k, Kernel::new(3, vec![1; 9], 9).unwrap());
        for bad in [
            "",
            "# only a comment",
            "1 2\n3 4",
            "1 2 3\n4 5\n6 7 8",
            "1 x 1\n1 1 1\n1 1 1",
            "1\ndivisor 0",
            "1\ndivisor -3",
            "1\ndivisor 2\ndivisor 3",
            "1\ndivisor 2\n1",
            "1 1\n1 1",
        ] {
            assert!(Kernel::parse_text(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn outer_products_and_forced_full_evaluation() {
        let k = Kernel::outer(&[1, 2, 1], &[-1, 0, 1], 1).unwrap();
        assert_eq!(k.weights(), &[-1, 0, 1, -2, 0, 2, -1, 0, 1]);
        assert!(k.separable().is_some());
        assert!(k.without_1d_passes().separable().is_none());
        assert!(Kernel::outer(&[1, 2], &[1, 2], 1).is_err());
        assert!(Kernel::outer(&[1 << 13], &[1 << 12], 1).is_err());
    }

    #[test]
    fn ranges() {
        assert_eq!(range_after(&[1; 9], 0, 255).unwrap(), (0, 2295));
        assert_eq!(range_after(&[-1, 0, 1], 0, 255).unwrap(), (-255, 255));
        assert_eq!(range_after(&[2, -1], -10, 20).unwrap(), (-40, 50));
    }
}
