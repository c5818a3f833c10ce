//! Typed settings, layered: built-in defaults, then an optional TOML file,
//! then `CATALYTICS_*` environment variables and command-line flags (clap
//! reads both; a flag wins over its variable).

use crate::auth::AuthSettings;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./catalytics-data";

/// Everything `serve` needs to run.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Listen address; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Where the SQLite file and the local signing key live.
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite://PATH`; `None` → SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// The URL clients reach this service at (e.g. behind a proxy), as
    /// published in local mode's discovery document; `None` → derived from
    /// the bound address. Never taken from a request's `Host`.
    pub public_url: Option<String>,
    /// Token checks.
    pub auth: AuthSettings,
    /// Protective limits.
    pub limits: Limits,
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
    /// Seconds in-flight requests get to finish after SIGINT/SIGTERM.
    pub shutdown_grace_secs: u64,
    /// Downloads one organization may start per minute (with a burst of the
    /// same size); `None` means no rate limit, only the concurrency limit.
    pub downloads_per_minute_per_org: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent_downloads: 64,
            download_queue_wait: Duration::from_secs(10),
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_stall_timeout: Duration::from_secs(30),
            shutdown_grace_secs: 30,
            downloads_per_minute_per_org: None,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            database_url: None,
            public_url: None,
            auth: AuthSettings::default(),
            limits: Limits::default(),
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
            .field("public_url", &self.public_url)
            .field("auth", &self.auth)
            .field("limits", &self.limits)
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

/// Durations in the settings file are written as people write them:
/// `"10s"`, `"500ms"`, `"1m"` (humantime's syntax).
mod duration_text {
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
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
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
    /// Defaults, overlaid with `file` when given.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = file else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
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
        std::fs::write(&path, "bnid = 1\n").unwrap();
        assert!(Settings::load(Some(&path)).is_err());
    }
}
