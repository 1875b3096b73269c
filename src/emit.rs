//! Output: the only module that writes to stdout, and the creator of output files (0600).

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::Path;

/// Whether stdout is a terminal (tables and colours only then).
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Writes a whole document (a table, name list) to stdout and flushes it.
pub fn print_document(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Creates (or appends to) a file readable only by its owner: events and logs may hold data
/// the cluster protects.
pub fn create_private_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}
