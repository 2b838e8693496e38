//! `he filters`, `he completions` and `he man`: text generated from the
//! same definitions the command parses with.

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};
use crate::files;

/// The catalogue, one line per built-in filter: name, summary, aliases
/// and the flags of its parameters.
pub(crate) fn filter_list() -> String {
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

/// Prints the built-in filters with their parameters.
pub(crate) fn filters() -> Result<()> {
    println!("Built-in filters (--filter NAME [PARAMETERS]); repeat --filter for a chain.");
    println!("Custom kernels: --kernel FILE. Signed results: --map saturate|abs|shift128.\n");
    print!("{}", filter_list());
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

#[cfg(test)]
mod tests {
    use super::*;

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
