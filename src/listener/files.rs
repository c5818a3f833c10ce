//! The process's open-file limit. Every connection, every SQLite reader and
//! every PostgreSQL connection is a file descriptor, and the usual soft
//! limit (1,024) is far below `limits.max_connections` (10,000): the soft
//! limit is raised to the hard limit once, at start-up, and the figure
//! logged, so an operator sees what the process may hold.

use std::sync::OnceLock;

/// The open-file limits after [`raise_open_file_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit before.
    pub was: u64,
    /// The soft limit now.
    pub now: u64,
    /// The hard limit (the most an unprivileged process may set).
    pub hard: u64,
}

/// Raises the soft open-file limit to the hard one (or to the kernel's
/// per-process maximum when the hard limit is unlimited), once per
/// process; later calls return the first outcome. Logs the figure.
pub fn raise_open_file_limit() -> std::io::Result<OpenFiles> {
    static DONE: OnceLock<Result<OpenFiles, std::io::ErrorKind>> = OnceLock::new();
    let outcome = DONE.get_or_init(|| {
        let outcome = raise();
        match &outcome {
            Ok(files) => tracing::info!(
                open_files = files.now,
                was = files.was,
                hard = files.hard,
                "open-file limit"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
        }
        outcome.map_err(|e| e.kind())
    });
    outcome.map_err(std::io::Error::from)
}

fn raise() -> std::io::Result<OpenFiles> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let was = limit.rlim_cur;
    let target = if limit.rlim_max == libc::RLIM_INFINITY {
        kernel_maximum().unwrap_or(was)
    } else {
        limit.rlim_max
    };
    if target > was {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(OpenFiles {
        was,
        now: target.max(was),
        hard: limit.rlim_max,
    })
}

/// `fs.nr_open`: the most descriptors a process may have on Linux.
fn kernel_maximum() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current() -> libc::rlimit {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        limit
    }

    #[test]
    fn a_lowered_soft_limit_is_raised_to_the_hard_limit_once() {
        let hard = current().rlim_max;
        let expected = if hard == libc::RLIM_INFINITY {
            kernel_maximum().unwrap()
        } else {
            hard
        };
        // Lowered a little (never below what the test process needs).
        let lowered = libc::rlimit {
            rlim_cur: expected - 1,
            rlim_max: hard,
        };
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) }, 0);
        let files = raise().unwrap();
        assert_eq!(
            files,
            OpenFiles {
                was: expected - 1,
                now: expected,
                hard,
            }
        );
        assert_eq!(current().rlim_cur, expected);
        let first = raise_open_file_limit().unwrap();
        assert_eq!(first.now, expected);
        assert_eq!(raise_open_file_limit().unwrap(), first, "done once");
    }
}
