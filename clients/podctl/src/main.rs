//! `podctl`: the podconnect command line for shop staff, operators and scripts, on the
//! `podconnect-client` library. Parses the command line, runs one command, and exits with the
//! gRPC status code of what failed (0 on success).

mod config;
mod operator;
mod output;
mod shop;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory as _, Parser, Subcommand};
use podconnect_client::Code;

use crate::config::Settings;
use crate::output::Failure;

/// The podconnect command line: browse, customize and print; manage devices, usage and keys.
///
/// Settings come from flags, `PODCTL_*` variables, or a profile of the config file
/// (`~/.config/podctl/config.toml`). Session commands use the session saved by
/// `podctl session start` (a file only you can read); catalog reads without one start and close a
/// session of their own. Exit codes are gRPC status codes (0 OK, 3 INVALID_ARGUMENT, 5 NOT_FOUND,
/// 14 UNAVAILABLE, 16 UNAUTHENTICATED, …).
#[derive(Parser, Debug)]
#[command(name = "podctl", version, propagate_version = true, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Args, Debug)]
pub(crate) struct Global {
    /// The config file with profiles (default: ~/.config/podctl/config.toml).
    #[arg(long, global = true, env = "PODCTL_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The profile of the config file to use (default: the file's `default`).
    #[arg(long, short = 'p', global = true, env = "PODCTL_PROFILE")]
    pub(crate) profile: Option<String>,
    /// The core's address, e.g. https://127.0.0.1:50443.
    #[arg(long, global = true, env = "PODCTL_ENDPOINT", value_name = "URL")]
    pub(crate) endpoint: Option<String>,
    /// The CA that signed the core's certificate (PEM); default: the system's roots.
    #[arg(long, global = true, env = "PODCTL_CA", value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,
    /// The name the core's certificate must carry, when not the endpoint's host.
    #[arg(long, global = true, env = "PODCTL_SERVER_NAME")]
    pub(crate) server_name: Option<String>,
    /// A client certificate (PEM) for mutual TLS.
    #[arg(long, global = true, env = "PODCTL_CERT", value_name = "FILE")]
    pub(crate) cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, global = true, env = "PODCTL_KEY", value_name = "FILE")]
    pub(crate) key: Option<PathBuf>,
    /// A file holding the operator token (default: $PODCONNECT_OPERATOR_TOKEN).
    #[arg(long, global = true, env = "PODCTL_OPERATOR_TOKEN_FILE", value_name = "FILE")]
    pub(crate) operator_token_file: Option<PathBuf>,
    /// The device sessions start on.
    #[arg(long, global = true, env = "PODCTL_DEVICE")]
    pub(crate) device: Option<String>,
    /// Where the session token is kept (default: ~/.local/state/podctl/<profile>.session).
    #[arg(long, global = true, env = "PODCTL_SESSION_FILE", value_name = "FILE")]
    pub(crate) session_file: Option<PathBuf>,
    /// Print JSON for scripts (one object per line) instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start, show or close the saved session.
    #[command(subcommand)]
    Session(shop::SessionCommand),
    /// Log the saved session in to the storefront (the password is read from standard input).
    Login(shop::LoginArgs),
    /// End the storefront login of the saved session.
    Logout,
    /// List the category tree.
    Categories,
    /// List products, by category and/or search text, a page at a time.
    Products(shop::ProductsArgs),
    /// Show one product.
    Product {
        /// The product's id.
        id: String,
    },
    /// Write a product's thumbnail to a file.
    Thumbnail {
        /// The product's id.
        id: String,
        /// The file to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Show a product's form: its fields and their rules.
    Form {
        /// The product's id.
        id: String,
    },
    /// Create or change a draft with values, show its field errors, write previews.
    Customize(shop::CustomizeArgs),
    /// Print a finalized draft or a print file on the session's device.
    Print(shop::PrintArgs),
    /// Follow a job until it ends.
    Watch {
        /// The job's id (base64url: it may start with '-').
        #[arg(allow_hyphen_values = true)]
        job: String,
    },
    /// Show or cancel a job.
    #[command(subcommand)]
    Job(shop::JobCommand),
    /// Operators: the device registry.
    #[command(subcommand)]
    Devices(operator::DevicesCommand),
    /// Operators: usage counts over a time range.
    Usage(operator::UsageArgs),
    /// Operators: single sign-on keys.
    #[command(subcommand)]
    Sso(operator::SsoCommand),
    /// Whether the core (and a weblet gateway) serve.
    Health(operator::HealthArgs),
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // Help and version are successes; a usage error is an invalid argument.
            return match error.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(output::exit_code(Code::InvalidArgument)),
            };
        }
    };
    let json = cli.global.json;
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return ExitCode::from(Failure::new(Code::Internal, error.to_string()).report(json)),
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(output::exit_code(code)),
        Err(failure) => ExitCode::from(failure.report(json)),
    }
}

/// Runs one command; `Ok` carries the exit status of a command that ran (e.g. a job that was
/// aborted), `Err` a failure to report.
async fn run(cli: Cli) -> Result<Code, Failure> {
    let global = &cli.global;
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "podctl", &mut std::io::stdout());
            return Ok(Code::Ok);
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .map_err(|e| Failure::new(Code::Internal, e.to_string()))?;
            return Ok(Code::Ok);
        }
        _ => {}
    }
    let settings = Settings::resolve(global)?;
    let ctx = shop::Context::new(settings, global.json)?;
    let result = match cli.command {
        Command::Session(command) => ctx.session(command).await,
        Command::Login(args) => ctx.login(args).await,
        Command::Logout => ctx.logout().await,
        Command::Categories => ctx.categories().await,
        Command::Products(args) => ctx.products(args).await,
        Command::Product { id } => ctx.product(&id).await,
        Command::Thumbnail { id, output } => ctx.thumbnail(&id, &output).await,
        Command::Form { id } => ctx.form(&id).await,
        Command::Customize(args) => ctx.customize(args).await,
        Command::Print(args) => ctx.print(args).await,
        Command::Watch { job } => ctx.watch(&job).await,
        Command::Job(command) => ctx.job(command).await,
        Command::Devices(command) => operator::devices(&ctx, command).await,
        Command::Usage(args) => operator::usage(&ctx, args).await,
        Command::Sso(command) => operator::sso(&ctx, command).await,
        Command::Health(args) => operator::health(&ctx, args).await,
        Command::Completions { .. } | Command::Man => Ok(Code::Ok),
    };
    result.map_err(|error| ctx.failure(error))
}
