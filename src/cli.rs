//! Command-line filter options shared by the examples (`blur`, `client`).
//!
//! ```text
//! --filter NAME   a filter (repeat for a chain, applied in order); the
//!                 parameters after it belong to it:
//!   -k K            kernel side (odd; default 3)
//!   --sigma S       Gaussian sigma
//!   --amount A      unsharp amount (1.5 or 3/2)
//!   --delta D       brightness change
//!   --factor F      contrast factor (1.5 or 3/2), --pivot P (default 128)
//!   --row LIST      separable row weights (1,2,1), --column LIST, --divisor D
//! --kernel FILE   a custom kernel from a text file: k lines of k integer
//!                 weights, then optionally `divisor D`; `#` comments
//! --map MAPPING   signed results to pixels: saturate (default), abs, shift128
//! ```
//!
//! With no `--filter` and no `--kernel`, the chain is the `-k` mean filter.

use std::path::Path;

use enc_image::{OutputMapping, Rational};
use he_filter::{Filter, FilterParams, Kernel};

/// Help text for the filter options.
pub const FILTER_HELP: &str = "\
  --filter NAME  a filter; repeat for a chain (applied in order). Parameters
                 given after a --filter belong to it:
      -k K           odd kernel side (default 3)
      --sigma S      Gaussian sigma (the size follows from it unless -k)
      --amount A     unsharp amount, e.g. 1.5 or 3/2 (default 1)
      --delta D      brightness change
      --factor F     contrast factor, e.g. 1.5; --pivot P (default 128)
      --row L --column L [--divisor D]   separable weights, e.g. 1,2,1
  --kernel FILE  a custom kernel: k lines of k integer weights, then
                 optionally a line `divisor D`; `#` starts a comment
  --map MAPPING  how signed results become pixels: saturate (default),
                 abs (as cv2.convertScaleAbs) or shift128
  Without --filter or --kernel: a -k mean (box blur).";

/// The built-in filters, one a line: name, aliases, what it computes and
/// the options that set its parameters (`-k`, `--sigma`...).
#[must_use]
pub fn filter_list() -> String {
    let mut out = String::new();
    for b in he_filter::BUILTINS {
        let mut line = format!("  {:<11} {}", b.name, b.summary);
        if !b.aliases.is_empty() {
            line += &format!(" (aliases: {})", b.aliases.join(", "));
        }
        let flags: Vec<String> = b
            .params
            .iter()
            .map(|p| {
                if *p == "k" {
                    "-k".into()
                } else {
                    format!("--{p}")
                }
            })
            .collect();
        if !flags.is_empty() {
            line += &format!("; {}", flags.join(", "));
        }
        out += &line;
        out.push('\n');
    }
    out
}

/// Collects filter options from a command line, in order.
#[derive(Debug, Default)]
pub struct FilterCli {
    done: Vec<Filter>,
    current: Option<(String, FilterParams)>,
    /// `-k` given before any `--filter`: the size of the default mean.
    loose_k: Option<usize>,
    mapping: OutputMapping,
}

/// The value that follows `flag` on the command line.
pub fn flag_value(rest: &mut dyn Iterator<Item = String>, flag: &str) -> Result<String, String> {
    rest.next().ok_or_else(|| format!("{flag} needs a value"))
}

/// `s` as a number, or an error that names `flag`.
pub fn number<T: std::str::FromStr>(s: &str, flag: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{flag}: {s:?} is not a valid number"))
}

/// `WxH` with both sides in `1..=max`, for `--resize`.
pub fn size(v: &str, flag: &str, max: u32) -> Result<(u32, u32), String> {
    let (w, h) = v
        .split_once('x')
        .ok_or_else(|| format!("{flag}: expected WxH, got {v:?}"))?;
    let (w, h): (u32, u32) = (number(w, flag)?, number(h, flag)?);
    if w == 0 || h == 0 || w > max || h > max {
        return Err(format!("{flag}: {w}x{h} is outside 1x1 to {max}x{max}"));
    }
    Ok((w, h))
}

fn list(s: &str, flag: &str) -> Result<Vec<i64>, String> {
    s.split(',').map(|t| number(t.trim(), flag)).collect()
}

impl FilterCli {
    /// A collector with nothing given yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes `flag` (and its value from `rest`) if it is a filter option;
    /// returns `Ok(false)` for any other argument.
    pub fn accept(
        &mut self,
        flag: &str,
        rest: &mut dyn Iterator<Item = String>,
    ) -> Result<bool, String> {
        const TAKES_VALUE: &[&str] = &[
            "--filter",
            "-k",
            "--sigma",
            "--amount",
            "--delta",
            "--factor",
            "--pivot",
            "--row",
            "--column",
            "--divisor",
            "--kernel",
            "--map",
        ];
        if !TAKES_VALUE.contains(&flag) {
            return Ok(false);
        }
        let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let ratio = |v: &str| v.parse::<Rational>().map_err(|e| format!("{flag}: {e}"));
        match flag {
            "--filter" => {
                self.close()?;
                self.current = Some((value, FilterParams::default()));
            }
            "--kernel" => {
                self.close()?;
                let path = Path::new(&value);
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("--kernel: cannot read {}: {e}", path.display()))?;
                let k = Kernel::parse_text(&text)
                    .map_err(|e| format!("--kernel {}: {e}", path.display()))?;
                self.done.push(Filter::Kernel {
                    size: k.size(),
                    weights: k.weights().to_vec(),
                    divisor: k.divisor(),
                });
            }
            "--map" => self.mapping = value.parse()?,
            "-k" if self.current.is_none() => {
                if self.loose_k.is_some() || !self.done.is_empty() {
                    return Err("-k before any --filter sets the mean's size, once; \
                                put -k after the --filter it belongs to"
                        .into());
                }
                self.loose_k = Some(number(&value, flag)?);
            }
            _ => {
                let Some((name, p)) = self.current.as_mut() else {
                    return Err(format!("{flag} must follow the --filter it belongs to"));
                };
                let dup = || format!("{flag} given twice for --filter {name}");
                macro_rules! set {
                    ($field:ident, $v:expr) => {{
                        if p.$field.is_some() {
                            return Err(dup());
                        }
                        p.$field = Some($v);
                    }};
                }
                match flag {
                    "-k" => set!(k, number(&value, flag)?),
                    "--sigma" => set!(sigma, number(&value, flag)?),
                    "--amount" => set!(amount, ratio(&value)?),
                    "--delta" => set!(delta, number(&value, flag)?),
                    "--factor" => set!(factor, ratio(&value)?),
                    "--pivot" => set!(pivot, number(&value, flag)?),
                    "--row" => set!(row, list(&value, flag)?),
                    "--column" => set!(column, list(&value, flag)?),
                    _ => set!(divisor, number(&value, flag)?),
                }
            }
        }
        Ok(true)
    }

    fn close(&mut self) -> Result<(), String> {
        if let Some((name, p)) = self.current.take() {
            let f = Filter::from_name(&name, &p).map_err(|e| format!("--filter {name}: {e}"))?;
            self.done.push(f);
        }
        Ok(())
    }

    /// The chain, and how its signed results become pixels.
    pub fn finish(mut self) -> Result<(Vec<Filter>, OutputMapping), String> {
        self.close()?;
        if self.done.is_empty() {
            let k = self.loose_k.unwrap_or(3);
            let f = Filter::from_name(
                "mean",
                &FilterParams {
                    k: Some(k),
                    ..FilterParams::default()
                },
            )
            .map_err(|e| format!("-k: {e}"))?;
            self.done.push(f);
        } else if self.loose_k.is_some() {
            return Err("-k before the first --filter has no filter to belong to".into());
        }
        Ok((self.done, self.mapping))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<(Vec<Filter>, OutputMapping), String> {
        let mut cli = FilterCli::new();
        let mut it = args.iter().map(|s| s.to_string());
        while let Some(a) = it.next() {
            if !cli.accept(&a, &mut it)? {
                return Err(format!("not a filter option: {a}"));
            }
        }
        cli.finish()
    }

    #[test]
    fn chains_and_parameters() {
        assert_eq!(parse(&[]).unwrap().0, vec![Filter::Mean { k: 3 }]);
        assert_eq!(parse(&["-k", "5"]).unwrap().0, vec![Filter::Mean { k: 5 }]);
        let (chain, map) = parse(&[
            "--filter", "gaussian", "--sigma", "1.5", "--filter", "unsharp", "-k", "5", "--amount",
            "3/2", "--filter", "sobel-x", "--map", "abs",
        ])
        .unwrap();
        assert_eq!(
            chain,
            vec![
                Filter::Gaussian {
                    k: 0,
                    sigma: Some(1.5)
                },
                Filter::Unsharp {
                    k: 5,
                    amount: Rational::new(3, 2).unwrap()
                },
                Filter::SobelX
            ]
        );
        assert_eq!(map, OutputMapping::Abs);
        let (chain, _) = parse(&[
            "--filter",
            "separable",
            "--row",
            "1,2,1",
            "--column",
            "-1,0,1",
            "--divisor",
            "4",
        ])
        .unwrap();
        assert_eq!(
            chain,
            vec![Filter::Separable {
                column: vec![-1, 0, 1],
                row: vec![1, 2, 1],
                divisor: 4
            }]
        );
    }

    #[test]
    fn mistakes_are_reported() {
        for bad in [
            &["--sigma", "1"][..],
            &["--filter", "sharpen", "-k", "5"],
            &["--filter", "mean", "-k", "3", "-k", "5"],
            &["--filter", "nope"],
            &["--filter"],
            &["-k", "4"],
            &["-k", "3", "--filter", "sharpen"],
            &["--filter", "contrast", "--factor", "x"],
            &["--map", "clip"],
            &["--kernel", "/nonexistent/kernel.txt"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn filter_list_names_every_builtin_with_its_options() {
        let list = filter_list();
        assert_eq!(list.lines().count(), he_filter::BUILTINS.len());
        assert!(
            list.contains("mean        k x k box mean (aliases: blur, box); -k\n"),
            "{list}"
        );
        assert!(list.contains("contrast    factor (x - pivot) + pivot; --factor, --pivot\n"));
        assert!(list.contains("grey        RGB to grey, BT.601 (aliases: gray)\n"));
    }
}
