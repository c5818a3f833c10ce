//! The data dir, checked before a command uses it: created (and said so
//! on stderr) when missing, refused in plain words when it cannot be
//! written, instead of a store error that sounds temporary.

use anyhow::Context;
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::path::Path;

/// The SQLite file's name inside the data dir (see [`crate::store::open`]).
const SQLITE_FILE: &str = "catalytics.sqlite3";

/// Whether a command must be able to write the data dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Refuse to start without write access (commands that write and exit).
    Write,
    /// Start anyway and say so (`serve`: the store answers 503 until the
    /// directory is writable, and heals without a restart).
    WriteWhenPossible,
}

/// Makes sure `dir` exists and can be written (see [`Access`]). Returns
/// whether it was created by this call.
pub fn prepare(dir: &Path, access: Access) -> anyhow::Result<bool> {
    let created = match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => false,
        Ok(_) => anyhow::bail!("data dir {} is not a directory", dir.display()),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create data dir {}", dir.display()))?;
            eprintln!("created data dir {}", dir.display());
            true
        }
        Err(e) => return Err(e).with_context(|| format!("cannot use data dir {}", dir.display())),
    };
    match (check_writable(dir), access) {
        (Ok(()), _) => {}
        (Err(e), Access::Write) => return Err(e),
        (Err(e), Access::WriteWhenPossible) => {
            tracing::warn!("{}; writes answer 503 until it is", super::one_line(&e))
        }
    }
    Ok(created)
}

/// Whether the store and the key file can be written in `dir`: a probe
/// file, and the SQLite file opened for writing when it exists.
fn check_writable(dir: &Path) -> anyhow::Result<()> {
    let probe = dir.join(format!(".write-check-{}", std::process::id()));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .with_context(|| format!("data dir {} is not writable", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    let db = dir.join(SQLITE_FILE);
    if db.exists() {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&db)
            .with_context(|| format!("cannot open {} for writing", db.display()))?;
    }
    Ok(())
}

/// An I/O error in plain words, without the OS error number.
pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::NotFound => "does not exist".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        ErrorKind::AlreadyExists => "already exists".into(),
        ErrorKind::AddrInUse => "address already in use".into(),
        ErrorKind::AddrNotAvailable => "address not available on this machine".into(),
        _ => match e.raw_os_error() {
            // "Read-only file system (os error 30)" → "read-only file system"
            Some(_) => {
                let text = e.to_string();
                let text = text.split(" (os error").next().unwrap_or(&text);
                text.to_lowercase()
            }
            None => e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_in_plain_words() {
        let cases = [
            (std::io::Error::from_raw_os_error(2), "does not exist"),
            (std::io::Error::from_raw_os_error(13), "permission denied"),
            (
                std::io::Error::from_raw_os_error(98),
                "address already in use",
            ),
            (
                std::io::Error::from_raw_os_error(30),
                "read-only file system",
            ),
            (std::io::Error::other("custom"), "custom"),
        ];
        for (e, expected) in cases {
            assert_eq!(io_reason(&e), expected, "{e}");
        }
    }

    #[test]
    fn creates_a_missing_dir_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        assert!(prepare(&dir, Access::Write).unwrap());
        assert!(!prepare(&dir, Access::Write).unwrap());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no probe left");
    }
}
