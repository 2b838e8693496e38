//! `he serve`: the online service. It holds public keys and ciphertexts
//! only; the API, limits and retention are in docs/SERVICE.md, the config
//! file, metrics, shutdown and the systemd unit in docs/OPERATIONS.md.
//! Logs go to standard error (`RUST_LOG=debug` for more, `RUST_LOG=warn`
//! for less).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use he_service::server::tokens::TokenFile;
use he_service::server::{Config, MetricsToken, RedisSettings, StoreKind, TlsFiles};
use tracing_subscriber::EnvFilter;

use crate::cli::ServeArgs;
use crate::files::read_text;

/// The environment variable `--store` is read from.
const STORE_ENV: &str = "HE_STORE";
/// Largest Redis password file read.
const MAX_PASSWORD_FILE: u64 = 4 << 10;

/// Largest config file read.
const MAX_CONFIG_FILE: u64 = 1 << 20;
/// Largest metrics token file read.
const MAX_METRICS_TOKEN_FILE: u64 = 4 << 10;

/// The settings of `he serve`: the config file's (`--config`), if any,
/// with every flag given on the command line over them.
/// `--store` on the command line must not hold a password (every user
/// sees a process's command line); `HE_STORE` fills it in when the flag
/// is absent and is kept apart from the flag's check.
pub(crate) fn settings(cli: ServeArgs) -> Result<ServeArgs> {
    let mut cli = cli;
    if cli
        .store
        .as_deref()
        .is_some_and(RedisSettings::url_has_password)
    {
        bail!(
            "--store: a Redis URL with a password is refused on the command line, where every \
             user of the machine can read it; put it in the config file (store = \"redis://...\"), \
             in the environment (HE_STORE), or the password alone in redis_password_file"
        );
    }
    if cli.store.is_none() {
        cli.store = std::env::var(STORE_ENV).ok().filter(|s| !s.is_empty());
    }
    let Some(path) = cli.config.clone() else {
        return Ok(cli);
    };
    let text = read_text(&path, MAX_CONFIG_FILE, "config file")?;
    let file = parse_config(&text, &path)?;
    overlay(&file, &cli).with_context(|| format!("config file {}", path.display()))
}

/// The settings in a config file; relative paths in it are taken from
/// the file's directory. Unknown keys are refused by name. The message
/// gives the line and column but never quotes the file.
pub(crate) fn parse_config(text: &str, path: &Path) -> Result<ServeArgs> {
    let mut f: ServeArgs = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let before = &text[..s.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let start = before.rfind('\n').map_or(0, |i| i + 1);
                let column = before.len() - start + 1;
                // The key of that line, if it has one (never its value).
                let key = text[start..]
                    .split(['=', '\n'])
                    .next()
                    .map(str::trim)
                    .filter(|k| {
                        !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    })
                    .map(|k| format!(", key {k}"))
                    .unwrap_or_default();
                format!(" (line {line}, column {column}{key})")
            })
            .unwrap_or_default();
        anyhow!(
            "config file {}{at}: {}",
            path.display(),
            e.message().trim_end()
        )
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    for p in [
        &mut f.tokens,
        &mut f.tls_cert,
        &mut f.tls_key,
        &mut f.metrics_token_file,
        &mut f.redis_password_file,
    ]
    .into_iter()
    .flatten()
    {
        if p.is_relative() {
            *p = dir.join(&*p);
        }
    }
    Ok(f)
}

/// `file` with every setting of `cli` over it. Serialized, a setting not
/// given on the command line is absent (see [`ServeArgs`]), so this is a
/// merge of two tables, the same for every key.
fn overlay(file: &ServeArgs, cli: &ServeArgs) -> Result<ServeArgs> {
    let mut merged = toml::Table::try_from(file)?;
    merged.extend(toml::Table::try_from(cli)?);
    let mut out: ServeArgs = merged.try_into()?;
    out.config.clone_from(&cli.config);
    Ok(out)
}

/// The service's configuration from the settings, over the defaults.
pub(crate) fn config(a: &ServeArgs) -> Result<Config> {
    // Clap keeps these apart on the command line; a config file may not
    // either.
    if a.anonymous && a.tokens.is_some() {
        bail!("anonymous and tokens exclude each other: choose one");
    }
    if a.allow_plain_http && a.tls_cert.is_some() {
        bail!("allow_plain_http and tls_cert exclude each other: choose one");
    }
    if a.tls_cert.is_some() != a.tls_key.is_some() {
        bail!("tls_cert and tls_key go together: give both or neither");
    }
    let mut c = Config {
        allow_anonymous: a.anonymous,
        ..Config::default()
    };
    if let Some(addr) = a.listen {
        c.listen = addr;
    }
    if let Some(path) = &a.tokens {
        c.tokens = Some(TokenFile::load(path)?);
    }
    if let Some(n) = a.max_job_cost {
        c.max_job_cost = n;
    }
    if let Some(mib) = a.max_body {
        // A config file skips clap's checks: no silent wrap-around.
        c.max_body_bytes = usize::try_from(mib)
            .ok()
            .and_then(|m| m.checked_mul(1 << 20))
            .filter(|_| mib <= 4096)
            .ok_or_else(|| anyhow::anyhow!("max_body is {mib} MiB; at most 4096 MiB"))?;
    }
    if let Some(n) = a.queue {
        c.queue_capacity = n;
    }
    if let Some(s) = a.retention {
        c.retention = Duration::from_secs(s);
    }
    if let Some(n) = a.workers {
        c.workers = Some(n);
    }
    if let Some(n) = a.max_side {
        c.max_side = n;
    }
    if let Some(n) = a.max_chain {
        c.max_chain_len = n;
    }
    if let Some(s) = a.upload_timeout {
        c.upload_timeout = Duration::from_secs(s);
    }
    if let Some(n) = a.max_connections {
        c.max_connections = n;
    }
    if let Some(n) = a.concurrent_jobs {
        c.concurrent_jobs = n;
    }
    if let Some(n) = a.heavy_job_units {
        c.heavy_job_units = n;
    }
    // connections and TLS
    if let Some(s) = a.header_timeout {
        c.header_timeout = Duration::from_secs(s);
    }
    if let Some(s) = a.idle_timeout {
        c.idle_timeout = Duration::from_secs(s);
    }
    if let Some(s) = a.body_read_timeout {
        c.body_read_timeout = Duration::from_secs(s);
    }
    if let Some(kib) = a.min_upload_rate {
        c.min_upload_rate = kib.saturating_mul(1024);
    }
    if let Some(n) = a.max_connections_per_client {
        c.max_connections_per_client = usize::try_from(n).unwrap_or(usize::MAX);
    }
    c.trusted_proxies.clone_from(&a.trusted_proxies);
    if let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) {
        c.tls = Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        });
    }
    c.allow_plain_http = a.allow_plain_http;
    if let Some(s) = a.drain_timeout {
        c.drain_timeout = Duration::from_secs(s);
    }
    if let Some(path) = &a.metrics_token_file {
        c.metrics_token = Some(load_metrics_token(path)?);
    }
    c.store = store(a)?;
    if let Some(role) = &a.role {
        c.role = role.parse()?;
    }
    Ok(c)
}

/// The store of the settings: `memory` or a Redis URL, with its
/// password file and queue settings. Never quotes the URL.
fn store(a: &ServeArgs) -> Result<StoreKind> {
    let redis_only = a.redis_password_file.is_some()
        || a.redis_prefix.is_some()
        || a.visibility_timeout.is_some()
        || a.max_deliveries.is_some();
    let url = match a.store.as_deref() {
        None | Some("memory") => {
            if redis_only {
                bail!(
                    "redis_password_file, redis_prefix, visibility_timeout and max_deliveries \
                     are settings of the Redis store: give store = \"redis://HOST:PORT/DB\" too"
                );
            }
            return Ok(StoreKind::Memory);
        }
        Some(url) if url.starts_with("redis://") => url,
        Some(url) if url.starts_with("rediss://") => bail!(
            "TLS to Redis (rediss://) is not built in: keep Redis on loopback or a private \
             network, or put a TLS tunnel in front of it and give redis://"
        ),
        Some(_) => bail!("the store is memory or a URL redis://HOST:PORT/DB"),
    };
    let password = a
        .redis_password_file
        .as_deref()
        .map(|p| {
            read_secret(p, MAX_PASSWORD_FILE, "Redis password file").map(|t| t.trim().to_string())
        })
        .transpose()?;
    let mut r = RedisSettings::new(url, password)?;
    if let Some(p) = &a.redis_prefix {
        r.prefix.clone_from(p);
    }
    if let Some(s) = a.visibility_timeout {
        r.visibility_timeout = Duration::from_secs(s);
    }
    if let Some(n) = a.max_deliveries {
        r.max_deliveries = n;
    }
    Ok(StoreKind::Redis(r))
}

/// Reads the metrics token; refuses a file others can read (on Unix).
fn load_metrics_token(path: &Path) -> Result<MetricsToken> {
    let text = read_secret(path, MAX_METRICS_TOKEN_FILE, "metrics token file")?;
    MetricsToken::new(&text).with_context(|| format!("metrics token file {}", path.display()))
}

/// Reads a file holding a secret (`what`, at most `max` bytes); refuses
/// one that others can read (on Unix).
fn read_secret(path: &Path, max: u64, what: &str) -> Result<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .with_context(|| format!("cannot read {what} {}", path.display()))?;
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_file() && mode & 0o007 != 0 {
            bail!(
                "the {what} {} is readable by every user (mode {mode:o}); \
                 run chmod o-rwx on it",
                path.display()
            );
        }
    }
    read_text(path, max, what)
}

/// Runs `he serve` until SIGTERM or Ctrl-C, then drains and exits.
pub(crate) fn run(a: ServeArgs) -> Result<()> {
    let config = config(&settings(a)?)?;
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let who = match &config.tokens {
        Some(t) => format!("{} API tokens", t.tokens.len()),
        None => "anonymous: no tokens".to_string(),
    };
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let store = match &config.store {
        StoreKind::Redis(r) => format!(
            "store: Redis at {}, role {}",
            r.address(),
            config.role.name()
        ),
        _ => "store: memory".to_string(),
    };
    eprintln!(
        "he serve on {scheme}://{} ({who}; {store}; Ctrl-C or SIGTERM to stop, draining for up \
         to {} s); API: docs/SERVICE.md",
        config.listen,
        config.drain_timeout.as_secs()
    );
    he_service::server::run_until_stopped(config)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};
    use std::net::{IpAddr, SocketAddr};
    use std::path::PathBuf;

    use crate::cli::Cli;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("he-cli-serve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// The ids of the flags of `he serve` that are config keys: all but
    /// `--config` and clap's own.
    fn flag_keys() -> Vec<String> {
        let cmd = Cli::command();
        let serve = cmd.find_subcommand("serve").unwrap();
        serve
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .filter(|id| !["config", "help", "version"].contains(&id.as_str()))
            .collect()
    }

    /// `he serve ARGS...` as clap parses it.
    fn cli(args: &[&str]) -> ServeArgs {
        let m = Cli::command()
            .try_get_matches_from([&["he", "serve"], args].concat())
            .unwrap();
        match Cli::from_arg_matches(&m).unwrap().command {
            crate::cli::Command::Serve(a) => a,
            _ => unreachable!(),
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn the_example_config_names_every_flag_and_its_values_start_a_server() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/he-serve.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        // Every flag has a line, set or commented out (`# key = value`).
        let uncommented: String = text
            .lines()
            .map(|l| {
                let bare = l.trim_start_matches("# ");
                let key = bare.split(" = ").next().unwrap_or("");
                if l.starts_with("# ") && flag_keys().iter().any(|k| k == key) {
                    bare
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let table: toml::Table = toml::from_str(&uncommented).unwrap();
        let mut keys: Vec<&String> = table.keys().collect();
        let mut flags = flag_keys();
        keys.sort();
        flags.sort();
        assert_eq!(
            keys,
            flags.iter().collect::<Vec<_>>(),
            "deploy/he-serve.toml and the flags of he serve differ"
        );
        // The commented values are valid too.
        parse_config(&uncommented, &path).unwrap();
        // The file as it is gives a configuration the server accepts
        // (without the files it names, which are on a real host only).
        let mut a = parse_config(&text, &path).unwrap();
        assert_eq!(
            a.tokens.as_deref(),
            Some(Path::new("/etc/he-serve/tokens.json"))
        );
        a.tokens = None;
        a.metrics_token_file = None;
        let c = config(&a).unwrap();
        assert_eq!(c.drain_timeout, Duration::from_secs(30));
        assert_eq!(c.trusted_proxies.len(), 2);
        he_service::server::Service::new(c).unwrap();
    }

    #[test]
    fn the_cluster_configs_are_ones_he_serve_takes() {
        // deploy/cluster/ (docs/SCALING.md): scripts/cluster-test.sh runs
        // them for real; this catches a renamed key without Redis.
        for (name, role) in [("he-api.toml", "api"), ("he-worker.toml", "worker")] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../deploy/cluster")
                .join(name);
            let text = std::fs::read_to_string(&path).unwrap();
            let a = parse_config(&text, &path).unwrap();
            assert_eq!(a.role.as_deref(), Some(role), "{name}");
            assert_eq!(
                a.store.as_deref(),
                Some("redis://127.0.0.1:6379/0"),
                "{name}"
            );
            assert_eq!(
                a.redis_password_file.as_deref(),
                Some(Path::new("/etc/he-serve/redis-password")),
                "{name}"
            );
        }
    }

    #[test]
    fn every_key_reaches_the_server_config() {
        let d = scratch("every-key");
        write(&d, "tokens.json", r#"{"version": 1, "tokens": []}"#);
        let token = write(&d, "metrics-token", "metrics-token-0123456789abcdef\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        // Every key but the ones that exclude others, with values that
        // are not the defaults; paths relative to the file.
        let file = write(
            &d,
            "he-serve.toml",
            r#"
listen = "127.0.0.1:9911"
max_body = 3
queue = 4
retention = 50
workers = 3
max_side = 999
max_chain = 5
upload_timeout = 60
max_connections = 77
concurrent_jobs = 2
heavy_job_units = 31
tokens = "tokens.json"
max_job_cost = 123
header_timeout = 6
idle_timeout = 7
body_read_timeout = 8
min_upload_rate = 9
max_connections_per_client = 11
trusted_proxies = ["10.1.2.3"]
drain_timeout = 12
metrics_token_file = "metrics-token"
"#,
        );
        let a = settings(cli(&["--config", file.to_str().unwrap()])).unwrap();
        let c = config(&a).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9911".parse::<SocketAddr>().unwrap());
        assert_eq!(c.max_body_bytes, 3 << 20);
        assert_eq!(c.heavy_job_units, 31);
        assert_eq!(c.queue_capacity, 4);
        assert_eq!(c.retention, Duration::from_secs(50));
        assert_eq!(c.workers.map(|n| n.get()), Some(3));
        assert_eq!(c.max_side, 999);
        assert_eq!(c.max_chain_len, 5);
        assert_eq!(c.upload_timeout, Duration::from_secs(60));
        assert_eq!(c.max_connections, 77);
        assert_eq!(c.concurrent_jobs, 2);
        assert!(c.tokens.is_some());
        assert_eq!(c.max_job_cost, 123);
        assert_eq!(c.header_timeout, Duration::from_secs(6));
        assert_eq!(c.idle_timeout, Duration::from_secs(7));
        assert_eq!(c.body_read_timeout, Duration::from_secs(8));
        assert_eq!(c.min_upload_rate, 9 * 1024);
        assert_eq!(c.max_connections_per_client, 11);
        assert_eq!(c.trusted_proxies, ["10.1.2.3".parse::<IpAddr>().unwrap()]);
        assert_eq!(c.drain_timeout, Duration::from_secs(12));
        assert_eq!(
            c.metrics_token,
            Some(MetricsToken::new("metrics-token-0123456789abcdef").unwrap())
        );
        // The token is never printed, even in the configuration's Debug.
        assert!(!format!("{c:?}").contains("metrics-token-0123"));
        // A round trip through the table keeps every setting.
        let back: ServeArgs = toml::Table::try_from(&a).unwrap().try_into().unwrap();
        assert_eq!(
            toml::Table::try_from(&back).unwrap(),
            toml::Table::try_from(&a).unwrap()
        );
        // From a file, clap's checks do not run: an overflowing size is
        // refused, not wrapped to something small.
        let huge = ServeArgs {
            max_body: Some(17_592_186_044_417),
            ..a
        };
        let e = config(&huge).unwrap_err();
        assert!(e.to_string().contains("at most 4096 MiB"), "{e}");

        // The keys that exclude the ones above.
        write(&d, "cert.pem", "");
        let file = write(
            &d,
            "other.toml",
            "anonymous = true\nallow_plain_http = true\nlisten = \"0.0.0.0:0\"\n",
        );
        let c = config(&settings(cli(&["--config", file.to_str().unwrap()])).unwrap()).unwrap();
        assert!(c.allow_anonymous && c.allow_plain_http);
        let file = write(
            &d,
            "tls.toml",
            "tls_cert = \"cert.pem\"\ntls_key = \"/k.pem\"\n",
        );
        let c = config(&settings(cli(&["--config", file.to_str().unwrap()])).unwrap()).unwrap();
        let tls = c.tls.unwrap();
        assert_eq!((tls.cert, tls.key), (d.join("cert.pem"), "/k.pem".into()));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn flags_on_the_command_line_win_over_the_file() {
        let d = scratch("override");
        let file = write(
            &d,
            "he-serve.toml",
            "queue = 3\nretention = 40\ntrusted_proxies = [\"10.0.0.1\"]\nanonymous = true\n",
        );
        let f = file.to_str().unwrap();
        let c = config(
            &settings(cli(&[
                "--config",
                f,
                "--queue",
                "5",
                "--trusted-proxy",
                "10.0.0.2",
                "--listen",
                "127.0.0.1:9",
            ]))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(c.queue_capacity, 5, "the flag wins");
        assert_eq!(c.retention, Duration::from_secs(40), "the file fills in");
        assert_eq!(c.trusted_proxies, ["10.0.0.2".parse::<IpAddr>().unwrap()]);
        assert!(
            c.allow_anonymous,
            "a flag not given does not turn the file's off"
        );
        assert_eq!(c.listen.port(), 9);
        // A flag that excludes a key of the file is refused, as clap
        // refuses both flags.
        let e =
            config(&settings(cli(&["--config", f, "--tokens", "t.json"])).unwrap()).unwrap_err();
        assert!(e.to_string().contains("anonymous and tokens"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name_and_line() {
        let d = scratch("unknown");
        let file = write(&d, "he-serve.toml", "queue = 3\nqeueu = 4\n");
        let e = settings(cli(&["--config", file.to_str().unwrap()])).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("unknown field `qeueu`") && msg.contains("line 2"),
            "{msg}"
        );
        // The command line's own flag is no key.
        let e = parse_config("config = \"x.toml\"\n", &file).unwrap_err();
        assert!(e.to_string().contains("unknown field `config`"), "{e}");
        let e = parse_config("\n\nqueue = \"eight\"\n", &file).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("line 3") && msg.contains("queue"), "{msg}");
        // Too large, or not a regular file: refused before parsing.
        let big = write(&d, "big.toml", &"# padding\n".repeat(120_000));
        let e = settings(cli(&["--config", big.to_str().unwrap()])).unwrap_err();
        assert!(e.to_string().contains("at most"), "{e}");
        let e = settings(cli(&["--config", d.to_str().unwrap()])).unwrap_err();
        assert!(e.to_string().contains("config file"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_redis_url_with_a_password_is_refused_on_the_command_line_only() {
        use he_service::server::Role;
        let e = settings(cli(&["--store", "redis://:sesame-4711@127.0.0.1:6379/0"])).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("refused on the command line"), "{msg}");
        assert!(!msg.contains("sesame"), "{msg}");
        // Without a password, the command line is fine.
        let c = config(&settings(cli(&["--store", "redis://127.0.0.1:6379/3"])).unwrap()).unwrap();
        assert!(matches!(&c.store, StoreKind::Redis(r) if r.address() == "127.0.0.1:6379/3"));
        // From the config file it is accepted, with every Redis key, and
        // never printed.
        let d = scratch("redis");
        let file = write(
            &d,
            "he-serve.toml",
            "store = \"redis://:sesame-4711@127.0.0.1:6379/0\"\nrole = \"worker\"\n\
             redis_prefix = \"x:\"\nvisibility_timeout = 7\nmax_deliveries = 2\n",
        );
        let f = file.to_str().unwrap();
        let c = config(&settings(cli(&["--config", f])).unwrap()).unwrap();
        let StoreKind::Redis(r) = &c.store else {
            panic!("{c:?}")
        };
        assert_eq!(r.address(), "127.0.0.1:6379/0");
        assert_eq!(r.prefix, "x:");
        assert_eq!(r.visibility_timeout, Duration::from_secs(7));
        assert_eq!(r.max_deliveries, 2);
        assert_eq!(c.role, Role::Worker);
        assert!(!format!("{c:?}").contains("sesame"));
        // The role on the command line wins over the file's.
        let c = config(&settings(cli(&["--config", f, "--role", "api"])).unwrap()).unwrap();
        assert_eq!(c.role, Role::Api);
        // A password file, relative to the config file.
        let pw = write(&d, "redis-password", "from-a-file\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
            let file = write(
                &d,
                "open.toml",
                "store = \"redis://127.0.0.1:6379/0\"\nredis_password_file = \"redis-password\"\n",
            );
            let e =
                config(&settings(cli(&["--config", file.to_str().unwrap()])).unwrap()).unwrap_err();
            assert!(e.to_string().contains("readable by every user"), "{e}");
            std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let file = write(
            &d,
            "pw.toml",
            "store = \"redis://127.0.0.1:6379/0\"\nredis_password_file = \"redis-password\"\n",
        );
        let c = config(&settings(cli(&["--config", file.to_str().unwrap()])).unwrap()).unwrap();
        assert!(!format!("{c:?}").contains("from-a-file"));
        // Redis settings without the Redis store, and stores that are
        // neither, are refused.
        let e = config(&settings(cli(&["--visibility-timeout", "5"])).unwrap()).unwrap_err();
        assert!(e.to_string().contains("settings of the Redis store"), "{e}");
        let e = config(&settings(cli(&["--store", "postgres://x"])).unwrap()).unwrap_err();
        assert!(e.to_string().contains("memory or a URL"), "{e}");
        let e = config(&settings(cli(&["--store", "rediss://h:6380/0"])).unwrap()).unwrap_err();
        assert!(e.to_string().contains("not built in"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_metrics_token_readable_by_everyone_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = scratch("token-mode");
        let token = write(&d, "metrics-token", "metrics-token-0123456789abcdef\n");
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_metrics_token(&token).unwrap_err();
        assert!(e.to_string().contains("readable by every user"), "{e}");
        assert!(!e.to_string().contains("0123456789abcdef"), "{e}");
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o640)).unwrap();
        load_metrics_token(&token).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }
}
