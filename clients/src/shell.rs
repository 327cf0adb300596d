#[derive(Debug, clap::Args)]
pub struct SqlArgs {
    #[arg(short = 'e')]
    execute: Option<String>,
}
pub async fn run(_args: SqlArgs) -> std::process::ExitCode {
    std::process::ExitCode::FAILURE
}
