//! Entry point: arguments and environment -> Config, logs, one run, summary on stdout, exit code.

use std::process::ExitCode;

use pullsecret_reconciler::config::{Config, DryRun, Format, PREFIX, VARIABLES};
use pullsecret_reconciler::{Summary, apply, client, push_metrics, run};

/// SIGTERM (a Job at its activeDeadlineSeconds, an evicted or deleted Pod) or SIGINT: no write
/// starts any more, those in flight get a short grace, and the run ends as usual — summary,
/// Events, metrics, exit 1 — inside the kubelet's termination grace period.
fn watch_for_termination() {
    use tokio::signal::unix::{SignalKind, signal};
    for kind in [SignalKind::terminate(), SignalKind::interrupt()] {
        match signal(kind) {
            Ok(mut s) => {
                tokio::spawn(async move {
                    if s.recv().await.is_some() {
                        tracing::warn!(signal = kind.as_raw_value(), "asked to stop: no write starts any more");
                        apply::request_stop();
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot watch for termination signals"),
        }
    }
}

fn help() -> String {
    let mut s = format!(
        "pullsecret-reconciler {}\n\
         Copies registry pull Secrets into every selected namespace and lists them in ServiceAccounts'\n\
         imagePullSecrets, in one run; then prints a summary and exits.\n\n\
         Usage: pullsecret-reconciler [--dry-run] [--help] [--version]\n\
         \x20      pullsecret-reconciler explain POD -n NAMESPACE | --image REF [--service-account SA] -n NAMESPACE | --stuck\n\
         \x20        [--output json]   why a Pod's images would or would not pull (reads only)\n\n\
         Configuration (environment variables; unknown PULLSECRET_* variables are errors):\n",
        env!("CARGO_PKG_VERSION")
    );
    for (name, default, meaning) in VARIABLES {
        let default = if default.is_empty() { "(none)" } else { default };
        s.push_str(&format!(
            "  {PREFIX}{name:<22} {meaning}\n  {:<33} default: {default}\n",
            ""
        ));
    }
    s.push_str(
        "\nExit codes: 0 converged; 1 finished, not converged (failed writes, conflicts, refused prunes,\n\
         deadline); 2 nothing written (bad configuration or source, cluster unreachable, a list failed).\n",
    );
    s
}

/// The process environment as UTF-8 pairs; a non-UTF-8 `PULLSECRET_*` value is an error rather
/// than being silently dropped.
fn environment() -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (k, v) in std::env::vars_os() {
        let Ok(k) = k.into_string() else { continue };
        match v.into_string() {
            Ok(v) => out.push((k, v)),
            Err(_) if k.starts_with(PREFIX) => return Err(format!("{k}: value is not valid UTF-8")),
            Err(_) => {}
        }
    }
    Ok(out)
}

fn init_logs(format: Format) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        Format::Json => builder.json().init(),
        Format::Text => builder.with_ansi(false).init(),
    }
}

/// The async runtime; `None` (said on stderr) when it cannot start.
fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| eprintln!("error: starting the async runtime: {e}"))
        .ok()
}

/// `pullsecret-reconciler explain …`: reads only. Exit 0 would pull, 1 would not, 2 invalid.
fn explain(args: &[String]) -> ExitCode {
    use pullsecret_reconciler::{explain, verify};
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{}", explain::USAGE);
        return ExitCode::SUCCESS;
    }
    let parsed = match explain::parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    // Only the CA bundle of the configuration applies; explain needs no credentials source.
    let ca = std::env::var("PULLSECRET_REGISTRY_CA_FILE")
        .ok()
        .filter(|v| !v.trim().is_empty());
    init_logs(Format::Text);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(runtime) = runtime() else {
        return ExitCode::from(2);
    };
    let code = runtime.block_on(async {
        let counter = client::RequestCounter::default();
        let (kube, namespace) = match client::connect(&counter).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e:#}");
                return 2;
            }
        };
        let clients = match verify::Clients::new(ca.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e:#}");
                return 2;
            }
        };
        explain::answer(&kube, &clients, &parsed.question(&namespace), parsed.json).await
    });
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "explain") {
        return explain(&args[1..]);
    }
    let mut dry_run = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{}", help());
                return ExitCode::SUCCESS;
            }
            "-V" | "--version" => {
                println!("pullsecret-reconciler {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            "--dry-run" => dry_run = true,
            other => {
                eprintln!("error: unknown argument {other:?} (see --help)");
                return ExitCode::from(2);
            }
        }
    }
    let config = match environment()
        .map_err(anyhow::Error::msg)
        .and_then(|env| Config::from_env(env, dry_run))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            // Scripts asked for JSON still get exactly one object on stdout.
            if std::env::var("PULLSECRET_OUTPUT").is_ok_and(|v| v.trim() == "json") {
                let mode = if dry_run { DryRun::Client } else { DryRun::Off };
                println!("{}", Summary::aborted(mode, &e).to_json());
            }
            return ExitCode::from(2);
        }
    };
    init_logs(config.log_format);
    // Registry checks (reqwest) use rustls' process-wide provider: the same ring as kube's.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let Some(runtime) = runtime() else {
        return ExitCode::from(2);
    };
    let summary = runtime.block_on(async {
        watch_for_termination();
        let counter = client::RequestCounter::default();
        let result = async {
            let connection = client::connect_all(&counter).await?;
            let namespace = config
                .source_namespace
                .clone()
                .unwrap_or_else(|| connection.namespace.clone());
            run(&config, &connection, &counter, &namespace).await
        }
        .await;
        let mut summary = result.unwrap_or_else(|e| {
            tracing::error!(error = %format!("{e:#}"), "stopped before writing anything");
            let mut s = Summary::aborted(config.dry_run, &e);
            s.api_requests = counter.snapshot();
            s
        });
        if apply::stop_requested() {
            summary.stopped();
        }
        push_metrics(&config, &mut summary).await;
        summary
    });
    match config.output {
        Format::Json => println!("{}", summary.to_json()),
        Format::Text => print!("{}", summary.to_text()),
    }
    ExitCode::from(summary.exit_code())
}
