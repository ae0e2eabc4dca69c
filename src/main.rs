use std::process::ExitCode;

use clap::Parser;

use authgate::cli::{self, Cli};
use authgate::config::Settings;

fn main() -> ExitCode {
    // Without RUST_LOG: info, but no line per request (see startup.rs).
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,actix_web::middleware::logger=warn"),
    )
    .init();
    let cli = Cli::parse();
    let result = Settings::load()
        .map_err(anyhow::Error::from)
        .and_then(|settings| cli::run(cli, settings));
    match result {
        Ok(code) => code,
        Err(err) => {
            // One line, whatever the cause (libpq's messages span several).
            let message = format!("{err:#}");
            eprintln!(
                "authgate: {}",
                message.split_whitespace().collect::<Vec<_>>().join(" ")
            );
            ExitCode::FAILURE
        }
    }
}
