//! `he filters`, `he completions` and `he man`: text generated from the
//! same definitions the command parses with.

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::chain::CATALOGUE;
use crate::cli::{Cli, CompletionsArgs, ManArgs};
use crate::files;

/// Prints the built-in filters with their parameters.
pub(crate) fn filters() -> Result<()> {
    println!("Built-in filters (--filter NAME [PARAMETERS]); repeat --filter for a chain.");
    println!("Custom kernels: --kernel FILE. Signed results: --map saturate|abs|shift128.\n");
    let w = CATALOGUE.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
    let pw = CATALOGUE.iter().map(|(_, p, _)| p.len()).max().unwrap_or(0);
    for (name, params, what) in CATALOGUE {
        println!("  {name:<w$}  {params:<pw$}  {what}");
    }
    println!(
        "\nParameters: -k K odd side (default 3); --sigma S; --amount A and --factor F as 1.5 or 3/2;"
    );
    println!("--delta D and --pivot P integers; --row/--column comma-separated integer weights.");
    Ok(())
}

/// Prints a completion script for `shell` on standard output.
pub(crate) fn completions(a: CompletionsArgs) -> Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "he", &mut std::io::stdout());
    Ok(())
}

/// Writes `he.1` and `he-SUBCOMMAND.1` into the directory.
pub(crate) fn man(a: ManArgs) -> Result<()> {
    std::fs::create_dir_all(&a.output)
        .with_context(|| format!("cannot create {}", a.output.display()))?;
    let cmd = Cli::command();
    let mut written = 0;
    let mut page = |c: clap::Command, name: String| -> Result<()> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c).render(&mut buf)?;
        files::write_atomic(&a.output.join(format!("{name}.1")), &buf, true, false)?;
        written += 1;
        Ok(())
    };
    page(cmd.clone(), "he".into())?;
    for sub in cmd.get_subcommands() {
        let name = format!("he-{}", sub.get_name());
        page(sub.clone().name(name.clone()), name)?;
    }
    println!("wrote {written} man pages to {}", a.output.display());
    Ok(())
}
