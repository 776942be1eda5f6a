//! `oci-cache`: the operators' command line, a thin layer over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use oci_cache::{Cache, CacheOptions, FetchOptions, Image, Platform};
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
    Fetch(FetchArgs),
    /// Show what the cache holds, of one reference or of the whole cache (no network).
    Status(StatusArgs),
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

    /// A registry (HOST[:PORT]) to reach over plain HTTP. Loopback registries always are.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure_registries: Vec<String>,

    /// The image: [REGISTRY/]REPOSITORY[:TAG][@DIGEST].
    reference: String,
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
        Command::Fetch(args) => fetch(args),
        Command::Status(args) => status(args),
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
    let options = CacheOptions {
        insecure_registries: args.insecure_registries,
        ..CacheOptions::default()
    };
    let cache = Cache::open(cache_dir(&args.common), options)?;

    let fetch_options = FetchOptions {
        platform: args.platform,
        ..FetchOptions::default()
    };
    let image = cache.fetch(&args.reference, &fetch_options)?;

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
