//! `oci-cache`: the operators' command line, a thin layer over the library.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use oci_cache::{
    Cache, CacheOptions, Credential, FetchOptions, Image, ImageReference, Mirror, Platform,
    Progress, ProgressSink, PruneOptions,
};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// Fetch OCI images through a local cache of extracted layers.
#[derive(Parser)]
#[command(name = "oci-cache", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch an image, serving what the caching policy allows from the cache.
    Fetch(Box<FetchArgs>),
    /// Show what the cache holds, of one reference or of the whole cache (no network).
    Status(StatusArgs),
    /// Remove cached layers: least recently used first to fit a size, or those unused for a
    /// while, or all; never one a fetch or a result of any process is using.
    Prune(PruneArgs),
    /// Print each reference pinned to the digest it points at now (one HEAD each, nothing
    /// downloaded), as `REFERENCE@DIGEST` lines for a lock file.
    Resolve(Box<ResolveArgs>),
}

#[derive(Args)]
struct PruneArgs {
    #[command(flatten)]
    common: CommonArgs,

    /// Remove least recently used layers until the cache's layers fit in SIZE (bytes, or with
    /// a unit: 500MB, 2GiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_size: Option<u64>,

    /// Remove layers unused for longer than DURATION (30m, 12h, 7d).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    unused_for: Option<std::time::Duration>,

    /// Remove every layer not in use.
    #[arg(long)]
    all: bool,
}

#[derive(Args)]
struct ResolveArgs {
    #[command(flatten)]
    common: CommonArgs,

    #[command(flatten)]
    registry: RegistryArgs,

    /// The images: [REGISTRY/]REPOSITORY[:TAG][@DIGEST].
    #[arg(required = true)]
    references: Vec<String>,
}

#[derive(Args)]
struct CommonArgs {
    /// The cache directory [default: $XDG_CACHE_HOME/oci-cache, else ~/.cache/oci-cache].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,

    /// Log cache decisions (DEBUG) to stderr; twice: also the HTTP stack's.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Args)]
struct FetchArgs {
    #[command(flatten)]
    common: CommonArgs,

    /// The platform to choose from an index [default: the host's].
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = Platform::parse)]
    platform: Option<Platform>,

    #[command(flatten)]
    registry: RegistryArgs,

    /// No network: serve what is cached (a mutable tag from the digest it last resolved to),
    /// fail otherwise.
    #[arg(long)]
    offline: bool,

    /// Also build one directory with the layers applied in order (whiteouts honoured); its
    /// path is printed (with --json: "merged_path").
    #[arg(long)]
    merged: bool,

    /// The image: [REGISTRY/]REPOSITORY[:TAG][@DIGEST].
    reference: String,
}

/// How to reach registries: credentials, TLS, mirrors.
#[derive(Args)]
struct RegistryArgs {
    /// A registry (HOST[:PORT]) to reach over plain HTTP. Loopback registries always are.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure_registries: Vec<String>,

    /// A Docker config file to read credentials from [default: the content of
    /// DOCKER_AUTH_CONFIG, else $DOCKER_CONFIG/config.json, else ~/.docker/config.json].
    #[arg(long, value_name = "PATH")]
    auth_file: Option<PathBuf>,

    /// The user name for the reference's registry; the password (or token) is read from stdin.
    #[arg(long, value_name = "USER", requires = "password_stdin")]
    username: Option<String>,

    /// Read the password for --username from stdin.
    #[arg(long, requires = "username")]
    password_stdin: bool,

    /// A PEM file of certificate authorities to trust besides the system's. Repeatable.
    #[arg(long = "ca-file", value_name = "PATH")]
    ca_files: Vec<PathBuf>,

    /// A mirror of REGISTRY, tried before it; repeatable, tried in the order given. With
    /// ",digest-only" it is asked for manifests by digest and blobs, never for tags.
    #[arg(
        long = "mirror",
        value_name = "REGISTRY=URL[,digest-only]",
        value_parser = Mirror::parse_spec
    )]
    mirrors: Vec<(String, Mirror)>,
}

impl RegistryArgs {
    /// Cache options with these settings; `reference` names the registry --username is for.
    fn options(self, reference: &str) -> Result<CacheOptions, oci_cache::Error> {
        let mut options = CacheOptions {
            insecure_registries: self.insecure_registries,
            auth_file: self.auth_file,
            ca_files: self.ca_files,
            ..CacheOptions::default()
        };
        for (registry, mirror) in self.mirrors {
            options.mirrors.entry(registry).or_default().push(mirror);
        }
        if let Some(username) = self.username {
            let registry = ImageReference::parse(reference)?.registry().to_string();
            let password = read_password()?;
            options
                .credentials
                .insert(registry, Credential::Basic { username, password });
        }
        Ok(options)
    }
}

/// The password on stdin, without its line end.
fn read_password() -> Result<String, oci_cache::Error> {
    let mut password = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut password).map_err(|e| {
        oci_cache::Error::InvalidArgument {
            name: "--password-stdin",
            reason: format!("cannot read the password from stdin: {e}"),
        }
    })?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err(oci_cache::Error::InvalidArgument {
            name: "--password-stdin",
            reason: "stdin held no password".into(),
        });
    }
    Ok(password)
}

#[derive(Args)]
struct StatusArgs {
    #[command(flatten)]
    common: CommonArgs,

    /// The image to report on; without it, the whole cache.
    reference: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Fetch(args) => fetch(*args),
        Command::Status(args) => status(args),
        Command::Prune(args) => prune(args),
        Command::Resolve(args) => resolve(*args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("oci-cache: error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn fetch(args: FetchArgs) -> Result<(), oci_cache::Error> {
    init_logging(args.common.verbose);
    let mut options = args.registry.options(&args.reference)?;
    options.offline = args.offline;
    let cache = Cache::open(cache_dir(&args.common), options)?;

    let bar = std::io::stderr()
        .is_terminal()
        .then(|| Arc::new(ProgressBar::default()));
    let fetch_options = FetchOptions {
        platform: args.platform,
        merged: args.merged,
        progress: bar.clone().map(ProgressBar::sink),
        ..FetchOptions::default()
    };
    let fetched = cache.fetch(&args.reference, &fetch_options);
    if let Some(bar) = bar {
        bar.finish();
    }
    let image = fetched?;

    if args.common.json {
        println!("{}", oci_cache::cache::image_json(&image));
    } else {
        print_image(&image);
    }
    Ok(())
}

fn status(args: StatusArgs) -> Result<(), oci_cache::Error> {
    init_logging(args.common.verbose);
    let cache = Cache::open(cache_dir(&args.common), CacheOptions::default())?;

    let json = match &args.reference {
        Some(reference) => serde_json::to_value(cache.image_status(reference)?),
        None => serde_json::to_value(cache.cache_status()?),
    }
    .expect("a status serialises");

    if args.common.json {
        println!("{json}");
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(&json).expect("a status serialises")
        );
    }
    Ok(())
}

fn prune(args: PruneArgs) -> Result<(), oci_cache::Error> {
    init_logging(args.common.verbose);
    if args.max_size.is_none() && args.unused_for.is_none() && !args.all {
        return Err(oci_cache::Error::InvalidArgument {
            name: "prune",
            reason: "say what to remove: --max-size, --unused-for or --all".into(),
        });
    }
    let cache = Cache::open(cache_dir(&args.common), CacheOptions::default())?;

    let report = cache.prune(&PruneOptions {
        max_size: args.max_size,
        unused_for: args.unused_for,
        all: args.all,
    })?;

    let json = serde_json::to_value(&report).expect("a report serialises");
    if args.common.json {
        println!("{json}");
    } else {
        println!(
            "removed {} layers ({} bytes) and {} images; {} in use kept; {} bytes of layers left",
            report.removed_layers,
            report.removed_bytes,
            report.removed_images,
            report.in_use,
            report.size_after
        );
    }
    Ok(())
}

fn resolve(args: ResolveArgs) -> Result<(), oci_cache::Error> {
    init_logging(args.common.verbose);
    let first = args.references.first().cloned().unwrap_or_default();
    let options = args.registry.options(&first)?;
    let cache = Cache::open(cache_dir(&args.common), options)?;

    let resolved: Vec<_> = args
        .references
        .iter()
        .map(|reference| cache.resolve(reference))
        .collect::<Result<_, _>>()?;

    if args.common.json {
        let json = serde_json::to_value(&resolved).expect("resolved references serialise");
        println!("{json}");
    } else {
        for line in &resolved {
            println!("{}", line.pinned);
        }
    }
    Ok(())
}

/// Bytes, or a number with a unit: B, kB/MB/GB/TB (powers of 1000), KiB/MiB/GiB/TiB (of 1024).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 500MB or 2GiB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000 * 1000,
        "gb" => 1000 * 1000 * 1000,
        "tb" => 1000 * 1000 * 1000 * 1000,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "tib" | "t" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (B, kB, MB, GB, KiB, MiB, GiB)"
            ))
        }
    };
    Ok((number * factor as f64) as u64)
}

/// A number with a unit: s, m, h, d (30m, 12h, 7d).
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 30m, 12h or 7d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        other => return Err(format!("unknown duration unit {other:?} (s, m, h, d, w)")),
    };
    Ok(std::time::Duration::from_secs(
        number.saturating_mul(seconds),
    ))
}

/// A one-line progress bar on stderr (a terminal): bytes of all layers, redrawn at most every
/// 100 ms.
#[derive(Default)]
struct ProgressBar {
    state: Mutex<BarState>,
}

#[derive(Default)]
struct BarState {
    /// digest -> (done, total)
    layers: HashMap<String, (u64, u64)>,
    drawn: Option<Instant>,
}

impl ProgressBar {
    fn sink(self: Arc<Self>) -> ProgressSink {
        ProgressSink(Arc::new(move |progress: &Progress<'_>| {
            self.update(progress)
        }))
    }

    fn update(&self, progress: &Progress<'_>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let entry = (progress.done, progress.total);
        state.layers.insert(progress.digest.to_string(), entry);
        if state
            .drawn
            .is_some_and(|at| at.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        state.drawn = Some(Instant::now());
        draw(&state);
    }

    /// Draw the last state and end the line, if anything was drawn.
    fn finish(&self) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.drawn.is_some() {
            draw(&state);
            eprintln!();
        }
    }
}

fn draw(state: &BarState) {
    let (done, total) = state
        .layers
        .values()
        .fold((0, 0), |(d, t), (done, total)| (d + done, t + total));
    let complete = state.layers.values().filter(|(d, t)| d == t).count();
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    eprint!(
        "\r\x1b[Kfetching: {:.1}/{:.1} MiB, {complete}/{} layers",
        mib(done),
        mib(total),
        state.layers.len()
    );
}

fn print_image(image: &Image) {
    let platform = image
        .platform
        .as_ref()
        .map(Platform::to_string)
        .unwrap_or_else(|| "-".into());
    println!("{}", image.reference);
    println!("  manifest  {}", image.manifest_digest);
    println!("  platform  {platform}");
    println!("  image     {}", image.cache.name());
    for layer in &image.layers {
        let outcome = serde_json::to_value(layer.cache).expect("an outcome serialises");
        let outcome = outcome.as_str().unwrap_or_default();
        println!(
            "  layer     {} {:>8} {:<8} {}",
            layer.digest,
            layer.size,
            outcome,
            layer.path.display()
        );
    }
    if let Some(merged) = &image.merged_path {
        println!("  merged    {}", merged.display());
    }
    if let Some(root) = &image.uncached_root {
        println!("  uncached  {} (remove it when done)", root.display());
    }
}

/// Logs go to stderr: INFO by default, the library's DEBUG with `-v`, everything's with `-vv`.
fn init_logging(verbose: u8) {
    let filter = match verbose {
        0 => Targets::new().with_default(LevelFilter::INFO),
        1 => Targets::new()
            .with_default(LevelFilter::INFO)
            .with_target("oci_cache", LevelFilter::DEBUG),
        _ => Targets::new().with_default(LevelFilter::DEBUG),
    };
    let format = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    tracing_subscriber::registry()
        .with(format.with_filter(filter))
        .init();
}

fn cache_dir(args: &CommonArgs) -> PathBuf {
    if let Some(dir) = &args.cache_dir {
        return dir.clone();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("oci-cache")
}
