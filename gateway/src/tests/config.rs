//! Unit tests of `config.rs` (kept in their own file).

use super::*;
use std::collections::HashMap;

const SAMPLE: &str = include_str!("../../venue.sample.toml");

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn sample_config_parses_and_equals_defaults_when_uncommented() {
    // The sample has every option commented out: parsing it gives the defaults.
    let parsed = Config::from_toml(SAMPLE).expect("sample parses");
    assert_eq!(parsed, Config::default());
    // Uncommenting every `#key = value` line must still parse and validate.
    let uncommented: String = SAMPLE
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_alphabetic()) => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    // The TURN TLS certificate is read at validation: give it a real one.
    let dir = tempfile::tempdir().expect("tempdir");
    let key = rcgen::generate_simple_self_signed(vec!["venue.example.org".to_owned()])
        .expect("self-signed");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, key.cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.signing_key.serialize_pem()).expect("write key");
    let uncommented = uncommented
        .replace("/etc/venue/turn-cert.pem", &cert_path.display().to_string())
        .replace("/etc/venue/turn-key.pem", &key_path.display().to_string());
    let mut c = Config::from_toml(&uncommented).expect("uncommented sample parses");
    c.validate().expect("uncommented sample validates");
    assert_eq!(
        c.http.public_url.as_deref(),
        Some("https://venue.example.org")
    );
    assert_eq!(c.media.max_slots, 4);
    assert_eq!(c.interaction, InteractionConfig::default());
    assert!(c.turn.enabled && c.turn.tls_listen.is_some());
}

#[test]
fn interaction_section_is_validated_and_per_ip_factor_has_an_env_override() {
    let mut c = Config::from_toml("[interaction]\ntick_ms = 5\n").expect("parses");
    assert!(c.validate().is_err());
    let mut c = Config::from_toml("[interaction.limits]\nchat = { per_second = 0, burst = 1 }\n")
        .expect("parses");
    assert!(c.validate().is_err());
    assert!(Config::from_toml("[interaction]\nwat = 1\n").is_err());
    let c = Config::load_with_env(&Cli::default(), |k| {
        (k == "VENUE_INTERACTION_PER_IP_FACTOR").then(|| "0".to_owned())
    })
    .expect("loads");
    assert_eq!(c.interaction.limits.per_ip_factor, 0);
    assert_eq!(
        c.interaction.hub_config().tick,
        std::time::Duration::from_millis(50)
    );
}

#[test]
fn no_args_gives_defaults() {
    let c = Config::load_with_env(&Cli::default(), no_env).expect("loads");
    assert_eq!(c, Config::default());
    assert_eq!(c.http.listen, "0.0.0.0:8080".parse().expect("addr"));
    assert_eq!(c.media.base_port, 50000);
    assert_eq!(c.data_dir, PathBuf::from("./venue-data"));
}

#[test]
fn unknown_fields_are_rejected() {
    assert!(Config::from_toml("[http]\nlisten = \"0.0.0.0:1\"\nbogus = 1\n").is_err());
    assert!(Config::from_toml("nope = 1\n").is_err());
    assert!(Config::from_toml("[media]\nbase_port = 1\nwat = 2\n").is_err());
}

#[test]
fn layers_file_then_env_then_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("venue.toml");
    std::fs::write(
        &path,
        "data_dir = \"/from-file\"\n[http]\nlisten = \"127.0.0.1:9000\"\n[media]\nbase_port = 40000\nmax_slots = 6\n",
    )
    .expect("write");
    let env: HashMap<&str, String> = [
        ("VENUE_CONFIG", path.display().to_string()),
        ("VENUE_HTTP_LISTEN", "127.0.0.1:9001".into()),
        ("VENUE_MEDIA_BASE_PORT", "41000".into()),
        ("VENUE_ADMIN_TOKEN", "env-token-123".into()),
        ("VENUE_MEDIA_CANDIDATE_IPS", "10.0.0.1, 10.0.0.2".into()),
    ]
    .into_iter()
    .collect();
    let lookup = |k: &str| env.get(k).cloned();

    let c = Config::load_with_env(&Cli::default(), lookup).expect("loads");
    assert_eq!(c.data_dir, PathBuf::from("/from-file"));
    assert_eq!(c.http.listen, "127.0.0.1:9001".parse().expect("addr"));
    assert_eq!(c.media.base_port, 41000);
    assert_eq!(c.media.max_slots, 6);
    assert_eq!(
        c.admin_token.as_ref().map(Secret::expose),
        Some("env-token-123")
    );
    assert_eq!(c.media.candidate_ips.len(), 2);

    let cli = Cli::try_parse_from(["venue", "--media-base-port", "42000", "--data-dir", "/cli"])
        .expect("cli");
    let c = Config::load_with_env(&cli, lookup).expect("loads");
    assert_eq!(c.media.base_port, 42000);
    assert_eq!(c.data_dir, PathBuf::from("/cli"));
    assert_eq!(c.http.listen, "127.0.0.1:9001".parse().expect("addr"));
}

#[test]
fn bad_values_are_errors() {
    let env = |k: &str| (k == "VENUE_MEDIA_BASE_PORT").then(|| "seventy".to_string());
    assert!(matches!(
        Config::load_with_env(&Cli::default(), env),
        Err(ConfigError::Env { .. })
    ));
    let env = |k: &str| (k == "VENUE_MEDIA_MAX_SLOTS").then(|| "10".to_string());
    assert!(matches!(
        Config::load_with_env(&Cli::default(), env),
        Err(ConfigError::Media(_))
    ));
    let env = |k: &str| (k == "VENUE_PUBLIC_URL").then(|| "ftp://x".to_string());
    assert!(matches!(
        Config::load_with_env(&Cli::default(), env),
        Err(ConfigError::Invalid(_))
    ));
    let env = |k: &str| (k == "VENUE_ADMIN_TOKEN").then(|| "short".to_string());
    assert!(matches!(
        Config::load_with_env(&Cli::default(), env),
        Err(ConfigError::Invalid(_))
    ));
}

#[test]
fn public_url_is_normalised_and_secret_not_debug_printed() {
    let env = |k: &str| match k {
        "VENUE_PUBLIC_URL" => Some("https://venue.example.org/".to_string()),
        "VENUE_ADMIN_TOKEN" => Some("super-secret-token".to_string()),
        _ => None,
    };
    let c = Config::load_with_env(&Cli::default(), env).expect("loads");
    assert_eq!(
        c.http.public_url.as_deref(),
        Some("https://venue.example.org")
    );
    assert!(!format!("{c:?}").contains("super-secret-token"));
}

#[test]
fn webhooks_need_a_secret_take_urls_from_the_env_and_never_print_the_secret() {
    let c = Config::load_with_env(&Cli::default(), no_env).expect("loads");
    assert!(c.webhooks.urls.is_empty());
    assert_eq!(
        (
            c.webhooks.timeout_ms,
            c.webhooks.max_attempts,
            c.webhooks.retry_initial_ms
        ),
        (5000, 6, 1000)
    );
    // URLs without a secret: a clear error naming the key.
    let mut c = Config::from_toml("[webhooks]\nurls = [\"https://hooks.example.org/v\"]\n")
        .expect("parses");
    let err = c.validate().expect_err("no secret").to_string();
    assert!(err.contains("webhooks.secret"), "{err}");
    let mut c = Config::from_toml(
        "[webhooks]\nurls = [\"https://hooks.example.org/v\"]\nsecret = \"short\"\n",
    )
    .expect("parses");
    assert!(c.validate().is_err());
    let mut c = Config::from_toml(
        "[webhooks]\nurls = [\"ftp://hooks.example.org/v\"]\nsecret = \"0123456789abcdef\"\n",
    )
    .expect("parses");
    assert!(c.validate().is_err());
    let mut c = Config::from_toml("[webhooks]\nmax_attempts = 0\n").expect("parses");
    assert!(c.validate().is_err());
    assert!(Config::from_toml("[webhooks]\nurl = \"x\"\n").is_err());

    let env: HashMap<&str, &str> = HashMap::from([
        (
            "VENUE_WEBHOOKS_URLS",
            "https://a.example.org/hook, http://127.0.0.1:9000/h,",
        ),
        ("VENUE_WEBHOOKS_SECRET", "env-secret-0123456789"),
    ]);
    let c = Config::load_with_env(&Cli::default(), |k| env.get(k).map(|v| v.to_string()))
        .expect("loads");
    assert_eq!(
        c.webhooks.urls,
        vec!["https://a.example.org/hook", "http://127.0.0.1:9000/h"]
    );
    let printed = format!("{c:?}");
    assert!(!printed.contains("env-secret-0123456789"), "{printed}");
    // The environment's secret alone is not enough without URLs, and is fine then.
    let c = Config::load_with_env(&Cli::default(), |k| {
        (k == "VENUE_WEBHOOKS_SECRET").then(|| "x".to_owned())
    })
    .expect("no URLs: the secret is unused");
    assert!(c.webhooks.urls.is_empty());
}

#[test]
fn hls_overflow_keys_from_file_env_and_flag_are_validated() {
    assert_eq!(Config::default().hls.max_webrtc_viewers, 500);
    let c =
        Config::from_toml("[hls]\nmax_webrtc_viewers = 3\nmax_cpu_percent = 0\n").expect("parses");
    assert_eq!(c.hls.max_webrtc_viewers, 3);
    assert_eq!(c.hls.max_cpu_percent, 0);
    let env = |k: &str| match k {
        "VENUE_MAX_WEBRTC_VIEWERS" => Some("1".to_owned()),
        "VENUE_MAX_CPU_PERCENT" => Some("70".to_owned()),
        _ => None,
    };
    let c = Config::load_with_env(&Cli::default(), env).expect("loads");
    assert_eq!((c.hls.max_webrtc_viewers, c.hls.max_cpu_percent), (1, 70));
    let cli = Cli {
        max_webrtc_viewers: Some(7),
        ..Default::default()
    };
    let c = Config::load_with_env(&cli, env).expect("loads");
    assert_eq!(
        c.hls.max_webrtc_viewers, 7,
        "the flag beats the environment"
    );
    let bad = |k: &str| (k == "VENUE_MAX_CPU_PERCENT").then(|| "101".to_owned());
    assert!(Config::load_with_env(&Cli::default(), bad).is_err());
    let bad = |k: &str| (k == "VENUE_MAX_WEBRTC_VIEWERS").then(|| "many".to_owned());
    assert!(Config::load_with_env(&Cli::default(), bad).is_err());
}

#[test]
fn tls_paths_from_file_env_and_flags_come_in_pairs() {
    assert_eq!(Config::default().http.tls_cert, None);
    let c =
        Config::from_toml("[http]\ntls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"\n").expect("parses");
    assert_eq!(c.http.tls_cert.as_deref(), Some(Path::new("/c.pem")));
    assert_eq!(c.http.tls_key.as_deref(), Some(Path::new("/k.pem")));
    let env = |k: &str| match k {
        "VENUE_TLS_CERT" => Some("/env-c.pem".to_owned()),
        "VENUE_TLS_KEY" => Some("/env-k.pem".to_owned()),
        _ => None,
    };
    let c = Config::load_with_env(&Cli::default(), env).expect("loads");
    assert_eq!(c.http.tls_cert.as_deref(), Some(Path::new("/env-c.pem")));
    let cli = Cli {
        tls_key: Some("/flag-k.pem".into()),
        ..Default::default()
    };
    let c = Config::load_with_env(&cli, env).expect("loads");
    assert_eq!(c.http.tls_key.as_deref(), Some(Path::new("/flag-k.pem")));
    // One without the other is refused with a message naming both keys.
    let only_cert = |k: &str| (k == "VENUE_TLS_CERT").then(|| "/c.pem".to_owned());
    let err = Config::load_with_env(&Cli::default(), only_cert)
        .expect_err("a certificate without a key")
        .to_string();
    assert!(
        err.contains("http.tls_cert") && err.contains("http.tls_key"),
        "{err}"
    );
    let mut c =
        Config::from_toml("[http]\ntls_cert = \"\"\ntls_key = \"/k.pem\"\n").expect("parses");
    assert!(c.validate().is_err());
}

#[test]
fn hls_program_picture_is_configurable_and_validated() {
    let d = Config::default().hls;
    assert_eq!(
        (d.width, d.height, d.fps, d.video_bitrate_kbps),
        (1280, 720, 30, 3000)
    );
    assert!(d.compose);
    let mut c = Config::from_toml(
        "[hls]\nwidth = 1920\nheight = 1080\nfps = 25\nvideo_bitrate_kbps = 6000\ncompose = false\n",
    )
    .expect("parses");
    c.validate().expect("full HD validates");
    assert_eq!((c.hls.width, c.hls.height, c.hls.fps), (1920, 1080, 25));
    assert!(!c.hls.compose);
    for bad in [
        "[hls]\nwidth = 1281\n",
        "[hls]\nheight = 4000\n",
        "[hls]\nfps = 0\n",
        "[hls]\nvideo_bitrate_kbps = 50\n",
    ] {
        let mut c = Config::from_toml(bad).expect("parses");
        assert!(c.validate().is_err(), "{bad} must be refused");
    }
}

#[test]
fn database_url_comes_from_file_or_env_and_is_checked() {
    let c = Config::load_with_env(&Cli::default(), no_env).expect("defaults");
    assert_eq!(c.database.url, None);
    let c = Config::load_with_env(&Cli::default(), |k| {
        (k == "VENUE_DATABASE_URL").then(|| "postgres://venue:pw@127.0.0.1/venue".to_owned())
    })
    .expect("env");
    assert_eq!(
        c.database.url.as_ref().map(Secret::expose),
        Some("postgres://venue:pw@127.0.0.1/venue")
    );
    assert!(
        !format!("{c:?}").contains("pw@"),
        "the password is never printed"
    );
    let mut c = Config::from_toml("[database]\nurl = \"sqlite://x/venue.db\"\n").expect("toml");
    c.validate().expect("sqlite url");
    let mut c = Config::from_toml("[database]\nurl = \"mysql://x/y\"\n").expect("toml");
    let e = c.validate().expect_err("mysql refused");
    assert!(e.to_string().contains("database.url"), "{e}");
    assert!(Config::from_toml("[database]\nhost = \"x\"\n").is_err());
}

#[test]
fn venue_migrate_is_a_subcommand() {
    let cli = Cli::try_parse_from([
        "venue",
        "migrate",
        "--from",
        "sqlite://venue-data/venue.db",
        "--to",
        "postgres://h/venue",
    ])
    .expect("parses");
    assert_eq!(
        cli.command,
        Some(Command::Migrate {
            from: "sqlite://venue-data/venue.db".into(),
            to: "postgres://h/venue".into(),
        })
    );
    assert!(Cli::try_parse_from(["venue", "migrate", "--from", "sqlite://x"]).is_err());
    assert_eq!(Cli::try_parse_from(["venue"]).expect("serve").command, None);
}

#[test]
fn cluster_keys_come_from_the_env_and_cluster_mode_is_refused_without_postgres() {
    let env: HashMap<&str, &str> = [
        ("VENUE_REDIS_URL", "redis://10.0.0.2:6379"),
        ("VENUE_CLUSTER_SECRET", "the-same-secret-on-every-node"),
        ("VENUE_NODE_ID", "edge-1"),
        ("VENUE_INTERNAL_URL", "http://10.0.0.11:8080"),
        ("VENUE_DRAIN_TIMEOUT_S", "12"),
        ("VENUE_ADMIN_TOKEN", "admin-token-123"),
    ]
    .into_iter()
    .collect();
    let lookup = |k: &str| env.get(k).map(|v| v.to_string());
    let mut c = Config::default();
    c.apply_env(lookup).expect("env applies");
    assert_eq!(
        c.cluster.redis_url.as_ref().map(Secret::expose),
        Some("redis://10.0.0.2:6379")
    );
    assert_eq!(c.cluster.node_id.as_deref(), Some("edge-1"));
    assert_eq!(c.cluster.drain_timeout_s, 12);
    assert!(
        !format!("{c:?}").contains("the-same-secret"),
        "never printed"
    );
    // Everything else is right, but the database is this node's SQLite: refused, clearly.
    let e = Config::load_with_env(&Cli::default(), lookup)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("PostgreSQL") && e.contains("VENUE_DATABASE_URL"),
        "{e}"
    );
    // Cluster mode needs the secret and a shared admin token (checked before the database).
    let without = |name: &'static str| move |k: &str| (k != name).then(|| lookup(k)).flatten();
    let e = Config::load_with_env(&Cli::default(), without("VENUE_CLUSTER_SECRET"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("VENUE_CLUSTER_SECRET"), "{e}");
    let e = Config::load_with_env(&Cli::default(), without("VENUE_ADMIN_TOKEN"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("VENUE_ADMIN_TOKEN"), "{e}");
    // With a shared PostgreSQL database it loads.
    let with_pg = |k: &str| match k {
        "VENUE_DATABASE_URL" => Some("postgres://venue:pw@10.0.0.3/venue".to_owned()),
        _ => lookup(k),
    };
    let c = Config::load_with_env(&Cli::default(), with_pg).expect("cluster mode on PostgreSQL");
    assert!(c.cluster.enabled());
    // Single-node mode ignores the section.
    let c = Config::load_with_env(&Cli::default(), without("VENUE_REDIS_URL")).expect("loads");
    assert!(!c.cluster.enabled());
}
