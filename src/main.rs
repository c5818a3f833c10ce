//! The `catalytics` binary: parse the command line, set up logging, run.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = catalytics::cli::Cli::parse();
    let _logs = catalytics::telemetry::init("info", cli.global.log_format);
    match catalytics::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", catalytics::cli::one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
