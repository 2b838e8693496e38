//! The filter chain from the command line: `--filter NAME [params]`,
//! repeatable, `--kernel FILE`, `--map MAPPING`; a parameter belongs to the
//! `--filter` before it. Without `--filter` or `--kernel`, the chain is the
//! `-k` mean (3x3 by default).

use anyhow::{Context, Result, anyhow, bail};
use clap::ArgMatches;
use enc_image::{OutputMapping, Rational};
use he_filter::{Filter, FilterParams, Kernel};

use crate::files;

/// Kernel files are a few lines of numbers; larger files are refused
/// before reading (a 63x63 kernel of 10-digit weights is under 1 MiB).
const MAX_KERNEL_FILE: u64 = 1 << 20;

/// The clap ids of the filter options and the flag each is spelt with.
const OPTIONS: &[(&str, &str)] = &[
    ("filter", "--filter"),
    ("k", "-k"),
    ("sigma", "--sigma"),
    ("amount", "--amount"),
    ("delta", "--delta"),
    ("factor", "--factor"),
    ("pivot", "--pivot"),
    ("row", "--row"),
    ("column", "--column"),
    ("divisor", "--divisor"),
    ("kernel", "--kernel"),
    ("map", "--map"),
];

/// A chain and how its signed results become pixels, as given.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChainSpec {
    /// The filters, first to last.
    pub(crate) filters: Vec<Filter>,
    /// The output mapping.
    pub(crate) mapping: OutputMapping,
    /// Whether any option naming filters was given (anything but
    /// `--map`); else the chain is the default 3x3 mean.
    pub(crate) given: bool,
}

/// The chain options of one subcommand's matches, in command-line order.
pub(crate) fn from_matches(m: &ArgMatches) -> Result<ChainSpec> {
    let mut given: Vec<(usize, &str, String)> = Vec::new();
    for (id, flag) in OPTIONS {
        let (Some(indices), Some(values)) = (m.indices_of(id), m.get_raw(id)) else {
            continue;
        };
        for (i, v) in indices.zip(values) {
            given.push((i, flag, v.to_string_lossy().into_owned()));
        }
    }
    given.sort_by_key(|(i, _, _)| *i);
    from_flags(given.into_iter().map(|(_, flag, value)| (flag, value)))
}

/// A chain from `(flag, value)` pairs in the order typed, e.g.
/// `("--filter", "mean"), ("-k", "5"), ("--map", "abs")`: what
/// [`from_matches`] builds from the command line and the studio from the
/// page's form.
pub(crate) fn from_flags<'a>(
    given: impl IntoIterator<Item = (&'a str, String)>,
) -> Result<ChainSpec> {
    let mut b = Builder::default();
    let mut any = false;
    for (flag, value) in given {
        any |= flag != "--map";
        b.accept(flag, value)?;
    }
    let (filters, mapping) = b.finish()?;
    Ok(ChainSpec {
        filters,
        mapping,
        given: any,
    })
}

/// The flag of a filter parameter named as in
/// [`Builtin::params`](he_filter::Builtin::params) (`"k"` is `-k`, `"sigma"` is
/// `--sigma`), or `None` for a name that is not a parameter.
pub(crate) fn param_flag(param: &str) -> Option<&'static str> {
    OPTIONS
        .iter()
        .find(|(id, _)| *id == param && !matches!(*id, "filter" | "kernel" | "map"))
        .map(|(_, flag)| *flag)
}

/// Collects filter options in order.
#[derive(Debug, Default)]
struct Builder {
    done: Vec<Filter>,
    current: Option<(String, FilterParams)>,
    /// `-k` given before any `--filter`: the size of the default mean.
    loose_k: Option<usize>,
    mapping: OutputMapping,
}

fn number<T: std::str::FromStr>(s: &str, flag: &str) -> Result<T> {
    s.parse()
        .map_err(|_| anyhow!("{flag}: {s:?} is not a valid number"))
}

fn list(s: &str, flag: &str) -> Result<Vec<i64>> {
    s.split(',').map(|t| number(t.trim(), flag)).collect()
}

impl Builder {
    fn accept(&mut self, flag: &str, value: String) -> Result<()> {
        let ratio = |v: &str| v.parse::<Rational>().map_err(|e| anyhow!("{flag}: {e}"));
        match flag {
            "--filter" => {
                self.close()?;
                self.current = Some((value, FilterParams::default()));
            }
            "--kernel" => {
                self.close()?;
                let text = files::read_text(value.as_ref(), MAX_KERNEL_FILE, "kernel file")
                    .context("--kernel")?;
                let k = Kernel::parse_text(&text).with_context(|| format!("--kernel {value}"))?;
                self.done.push(Filter::Kernel {
                    size: k.size(),
                    weights: k.weights().to_vec(),
                    divisor: k.divisor(),
                });
            }
            "--map" => self.mapping = value.parse().map_err(|e: String| anyhow!("--map: {e}"))?,
            "-k" if self.current.is_none() => {
                if self.loose_k.is_some() || !self.done.is_empty() {
                    bail!(
                        "-k before any --filter sets the mean's size, once; \
                         put -k after the --filter it belongs to"
                    );
                }
                self.loose_k = Some(number(&value, flag)?);
            }
            _ => {
                let Some((name, p)) = self.current.as_mut() else {
                    bail!("{flag} must follow the --filter it belongs to");
                };
                macro_rules! set {
                    ($field:ident, $v:expr) => {{
                        if p.$field.is_some() {
                            bail!("{flag} given twice for --filter {name}");
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
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        if let Some((name, p)) = self.current.take() {
            let f = Filter::from_name(&name, &p).with_context(|| format!("--filter {name}"))?;
            self.done.push(f);
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(Vec<Filter>, OutputMapping)> {
        self.close()?;
        if self.done.is_empty() {
            let p = FilterParams {
                k: Some(self.loose_k.unwrap_or(3)),
                ..FilterParams::default()
            };
            self.done.push(Filter::from_name("mean", &p).context("-k")?);
        } else if self.loose_k.is_some() {
            bail!("-k before the first --filter has no filter to belong to");
        }
        Ok((self.done, self.mapping))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    use crate::cli::Cli;

    /// The chain of `he filter IN -o OUT ARGS...`, through clap as a user
    /// would type it.
    fn parse(args: &[&str]) -> Result<(Vec<Filter>, OutputMapping)> {
        let argv = ["he", "filter", "in.he", "-o", "out.he"]
            .iter()
            .chain(args)
            .copied();
        let m = Cli::command().try_get_matches_from(argv)?;
        Cli::from_arg_matches(&m)?;
        let (_, sub) = m.subcommand().ok_or_else(|| anyhow!("no subcommand"))?;
        let spec = from_matches(sub)?;
        Ok((spec.filters, spec.mapping))
    }

    #[test]
    fn chains_and_parameters_keep_their_order() {
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
        // -k belongs to the filter before it, wherever it is.
        let (chain, _) = parse(&["--filter", "mean", "-k", "5", "--filter", "mean"]).unwrap();
        assert_eq!(chain, vec![Filter::Mean { k: 5 }, Filter::Mean { k: 3 }]);
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
        let (chain, _) = parse(&["--filter", "brightness", "--delta", "-20"]).unwrap();
        assert_eq!(chain, vec![Filter::Brightness { delta: -20 }]);
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
            &["--kernel", "/dev/zero"],
            &["--kernel", "/"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
