//! Typed settings, layered: built-in defaults, then an optional TOML file,
//! then `CATALYTICS_*` environment variables and command-line flags (clap
//! reads both; a flag wins over its variable).

use crate::auth::AuthSettings;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./catalytics-data";
/// Default listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Default number of downloads streaming at once.
pub const DEFAULT_MAX_CONCURRENT_DOWNLOADS: usize = 64;

/// Valid `max_concurrent_downloads`.
pub const MAX_CONCURRENT_DOWNLOADS: RangeInclusive<usize> = 1..=10_000;
/// Valid `downloads_per_minute_per_org` (when set).
pub const DOWNLOADS_PER_MINUTE_PER_ORG: RangeInclusive<u32> = 1..=1_000_000;
/// Valid `shutdown_grace_secs` (0 cuts in-flight requests at once).
pub const SHUTDOWN_GRACE_SECS: RangeInclusive<u64> = 0..=3_600;

/// Everything `serve` needs to run.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Listen address; port 0 picks a free port.
    #[serde(deserialize_with = "deserialize_bind")]
    pub bind: SocketAddr,
    /// Where the SQLite file and the local signing key live.
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite://PATH`; `None` → SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// Token checks.
    pub auth: AuthSettings,
    /// Protective limits.
    pub limits: Limits,
}

/// Limits that keep one client from starving the others.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Downloads streaming at once; one more gets 429.
    pub max_concurrent_downloads: usize,
    /// Seconds in-flight requests get to finish after SIGINT/SIGTERM.
    pub shutdown_grace_secs: u64,
    /// Downloads one organization may start per minute (with a burst of the
    /// same size); `None` means no rate limit, only the concurrency limit.
    pub downloads_per_minute_per_org: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent_downloads: DEFAULT_MAX_CONCURRENT_DOWNLOADS,
            shutdown_grace_secs: 30,
            downloads_per_minute_per_org: None,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            // DEFAULT_BIND as a value; a unit test keeps the two equal.
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            database_url: None,
            auth: AuthSettings::default(),
            limits: Limits::default(),
        }
    }
}

/// The database URL may carry a password: never print it.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("bind", &self.bind)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("auth", &self.auth)
            .field("limits", &self.limits)
            .finish()
    }
}

/// `scheme://user:secret@host/db` → `scheme://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Parses a listen address: an IP address and a port. Host names are
/// refused with a hint, since binding needs an address, not a name.
pub fn parse_bind(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        let host = s.rsplit_once(':').map_or(s, |(host, _)| host);
        if host.is_empty() || s.rsplit_once(':').is_none() {
            format!("expected IP:PORT; use an IP address such as {DEFAULT_BIND}")
        } else {
            format!(
                "{host:?} is not an IP address; use an IP address such as 127.0.0.1 \
                 (this host only) or 0.0.0.0 (every interface), e.g. {DEFAULT_BIND}"
            )
        }
    })
}

fn deserialize_bind<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    parse_bind(&s).map_err(serde::de::Error::custom)
}

/// A setting outside its valid range, e.g. a limit of 0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {name} = {value}: must be between {min} and {max}")]
pub struct OutOfRange {
    /// The setting's name (as in the config file).
    pub name: &'static str,
    /// The value given.
    pub value: String,
    /// Smallest valid value.
    pub min: String,
    /// Largest valid value.
    pub max: String,
}

fn check<T: PartialOrd + fmt::Display>(
    name: &'static str,
    value: T,
    range: &RangeInclusive<T>,
) -> Result<(), OutOfRange> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(OutOfRange {
        name,
        value: value.to_string(),
        min: range.start().to_string(),
        max: range.end().to_string(),
    })
}

impl Limits {
    /// Checks every limit against its valid range; the first one outside
    /// it is the error. Run once, after every layer is applied.
    pub fn validate(&self) -> Result<(), OutOfRange> {
        check(
            "max_concurrent_downloads",
            self.max_concurrent_downloads,
            &MAX_CONCURRENT_DOWNLOADS,
        )?;
        check(
            "shutdown_grace_secs",
            self.shutdown_grace_secs,
            &SHUTDOWN_GRACE_SECS,
        )?;
        if let Some(n) = self.downloads_per_minute_per_org {
            check(
                "downloads_per_minute_per_org",
                n,
                &DOWNLOADS_PER_MINUTE_PER_ORG,
            )?;
        }
        Ok(())
    }
}

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (the cause follows in the error chain).
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid settings TOML.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Settings {
    /// Checks every value against its valid range. The command line calls
    /// this once, after the file, the environment and the flags are laid
    /// over the defaults, so a bad value fails at start-up whatever layer
    /// it came from.
    pub fn validate(&self) -> Result<(), OutOfRange> {
        self.limits.validate()
    }

    /// Defaults, overlaid with `file` when given.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = file else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| {
            // The crate's Display draws a multi-line snippet; one line says
            // where and what.
            let line = e
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            let what = e.message().trim_end_matches('\n');
            ConfigError::Parse {
                path: path.to_owned(),
                message: match line {
                    Some(line) => format!("line {line}: {what}"),
                    None => what.to_owned(),
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
    }

    #[test]
    fn file_overlays_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "bind = \"0.0.0.0:9000\"\n[auth]\nissuer = \"https://ims.example\"\n",
        )
        .unwrap();
        let s = Settings::load(Some(&path)).unwrap();
        assert_eq!(s.bind.port(), 9000);
        assert_eq!(s.auth.issuer.as_deref(), Some("https://ims.example"));
        assert_eq!(s.auth.user_claim, "sub");
        std::fs::write(&path, "bind = \"0.0.0.0:9000\"\nbnid = 1\n").unwrap();
        let e = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "invalid config file {}: line 2: unknown field `bnid`, expected one of",
                path.display()
            )),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn default_constants_match_the_defaults() {
        let s = Settings::default();
        assert_eq!(s.bind.to_string(), DEFAULT_BIND);
        assert_eq!(s.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(s.limits.validate().is_ok());
    }

    #[test]
    fn bind_takes_ip_addresses_only() {
        assert_eq!(parse_bind("0.0.0.0:0").unwrap().port(), 0);
        assert_eq!(parse_bind("[::1]:80").unwrap().port(), 80);
        for (input, start) in [
            (
                "localhost:8080",
                "\"localhost\" is not an IP address; use an IP address such as 127.0.0.1",
            ),
            (
                "example.com:80",
                "\"example.com\" is not an IP address; use an IP address such as 127.0.0.1",
            ),
            (
                "8080",
                "expected IP:PORT; use an IP address such as 127.0.0.1:8080",
            ),
            (
                ":8080",
                "expected IP:PORT; use an IP address such as 127.0.0.1:8080",
            ),
        ] {
            let e = parse_bind(input).unwrap_err();
            assert!(e.starts_with(start), "{input}: {e}");
        }
    }

    #[test]
    fn limits_outside_their_range_are_refused() {
        let valid = Limits::default();
        let cases: [(Limits, Option<&str>); 5] = [
            (valid.clone(), None),
            (
                Limits {
                    max_concurrent_downloads: 0,
                    ..valid.clone()
                },
                Some("invalid max_concurrent_downloads = 0: must be between 1 and 10000"),
            ),
            (
                Limits {
                    max_concurrent_downloads: 10_001,
                    ..valid.clone()
                },
                Some("invalid max_concurrent_downloads = 10001: must be between 1 and 10000"),
            ),
            (
                Limits {
                    downloads_per_minute_per_org: Some(0),
                    ..valid.clone()
                },
                Some("invalid downloads_per_minute_per_org = 0: must be between 1 and 1000000"),
            ),
            (
                Limits {
                    shutdown_grace_secs: 3_601,
                    ..valid.clone()
                },
                Some("invalid shutdown_grace_secs = 3601: must be between 0 and 3600"),
            ),
        ];
        for (limits, expected) in cases {
            let got = limits.validate().err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), expected, "{limits:?}");
        }
    }

    #[test]
    fn a_host_name_in_the_file_gets_the_hint() {
        let e = toml::from_str::<Settings>("bind = \"localhost:8080\"").unwrap_err();
        assert!(
            e.to_string()
                .contains("use an IP address such as 127.0.0.1"),
            "{e}"
        );
    }
}
