//! `[cluster]`: whether this process joins a cluster, and as whom.
//!
//! Unset `redis_url` (the default) is single-node mode: nothing under [`crate::cluster`] runs
//! and the node behaves exactly as before cluster mode existed. With `redis_url`
//! (`VENUE_REDIS_URL`) the node joins the cluster on that Redis: it needs the cluster's
//! `secret` (`VENUE_CLUSTER_SECRET`), a shared PostgreSQL database
//! ([`check_cluster_database`]) and the admin token from the config or environment (every node
//! must accept the same one, see [`crate::cluster::secrets`]).
//!
//! [`ClusterConfig::resolve`] turns the section into [`ClusterSettings`]: the node id (from the
//! config, else `data_dir/node_id`, generated once), the internal URL (from the config, else
//! `http.public_url`, else `http.listen`) and the drain timeout.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::sections::{HttpConfig, Secret};

/// Default of `[cluster] drain_timeout_s`, seconds.
pub const DEFAULT_DRAIN_TIMEOUT_S: u64 = 30;
/// The file in the data dir that keeps a generated node id.
pub const NODE_ID_FILE: &str = "node_id";
/// Shortest accepted cluster secret, characters.
pub const MIN_SECRET_CHARS: usize = 16;

/// `[cluster]` section.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Redis of the cluster, `redis://[user:password@]host[:port][/db]`. Unset (default):
    /// single-node mode. Env `VENUE_REDIS_URL`. May carry a password: never logged.
    pub redis_url: Option<Secret>,
    /// This node's id, 1–64 characters of `[A-Za-z0-9._-]`. Unset: read from
    /// `data_dir/node_id`, generated there on first start. Env `VENUE_NODE_ID`.
    pub node_id: Option<String>,
    /// How other nodes reach this node's HTTP, `http(s)://host:port`. Unset: `http.public_url`,
    /// else `http.listen` (an unspecified bind address is replaced by this host's first
    /// non-loopback IPv4 address). Env `VENUE_INTERNAL_URL`.
    pub internal_url: Option<String>,
    /// The cluster's shared secret, at least 16 characters, identical on every node: it
    /// authenticates node-to-node calls, registrations and bus messages, and the per-node
    /// secrets are derived from it ([`crate::cluster::secrets`]). Required in cluster mode. Env
    /// `VENUE_CLUSTER_SECRET`. Never logged.
    pub secret: Option<Secret>,
    /// On SIGTERM a cluster node drains: it leaves placement, tells its pages to move, and
    /// exits when no session remains or after this many seconds, 1..=3600. Default 30. Env
    /// `VENUE_DRAIN_TIMEOUT_S`.
    pub drain_timeout_s: u64,
    /// WebRTC viewers this node takes (all rooms together); a full node sends newcomers to
    /// another node (`/join`, WHEP 307). 0 (default): no limit but CPU
    /// (`hls.max_cpu_percent`). Env `VENUE_CLUSTER_MAX_VIEWERS`.
    pub max_viewers: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis_url: None,
            node_id: None,
            internal_url: None,
            secret: None,
            drain_timeout_s: DEFAULT_DRAIN_TIMEOUT_S,
            max_viewers: 0,
        }
    }
}

/// A node id: 1–64 characters of `[A-Za-z0-9._-]` (see [`NodeId::parse`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(String);

impl NodeId {
    /// Checks `s`. Errors: a sentence naming the rule.
    pub fn parse(s: &str) -> Result<NodeId, String> {
        let ok = (1..=64).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(NodeId(s.to_owned()))
        } else {
            Err(format!(
                "cluster.node_id must be 1-64 characters of A-Z a-z 0-9 . _ -, got {s:?}"
            ))
        }
    }

    /// A fresh random id, `node-` and 16 hex digits.
    pub fn generate() -> NodeId {
        let bytes: [u8; 8] = rand::random();
        NodeId(format!("node-{}", hex::encode(bytes)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[cluster]` resolved for a node in cluster mode.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// Redis URL (secret: may carry a password).
    pub redis_url: Secret,
    pub node_id: NodeId,
    /// Base URL of this node's HTTP for other nodes, no trailing slash.
    pub internal_url: String,
    /// The cluster secret.
    pub secret: Secret,
    pub drain_timeout: Duration,
    /// How viewers reach this node (`http.public_url`, else `internal_url`), no trailing slash:
    /// placement sends viewers of a full node here.
    pub public_url: String,
    /// `max_viewers` (0: no limit).
    pub max_viewers: u64,
}

impl ClusterConfig {
    /// Whether this node runs in cluster mode (`redis_url` is set).
    pub fn enabled(&self) -> bool {
        self.redis_url.is_some()
    }

    /// Checks the section (only when `redis_url` is set; single-node mode ignores it).
    /// Errors name the key, never a secret's value.
    pub fn validate(&self) -> Result<(), String> {
        let Some(url) = &self.redis_url else {
            return Ok(());
        };
        let url = url.expose();
        if !(url.starts_with("redis://") || url.starts_with("redis+unix://"))
            || redis::parse_redis_url(url).is_none()
        {
            return Err(
                "cluster.redis_url (VENUE_REDIS_URL) must be a redis://host[:port][/db] URL".into(),
            );
        }
        match &self.secret {
            None => {
                return Err(
                    "cluster.secret (VENUE_CLUSTER_SECRET) is required in cluster mode: every \
                     node of the cluster must be given the same secret"
                        .into(),
                );
            }
            Some(s) if s.expose().chars().count() < MIN_SECRET_CHARS => {
                return Err(format!(
                    "cluster.secret must be at least {MIN_SECRET_CHARS} characters"
                ));
            }
            Some(_) => {}
        }
        if let Some(id) = &self.node_id {
            NodeId::parse(id)?;
        }
        if let Some(u) = &self.internal_url {
            normalize_url(u).ok_or_else(|| {
                format!("cluster.internal_url must look like http(s)://host[:port], got {u:?}")
            })?;
        }
        if !(1..=3600).contains(&self.drain_timeout_s) {
            return Err(format!(
                "cluster.drain_timeout_s must be 1..=3600, got {}",
                self.drain_timeout_s
            ));
        }
        Ok(())
    }

    /// The settings of a cluster node, `None` in single-node mode. Reads (or writes, the first
    /// time) `data_dir/node_id` when `node_id` is unset. Errors: the section is invalid
    /// ([`ClusterConfig::validate`]), the node id file cannot be read or written.
    pub fn resolve(
        &self,
        http: &HttpConfig,
        data_dir: &Path,
    ) -> anyhow::Result<Option<ClusterSettings>> {
        let Some(redis_url) = &self.redis_url else {
            return Ok(None);
        };
        self.validate().map_err(anyhow::Error::msg)?;
        let secret = self
            .secret
            .clone()
            .ok_or_else(|| anyhow::anyhow!("cluster.secret is required in cluster mode"))?;
        let node_id = match &self.node_id {
            Some(id) => NodeId::parse(id).map_err(anyhow::Error::msg)?,
            None => stored_node_id(data_dir)?,
        };
        let internal_url = match &self.internal_url {
            Some(u) => normalize_url(u)
                .ok_or_else(|| anyhow::anyhow!("cluster.internal_url is not an http(s) URL"))?,
            None => default_internal_url(http),
        };
        Ok(Some(ClusterSettings {
            redis_url: redis_url.clone(),
            node_id,
            secret,
            drain_timeout: Duration::from_secs(self.drain_timeout_s),
            public_url: http
                .public_url
                .as_deref()
                .and_then(normalize_url)
                .unwrap_or_else(|| internal_url.clone()),
            max_viewers: self.max_viewers,
            internal_url,
        }))
    }
}

/// Refuses cluster mode without a shared PostgreSQL database: `redis` is whether
/// `[cluster] redis_url` is set, `database_url` the `[database] url` (`None`: the default
/// SQLite file in the data dir). Single-node mode accepts anything. Errors: a sentence for the
/// operator naming both settings.
pub fn check_cluster_database(redis: bool, database_url: Option<&str>) -> Result<(), String> {
    if !redis {
        return Ok(());
    }
    match database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => Ok(()),
        other => {
            let what = match other {
                None => "the default SQLite database in the data dir".to_owned(),
                Some(url) => {
                    let scheme = url.split_once("://").map_or(url, |(s, _)| s);
                    format!("a {scheme}:// database")
                }
            };
            Err(format!(
                "cluster mode (cluster.redis_url / VENUE_REDIS_URL is set) needs a PostgreSQL \
                 database shared by every node: set database.url (VENUE_DATABASE_URL) to \
                 postgres://user:password@host/db. This node has {what}, which only this node \
                 can see."
            ))
        }
    }
}

/// `data_dir/node_id`, generated and written on first start. Errors: the file cannot be read
/// or written, or holds an invalid id.
pub fn stored_node_id(data_dir: &Path) -> anyhow::Result<NodeId> {
    let path = data_dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => {
            return NodeId::parse(text.trim())
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("reading {}", path.display())));
        }
    }
    let id = NodeId::generate();
    std::fs::create_dir_all(data_dir)?;
    std::fs::write(&path, format!("{id}\n"))
        .map_err(|e| anyhow::Error::new(e).context(format!("writing {}", path.display())))?;
    Ok(id)
}

/// `http(s)://host[:port][/path]` without a trailing slash, or `None`.
fn normalize_url(u: &str) -> Option<String> {
    let trimmed = u.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed).ok()?;
    (matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some())
        .then(|| trimmed.to_owned())
}

/// `http.public_url`, else `http(s)://<listen>` with an unspecified IP replaced by the first
/// non-loopback IPv4 interface address (127.0.0.1 when there is none).
pub fn default_internal_url(http: &HttpConfig) -> String {
    if let Some(public) = &http.public_url {
        return public.trim_end_matches('/').to_owned();
    }
    let scheme = if http.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let mut addr = http.listen;
    if addr.ip().is_unspecified() {
        let ip = if_addrs::get_if_addrs()
            .ok()
            .and_then(|ifs| {
                ifs.iter()
                    .map(|i| i.ip())
                    .find(|ip| ip.is_ipv4() && !ip.is_loopback())
            })
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        addr.set_ip(ip);
    }
    format!("{scheme}://{addr}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_check_refuses_cluster_mode_without_postgres() {
        assert_eq!(check_cluster_database(false, None), Ok(()));
        assert_eq!(check_cluster_database(false, Some("sqlite://x.db")), Ok(()));
        assert_eq!(
            check_cluster_database(true, Some("postgres://venue@db/venue")),
            Ok(())
        );
        assert_eq!(
            check_cluster_database(true, Some("postgresql://db/venue")),
            Ok(())
        );
        let none = check_cluster_database(true, None).unwrap_err();
        assert!(
            none.contains("PostgreSQL") && none.contains("VENUE_DATABASE_URL"),
            "{none}"
        );
        assert!(none.contains("default SQLite"), "{none}");
        let sqlite = check_cluster_database(true, Some("sqlite:///var/venue.db")).unwrap_err();
        assert!(sqlite.contains("sqlite://"), "{sqlite}");
    }

    #[test]
    fn node_ids_are_checked_generated_once_and_kept() {
        assert!(NodeId::parse("edge-1.example_2").is_ok());
        for bad in ["", "a b", "ä", &"x".repeat(65), "a/b"] {
            assert!(NodeId::parse(bad).is_err(), "{bad:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let first = stored_node_id(dir.path()).unwrap();
        assert!(first.as_str().starts_with("node-"));
        assert_eq!(stored_node_id(dir.path()).unwrap(), first);
        std::fs::write(dir.path().join(NODE_ID_FILE), "bad id\n").unwrap();
        assert!(stored_node_id(dir.path()).is_err());
    }

    #[test]
    fn the_section_is_checked_only_in_cluster_mode_and_resolves_defaults() {
        let mut c = ClusterConfig {
            drain_timeout_s: 0,
            ..Default::default()
        };
        assert_eq!(c.validate(), Ok(()), "single-node mode ignores the section");
        c.redis_url = Some(Secret::new("redis://127.0.0.1:6379"));
        c.drain_timeout_s = 30;
        let e = c.validate().unwrap_err();
        assert!(e.contains("VENUE_CLUSTER_SECRET"), "{e}");
        c.secret = Some(Secret::new("short"));
        assert!(c.validate().unwrap_err().contains("at least 16"));
        c.secret = Some(Secret::new("0123456789abcdef-cluster"));
        assert_eq!(c.validate(), Ok(()));
        c.redis_url = Some(Secret::new("http://127.0.0.1:6379"));
        assert!(c.validate().unwrap_err().contains("redis://"));
        c.redis_url = Some(Secret::new("redis://127.0.0.1:6379/0"));
        c.internal_url = Some("ftp://x".into());
        assert!(c.validate().is_err());
        c.internal_url = None;

        let dir = tempfile::tempdir().unwrap();
        let http = HttpConfig {
            listen: "10.1.2.3:8080".parse().unwrap(),
            ..Default::default()
        };
        let s = c.resolve(&http, dir.path()).unwrap().unwrap();
        assert_eq!(s.internal_url, "http://10.1.2.3:8080");
        assert_eq!(s.drain_timeout, Duration::from_secs(30));
        assert_eq!(s.node_id, stored_node_id(dir.path()).unwrap());
        let http = HttpConfig {
            public_url: Some("https://venue.example.org".into()),
            ..http
        };
        c.node_id = Some("edge-7".into());
        let s = c.resolve(&http, dir.path()).unwrap().unwrap();
        assert_eq!(s.internal_url, "https://venue.example.org");
        assert_eq!(s.node_id.as_str(), "edge-7");
        c.internal_url = Some("http://10.0.0.7:8080/".into());
        let s = c.resolve(&http, dir.path()).unwrap().unwrap();
        assert_eq!(s.internal_url, "http://10.0.0.7:8080");
        assert!(
            ClusterConfig::default()
                .resolve(&http, dir.path())
                .unwrap()
                .is_none()
        );
    }
}
