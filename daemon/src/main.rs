//! The `farmhand` binary: parses the command line and hands over to the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use farmhand::cli::{self, Client, Submission};
use farmhand::config::Config;
use farmhand::tools;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The demo farm's configuration, compiled in.
const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");

#[derive(Parser)]
#[command(
    name = "farmhand",
    version,
    about = "Print-farm controller for a fab lab"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a complete demo farm on this machine: no hardware, no config file.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        #[arg(long, default_value = "farmhand-demo")]
        data_dir: PathBuf,
        /// How many simulated Marlin printers (default: the demo's two).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=500))]
        printers: Option<u16>,
    },
    /// Runs the daemon with a configuration file.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Validates a configuration file and prints what it would run.
    CheckConfig { file: PathBuf },
    /// Submits a model as the web form does.
    Submit {
        file: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: String,
        #[arg(long, env = "FARMHAND_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long)]
        material: Option<String>,
        #[arg(long)]
        color: Option<String>,
        #[arg(long)]
        discipline: Option<String>,
        #[arg(long)]
        class_number: Option<String>,
        #[arg(long)]
        printer: Option<String>,
        /// Print the job as JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Lists jobs (needs a workstation token; the demo's is used by default).
    Jobs {
        #[arg(long)]
        status: Option<String>,
        #[arg(long, env = "FARMHAND_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long, env = "FARMHAND_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Prints the model or G-code analysis as JSON.
    Analyze {
        file: PathBuf,
        /// Take build volumes (for "fits") and material densities from this config.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        material: Option<String>,
    },
    /// Converts a model (STL, OBJ, 3MF) to GLB for 3D previews.
    Convert { input: PathBuf, output: PathBuf },
    /// Renders a PNG thumbnail of a model or G-code file (or extracts the embedded one).
    Thumbnail {
        input: PathBuf,
        output: PathBuf,
        #[arg(long, default_value_t = 512)]
        size: u32,
    },
    /// Prints one file on one printer without the daemon, with progress. Exits 0 only
    /// when the print completed.
    Print {
        /// marlin | bambu | mqtt | moonraker | prusalink
        #[arg(long)]
        driver: String,
        /// Serial port (marlin).
        #[arg(long)]
        port: Option<PathBuf>,
        #[arg(long, default_value_t = 115_200)]
        baud: u32,
        /// Upload to the printer's SD card and print from there (marlin).
        #[arg(long)]
        sd: bool,
        /// Base URL (moonraker, prusalink).
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        api_key: Option<String>,
        #[arg(long)]
        username: Option<String>,
        #[arg(long)]
        password: Option<String>,
        /// Broker URL, e.g. mqtt://127.0.0.1:1883 (mqtt).
        #[arg(long)]
        broker: Option<String>,
        /// Topic prefix (mqtt).
        #[arg(long)]
        topic: Option<String>,
        /// The printer's IP address (bambu).
        #[arg(long)]
        host: Option<String>,
        /// The printer's serial, as on its screen; its certificate must name it (bambu).
        #[arg(long)]
        serial: Option<String>,
        /// The LAN-mode access code from the printer's screen (bambu).
        #[arg(long)]
        access_code: Option<String>,
        /// MQTT over TLS port, default 8883 (bambu).
        #[arg(long)]
        mqtt_port: Option<u16>,
        /// Implicit FTPS port, default 990 (bambu).
        #[arg(long)]
        ftps_port: Option<u16>,
        /// Trust this CA for the printer's certificate (bambu; the CN must still be the serial).
        #[arg(long)]
        ca_file: Option<PathBuf>,
        file: PathBuf,
    },
    /// Lists printers and their states.
    Printers {
        #[arg(long, env = "FARMHAND_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long, env = "FARMHAND_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Rebuilds a store from the cloud bucket alone, verifying every blob's hash.
    Restore {
        /// The bucket, as in `[sync] url` (s3://bucket/prefix, file:///path, …).
        #[arg(long)]
        from: String,
        /// A new, empty data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// An S3-compatible server (as `[sync] endpoint`); credentials from `AWS_*`.
        #[arg(long, env = "FARMHAND_SYNC__ENDPOINT")]
        endpoint: Option<String>,
        #[arg(long, env = "FARMHAND_SYNC__REGION")]
        region: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` logs at the level its config names, so it starts logging once that is read.
    if !matches!(cli.command, Command::Serve { .. }) {
        farmhand::logging::init(None);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("farmhand: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("farmhand: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Demo {
            listen,
            data_dir,
            printers,
        } => demo(&listen, &data_dir, printers).await,
        Command::Restore {
            from,
            data_dir,
            endpoint,
            region,
        } => restore(from, &data_dir, endpoint, region).await,
        Command::Serve { config } => match load_config(&config) {
            Some(config) => {
                farmhand::logging::init(config.log.level.as_deref());
                serve(config, false).await
            }
            None => Ok(ExitCode::from(2)),
        },
        Command::CheckConfig { file } => Ok(match load_config(&file) {
            Some(config) => {
                println!(
                    "{} is valid. Farmhand would run:\n{}",
                    file.display(),
                    config.summary()
                );
                ExitCode::SUCCESS
            }
            None => ExitCode::from(2),
        }),
        Command::Submit {
            file,
            name,
            email,
            server,
            material,
            color,
            discipline,
            class_number,
            printer,
            json,
        } => {
            let form = Submission {
                name,
                email,
                material,
                color,
                discipline,
                class_number,
                printer,
            };
            let client = Client::new(&server, None);
            let job = cli::submit(&client, &file, &form, !json).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&job)?);
            } else {
                let field = |key: &str| job[key].as_str().unwrap_or("?").to_string();
                let (id, name, status) = (field("id"), field("display_name"), field("status"));
                if job["duplicate"] == true {
                    println!(
                        "Already submitted: job {id} ({name}) is {status}; nothing was uploaded twice"
                    );
                } else {
                    println!("Submitted: job {id} ({name}), status {status}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Jobs {
            status,
            server,
            token,
            json,
        } => {
            let jobs = cli::jobs(&Client::new(&server, token), status.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&jobs)?);
            } else {
                print!("{}", cli::format_jobs(&jobs));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Analyze {
            file,
            config,
            material,
        } => {
            let config = match config {
                Some(path) => match load_config(&path) {
                    Some(config) => Some(config),
                    None => return Ok(ExitCode::from(2)),
                },
                None => None,
            };
            let opts = tools::analyze_options(config.as_ref(), material.as_deref());
            let json = tokio::task::spawn_blocking(move || tools::analyze(&file, &opts)).await??;
            println!("{json}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Convert { input, output } => {
            let message =
                tokio::task::spawn_blocking(move || tools::convert(&input, &output)).await??;
            println!("{message}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Thumbnail {
            input,
            output,
            size,
        } => {
            let message =
                tokio::task::spawn_blocking(move || tools::thumbnail(&input, &output, size))
                    .await??;
            println!("{message}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Print {
            driver,
            port,
            baud,
            sd,
            url,
            api_key,
            username,
            password,
            broker,
            topic,
            host,
            serial,
            access_code,
            mqtt_port,
            ftps_port,
            ca_file,
            file,
        } => {
            let request = tools::PrintRequest {
                driver,
                port,
                baud,
                sd,
                url,
                api_key,
                username,
                password,
                broker,
                topic,
                host,
                serial,
                access_code,
                mqtt_port,
                ftps_port,
                ca_file,
                file,
            };
            tools::print(request).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Printers {
            server,
            token,
            json,
        } => {
            let printers = cli::printers(&Client::new(&server, token)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&printers)?);
            } else {
                print!("{}", cli::format_printers(&printers));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Loads a config; on failure prints one line per problem and returns `None`.
fn load_config(path: &Path) -> Option<Config> {
    match Config::load(path) {
        Ok(config) => Some(config),
        Err(e) => {
            for problem in &e.problems {
                eprintln!("farmhand: config {}: {problem}", path.display());
            }
            None
        }
    }
}

async fn restore(
    from: String,
    data_dir: &Path,
    endpoint: Option<String>,
    region: Option<String>,
) -> anyhow::Result<ExitCode> {
    let mut config = farmhand::config::SyncConfig::new(from);
    config.endpoint = endpoint;
    config.region = region;
    let report = farmhand::sync::restore::restore(&config, data_dir)
        .await
        .with_context(|| format!("restoring from {}", config.url))?;
    println!(
        "Restored {} jobs, {} events and {} blobs ({} bytes, every hash verified){} into {}",
        report.jobs,
        report.events,
        report.blobs,
        report.bytes,
        report
            .snapshot
            .map(|s| format!(" on top of {s}"))
            .unwrap_or_default(),
        farmhand::sync::restore::describe(data_dir).display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn demo(listen: &str, data_dir: &Path, printers: Option<u16>) -> anyhow::Result<ExitCode> {
    let data_dir = std::path::absolute(data_dir).context("resolving the demo data dir")?;
    let env = [
        ("FARMHAND_SERVER__LISTEN".to_string(), listen.to_string()),
        (
            "FARMHAND_STORAGE__DATA_DIR".to_string(),
            format!("{:?}", data_dir.display().to_string()),
        ),
    ];
    let mut config = Config::from_toml(DEMO_CONFIG, env).context("the built-in demo config")?;
    if let Some(total) = printers {
        farmhand::demo::simulate_marlin_printers(&mut config, usize::from(total));
    }
    let (printers, notes) = farmhand::demo::start(&mut config)
        .await
        .context("starting the simulated printers")?;
    for note in notes {
        println!("{note}");
    }
    let code = serve(config, true).await;
    drop(printers);
    code
}

async fn serve(config: Config, demo: bool) -> anyhow::Result<ExitCode> {
    let listener = TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let url = format!("http://{}", listener.local_addr()?);
    println!("Farmhand listening on {url}");
    if demo {
        println!("Demo farm: data in {}", config.storage.data_dir.display());
        println!(
            "Staff token: {}  (kiosk sign-in and API: Authorization: Bearer …)",
            cli::DEMO_TOKEN
        );
        println!(
            "Student mail is kept in {}",
            config.storage.data_dir.join("outbox").display()
        );
        for p in &config.printers {
            let port = p
                .port
                .as_deref()
                .map(|port| format!(" on {port}"))
                .unwrap_or_default();
            println!("Printer {} ({:?}){port}", p.id, p.driver);
        }
        println!(
            "Try: farmhand submit model.stl --name \"Ada Lovelace\" --email ada@example.edu --server {url}"
        );
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    farmhand::run(config, listener, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop Farmhand with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
    shutdown.cancel();
}
