//! Typed settings, layered: built-in defaults, then an optional TOML file,
//! then `CATALYTICS_*` environment variables and command-line flags (clap
//! reads both; a flag wins over its variable).

use crate::auth::AuthSettings;
use crate::privacy::RetentionPolicy;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
/// Valid `max_connections`.
pub const MAX_CONNECTIONS: RangeInclusive<usize> = 1..=1_000_000;
/// Valid `database_pool_size` (PostgreSQL connections per process).
pub const DATABASE_POOL_SIZE: RangeInclusive<usize> = 1..=1_000;
/// Valid `download_queue_wait` (0 answers 429 at once when every slot is busy).
pub const DOWNLOAD_QUEUE_WAIT: RangeInclusive<Duration> = Duration::ZERO..=Duration::from_secs(600);
/// Valid `[retention] interval` (a zero interval would spin).
pub const RETENTION_INTERVAL: RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(30 * 86_400);
/// Valid `[retention] batch_size` (rows per step).
pub const RETENTION_BATCH_SIZE: RangeInclusive<u64> = 1..=1_000_000;
/// Valid `[retention] pause` (0 runs the steps back to back).
pub const RETENTION_PAUSE: RangeInclusive<Duration> = Duration::ZERO..=Duration::from_secs(60);
/// Valid `header_read_timeout`, `idle_timeout`, `body_stall_timeout` and
/// `send_stall_timeout`.
pub const CONNECTION_TIMEOUT: RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(3_600);

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
    /// PostgreSQL connections per process; downloads may stream on all but
    /// four of them. SQLite ignores it.
    pub database_pool_size: usize,
    /// The URL clients reach this service at (e.g. behind a proxy), as
    /// published in local mode's discovery document; `None` → derived from
    /// the bound address. Never taken from a request's `Host`.
    pub public_url: Option<String>,
    /// Token checks.
    pub auth: AuthSettings,
    /// Protective limits.
    pub limits: Limits,
    /// How long events and audit records are kept (`[retention]`).
    pub retention: RetentionPolicy,
    /// The admin page.
    pub ui: UiSettings,
}

/// How the admin page at `/` signs in when an issuer is configured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct UiSettings {
    /// The page's public OpenID Connect client id at the issuer
    /// (authorization code + PKCE, no secret).
    pub client_id: Option<String>,
    /// Scopes the page asks the issuer for.
    pub scope: String,
}

impl Default for UiSettings {
    fn default() -> Self {
        Self {
            client_id: None,
            scope: "openid email itwin-platform".into(),
        }
    }
}

/// Limits that keep one client from starving the others.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Downloads streaming at once; one more waits for a slot up to
    /// `download_queue_wait`, then gets 429.
    pub max_concurrent_downloads: usize,
    /// How long a download waits for a free slot before 429.
    #[serde(with = "duration_text")]
    pub download_queue_wait: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Time a connection has to send a whole request head (from its first
    /// byte, or from being accepted); after it, the connection is closed.
    #[serde(with = "duration_text")]
    pub header_read_timeout: Duration,
    /// Time an idle keep-alive connection is kept open.
    #[serde(with = "duration_text")]
    pub idle_timeout: Duration,
    /// Longest pause allowed while a request body arrives; after it, 408.
    #[serde(with = "duration_text")]
    pub body_stall_timeout: Duration,
    /// Longest a response may wait for the client to take more of it (a
    /// client that reads nothing); after it the connection is closed, which
    /// frees a download's slot and buffers.
    #[serde(with = "duration_text")]
    pub send_stall_timeout: Duration,
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
            download_queue_wait: Duration::from_secs(10),
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_stall_timeout: Duration::from_secs(30),
            send_stall_timeout: Duration::from_secs(60),
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
            database_pool_size: crate::store::postgres::POOL_SIZE,
            public_url: None,
            auth: AuthSettings::default(),
            limits: Limits::default(),
            retention: RetentionPolicy::default(),
            ui: UiSettings::default(),
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
            .field("database_pool_size", &self.database_pool_size)
            .field("public_url", &self.public_url)
            .field("auth", &self.auth)
            .field("limits", &self.limits)
            .field("retention", &self.retention)
            .field("ui", &self.ui)
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
    check_with(name, value, range, T::to_string)
}

/// [`check`] for durations, written as in the settings file (`"10s"`).
fn check_duration(
    name: &'static str,
    value: Duration,
    range: &RangeInclusive<Duration>,
) -> Result<(), OutOfRange> {
    check_with(name, value, range, |d| {
        humantime::format_duration(*d).to_string()
    })
}

fn check_with<T: PartialOrd>(
    name: &'static str,
    value: T,
    range: &RangeInclusive<T>,
    show: impl Fn(&T) -> String,
) -> Result<(), OutOfRange> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(OutOfRange {
        name,
        value: show(&value),
        min: show(range.start()),
        max: show(range.end()),
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
        check("max_connections", self.max_connections, &MAX_CONNECTIONS)?;
        check_duration(
            "download_queue_wait",
            self.download_queue_wait,
            &DOWNLOAD_QUEUE_WAIT,
        )?;
        for (name, value) in [
            ("header_read_timeout", self.header_read_timeout),
            ("idle_timeout", self.idle_timeout),
            ("body_stall_timeout", self.body_stall_timeout),
            ("send_stall_timeout", self.send_stall_timeout),
        ] {
            check_duration(name, value, &CONNECTION_TIMEOUT)?;
        }
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

/// Durations in the settings file are written as people write them:
/// `"10s"`, `"500ms"`, `"1m"` (humantime's syntax).
pub(crate) mod duration_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*value).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
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
        check(
            "database_pool_size",
            self.database_pool_size,
            &DATABASE_POOL_SIZE,
        )?;
        let retention = &self.retention;
        check_duration(
            "retention.interval",
            retention.interval,
            &RETENTION_INTERVAL,
        )?;
        check(
            "retention.batch_size",
            retention.batch_size,
            &RETENTION_BATCH_SIZE,
        )?;
        check_duration("retention.pause", retention.pause, &RETENTION_PAUSE)?;
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
        std::fs::write(
            &path,
            "[limits]\ndownload_queue_wait = \"250ms\"\nheader_read_timeout = \"2s\"\n",
        )
        .unwrap();
        let s = Settings::load(Some(&path)).unwrap();
        assert_eq!(s.limits.download_queue_wait, Duration::from_millis(250));
        assert_eq!(s.limits.header_read_timeout, Duration::from_secs(2));
        assert_eq!(s.limits.idle_timeout, Duration::from_secs(60));
        std::fs::write(&path, "[limits]\nidle_timeout = \"soon\"\n").unwrap();
        assert!(Settings::load(Some(&path)).is_err());
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
        let cases: [(Limits, Option<&str>); 7] = [
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
            (
                Limits {
                    max_connections: 0,
                    ..valid.clone()
                },
                Some("invalid max_connections = 0: must be between 1 and 1000000"),
            ),
            (
                Limits {
                    idle_timeout: Duration::ZERO,
                    ..valid.clone()
                },
                Some("invalid idle_timeout = 0s: must be between 100ms and 1h"),
            ),
        ];
        for (limits, expected) in cases {
            let got = limits.validate().err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), expected, "{limits:?}");
        }
    }

    #[test]
    fn pool_size_outside_its_range_is_refused() {
        for (size, expected) in [
            (1, None),
            (32, None),
            (1_000, None),
            (
                0,
                Some("invalid database_pool_size = 0: must be between 1 and 1000"),
            ),
            (
                1_001,
                Some("invalid database_pool_size = 1001: must be between 1 and 1000"),
            ),
        ] {
            let settings = Settings {
                database_pool_size: size,
                ..Settings::default()
            };
            let got = settings.validate().err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), expected, "{size}");
        }
    }

    #[test]
    fn retention_steps_outside_their_range_are_refused() {
        let valid = RetentionPolicy::default();
        let cases: [(RetentionPolicy, Option<&str>); 5] = [
            (valid.clone(), None),
            (
                RetentionPolicy {
                    interval: Duration::ZERO,
                    ..valid.clone()
                },
                Some("invalid retention.interval = 0s: must be between 100ms and 30days"),
            ),
            (
                RetentionPolicy {
                    batch_size: 0,
                    ..valid.clone()
                },
                Some("invalid retention.batch_size = 0: must be between 1 and 1000000"),
            ),
            (
                RetentionPolicy {
                    pause: Duration::from_secs(61),
                    ..valid.clone()
                },
                Some("invalid retention.pause = 1m 1s: must be between 0s and 1m"),
            ),
            (
                RetentionPolicy {
                    batch_size: 1,
                    pause: Duration::ZERO,
                    interval: Duration::from_millis(100),
                    ..valid.clone()
                },
                None,
            ),
        ];
        for (retention, expected) in cases {
            let settings = Settings {
                retention: retention.clone(),
                ..Settings::default()
            };
            let got = settings.validate().err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), expected, "{retention:?}");
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
