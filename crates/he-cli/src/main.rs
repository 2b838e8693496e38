//! `he`: filter images that stay encrypted. See `he --help`, the README
//! and `docs/`.

mod canvas;
mod chain;
mod cli;
mod cmd;
mod files;
mod jobfile;
mod resume;
mod ui;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command};

/// A result that failed a check: nothing was written. Exit code 3.
#[derive(Debug)]
pub(crate) struct VerificationFailed(pub(crate) String);

impl std::fmt::Display for VerificationFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; nothing was written", self.0)
    }
}

impl std::error::Error for VerificationFailed {}

/// Exit code for an error: 3 when a result failed verification, else 1.
fn exit_code(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.is::<VerificationFailed>()) {
        3
    } else {
        1
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let sub = matches
        .subcommand()
        .map(|(_, m)| m.clone())
        .unwrap_or_default();
    let result = match cli.command {
        Command::Keygen(a) => cmd::keygen::run(a),
        Command::Encrypt(a) => cmd::encrypt::run(a, &sub),
        Command::Filter(a) => cmd::filter::run(a, &sub),
        Command::Decrypt(a) => cmd::decrypt::run(a, &sub),
        Command::Blur(a) => cmd::blur::run(a, &sub),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Submit(a) => cmd::submit::run(a, &sub),
        Command::Token(c) => cmd::token::run(c),
        Command::Loadtest(a) => cmd::loadtest::run(a, &sub),
        Command::Gallery(a) => cmd::gallery::run(a),
        Command::Preview(a) => cmd::preview::run(a, &sub),
        Command::Studio(a) => cmd::studio::run(a),
        Command::Filters => cmd::docs::filters(),
        Command::Completions(a) => cmd::docs::completions(a),
        Command::Man(a) => cmd::docs::man(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("he: error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(exit_code(&e))
        }
    }
}
