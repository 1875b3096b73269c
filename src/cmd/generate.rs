//! `faro generate` (hidden): shell completions and man pages, rendered from the clap
//! definitions in `cli.rs`, the single source of the user documentation. The output is
//! deterministic (no dates) so that the committed copies can be checked by a test.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, CompletionShell, GenerateArgs, GenerateWhat};
use crate::exit::Status;
use crate::sink;

/// Runs `faro generate`.
pub fn run(args: GenerateArgs) -> anyhow::Result<Status> {
    match args.what {
        GenerateWhat::Completions { shell } => {
            let text = String::from_utf8(completion(shell))?;
            sink::print_document(&text)?;
        }
        GenerateWhat::All { out_dir } => {
            for (path, content) in files()? {
                let path = out_dir.join(path);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
                std::fs::write(&path, content)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    Ok(Status::Success)
}

fn completion(shell: CompletionShell) -> Vec<u8> {
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "faro", &mut out);
    out
}

/// Every generated file, relative to the repository root.
pub fn files() -> anyhow::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut out = vec![
        (
            Path::new("completions/faro.bash").to_path_buf(),
            completion(CompletionShell::Bash),
        ),
        (
            Path::new("completions/_faro").to_path_buf(),
            completion(CompletionShell::Zsh),
        ),
        (
            Path::new("completions/faro.fish").to_path_buf(),
            completion(CompletionShell::Fish),
        ),
    ];
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let mut pages = vec![root.clone()];
    pages.extend(root.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    for cmd in pages {
        let man = clap_mangen::Man::new(cmd)
            .manual("faro manual")
            .source(format!("faro {}", env!("CARGO_PKG_VERSION")));
        let mut page = Vec::new();
        man.render(&mut page)?;
        out.push((Path::new("man").join(man.get_filename()), page));
    }
    Ok(out)
}
