//! `tributary sql`: a Flight SQL client shell in the manner of trino-cli — one statement
//! (`-e`), a file of statements (`-f`), or an interactive prompt with line editing and history.

mod output;
mod statements;

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use tonic::transport::Channel;

use output::{OutputFormat, Printer};

/// Arguments of `tributary sql`.
#[derive(Debug, clap::Args)]
pub(crate) struct SqlArgs {
    /// Flight SQL server (grpc://host:port, or grpc+tls://host:port over TLS).
    #[arg(
        long,
        env = "TRIBUTARY_SERVER",
        default_value = "grpc://127.0.0.1:50051"
    )]
    server: String,
    /// User name.
    #[arg(long, env = "TRIBUTARY_USER", default_value = "tributary")]
    user: String,
    /// Password (any value when the server has no password file).
    #[arg(long, env = "TRIBUTARY_PASSWORD", default_value = "")]
    password: String,
    /// A JWT to authenticate with instead of user and password (trino-cli's --access-token).
    #[arg(long, env = "TRIBUTARY_ACCESS_TOKEN")]
    access_token: Option<String>,
    /// PEM file of the CA certificates that sign the server's certificate, for grpc+tls://
    /// (default: the system's, /etc/ssl/certs/ca-certificates.crt).
    #[arg(long, env = "TRIBUTARY_TRUSTSTORE_PATH")]
    truststore_path: Option<std::path::PathBuf>,
    /// Default catalog (with --schema: `USE catalog.schema` first).
    #[arg(long, env = "TRIBUTARY_CATALOG")]
    catalog: Option<String>,
    /// Default schema.
    #[arg(long, env = "TRIBUTARY_SCHEMA")]
    schema: Option<String>,
    /// Run these statements and exit.
    #[arg(short = 'e', long = "execute")]
    execute: Option<String>,
    /// Run the statements of this file and exit.
    #[arg(short = 'f', long = "file")]
    file: Option<std::path::PathBuf>,
    /// Output format.
    #[arg(
        long,
        value_enum,
        env = "TRIBUTARY_OUTPUT_FORMAT",
        default_value = "ALIGNED",
        ignore_case = true
    )]
    output_format: OutputFormat,
    /// Keep going after a failed statement (with -e or -f).
    #[arg(long)]
    ignore_errors: bool,
}

/// Runs the shell; the exit code is 0 on success, 1 when a statement failed, 2 when the
/// server cannot be reached or the arguments are wrong.
pub(crate) async fn run(args: SqlArgs) -> ExitCode {
    let mut client = match connect(&args).await {
        Ok(c) => c,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    if let (Some(catalog), Some(schema)) = (&args.catalog, &args.schema)
        && let Err(e) = execute(
            &mut client,
            &format!("USE {catalog}.{schema}"),
            args.output_format,
            false,
        )
        .await
    {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    let script = match (&args.execute, &args.file) {
        (Some(sql), _) => Some(sql.clone()),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) => {
                eprintln!("cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        (None, None) => None,
    };
    match script {
        Some(text) => {
            let mut failed = false;
            for statement in statements::split(&text) {
                if let Err(e) = execute(&mut client, &statement, args.output_format, false).await {
                    eprintln!("{e}");
                    failed = true;
                    if !args.ignore_errors {
                        break;
                    }
                }
            }
            if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        None => interactive(&mut client, args.output_format).await,
    }
}

async fn connect(args: &SqlArgs) -> Result<FlightSqlServiceClient<Channel>, String> {
    let (address, tls) = if let Some(rest) = args.server.strip_prefix("grpc://") {
        (format!("http://{rest}"), false)
    } else if let Some(rest) = args.server.strip_prefix("grpc+tls://") {
        (format!("https://{rest}"), true)
    } else {
        (args.server.clone(), args.server.starts_with("https://"))
    };
    let mut endpoint = Channel::from_shared(address.clone())
        .map_err(|e| format!("invalid server address '{}': {e}", args.server))?;
    if tls {
        let path = args
            .truststore_path
            .clone()
            .unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into());
        let ca = std::fs::read(&path)
            .map_err(|e| format!("--truststore-path: cannot read {}: {e}", path.display()))?;
        endpoint = endpoint
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(ca)),
            )
            .map_err(|e| format!("TLS settings for {}: {e}", args.server))?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", args.server))?;
    let mut client = FlightSqlServiceClient::new(channel);
    if let Some(token) = &args.access_token {
        // Every request carries the JWT; the server checks it each time.
        client.set_token(token.clone());
        return Ok(client);
    }
    client
        .handshake(&args.user, &args.password)
        .await
        .map_err(|e| {
            format!(
                "cannot authenticate as '{}' at {}: {}",
                args.user,
                args.server,
                status_text(&e)
            )
        })?;
    Ok(client)
}

fn status_text(e: &arrow_flight::error::FlightError) -> String {
    match e {
        arrow_flight::error::FlightError::Tonic(status) => {
            format!("[{:?}] {}", status.code(), status.message())
        }
        other => other.to_string(),
    }
}

/// Runs one statement and prints its rows; returns the row count.
async fn execute(
    client: &mut FlightSqlServiceClient<Channel>,
    sql: &str,
    format: OutputFormat,
    interactive: bool,
) -> Result<usize, String> {
    let started = Instant::now();
    let failed = |e: arrow_flight::error::FlightError| format!("Query failed {}", status_text(&e));
    let info = client.execute(sql.to_owned(), None).await.map_err(failed)?;
    let schema = info
        .clone()
        .try_decode_schema()
        .map_err(|e| format!("Query failed: bad result schema: {e}"))?;
    let mut printer = Printer::new(format, schema, std::io::stdout().lock());
    let mut rows = 0;
    for endpoint in &info.endpoint {
        let Some(ticket) = endpoint.ticket.clone() else {
            continue;
        };
        let mut stream = client.do_get(ticket).await.map_err(failed)?;
        while let Some(batch) = stream.try_next().await.map_err(failed)? {
            rows += batch.num_rows();
            printer
                .print(&batch)
                .map_err(|e| format!("cannot print result: {e}"))?;
        }
    }
    printer
        .finish()
        .map_err(|e| format!("cannot print result: {e}"))?;
    if interactive {
        eprintln!(
            "({rows} row{}, {:.2} s)",
            if rows == 1 { "" } else { "s" },
            started.elapsed().as_secs_f64()
        );
    }
    Ok(rows)
}

async fn interactive(
    client: &mut FlightSqlServiceClient<Channel>,
    format: OutputFormat,
) -> ExitCode {
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot start the line editor: {e}");
            return ExitCode::from(2);
        }
    };
    let history = std::env::var("HOME")
        .map(|h| std::path::Path::new(&h).join(".tributary_history"))
        .ok();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "tributary> "
        } else {
            "        -> "
        };
        match editor.readline(prompt) {
            Ok(line) => {
                let trimmed = line.trim();
                if buffer.is_empty()
                    && matches!(
                        trimmed.to_ascii_lowercase().as_str(),
                        "quit" | "exit" | "quit;" | "exit;"
                    )
                {
                    break;
                }
                buffer.push_str(&line);
                buffer.push('\n');
                let (complete, rest) = statements::take_complete(&buffer);
                for statement in complete {
                    let _ = editor.add_history_entry(format!("{statement};"));
                    if let Err(e) = execute(client, &statement, format, true).await {
                        eprintln!("{e}");
                    }
                }
                buffer = rest;
            }
            Err(rustyline::error::ReadlineError::Interrupted) => buffer.clear(),
            Err(_) => break,
        }
        let _ = std::io::stdout().flush();
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    ExitCode::SUCCESS
}
