//! Entry point: argv and environment -> settings, logs, signals, one run or one `explain`,
//! the answer on stdout, the exit code.

use std::process::ExitCode;

use pullsecret_reconciler::cli::{self, Command, ExplainArgs};
use pullsecret_reconciler::cluster::{client, registry};
use pullsecret_reconciler::config::{self, Config, Format};
use pullsecret_reconciler::core::model::DryRun;
use pullsecret_reconciler::{Summary, apply, explain, push_metrics, run};

/// SIGTERM (a Job at its activeDeadlineSeconds, an evicted or deleted Pod) or SIGINT: whatever
/// stage the run is in ends (a read, the source, a registry check, the Lease wait, the window), no
/// write starts any more, those in flight get a short grace, and the run ends as usual —
/// summary, Events, metrics, exit 1 — inside the kubelet's termination grace period. A second
/// signal (an impatient Ctrl-C) exits at once, exit 1, without a summary.
fn watch_for_termination() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::signal::unix::{SignalKind, signal};
    static SIGNALS: AtomicUsize = AtomicUsize::new(0);
    for kind in [SignalKind::terminate(), SignalKind::interrupt()] {
        match signal(kind) {
            Ok(mut s) => {
                tokio::spawn(async move {
                    while s.recv().await.is_some() {
                        if SIGNALS.fetch_add(1, Ordering::SeqCst) > 0 {
                            eprintln!("error: asked to stop again: exiting at once, without a summary");
                            std::process::exit(1);
                        }
                        tracing::warn!(
                            signal = kind.as_raw_value(),
                            "asked to stop: the current stage ends, no write starts any more (a second signal exits at once)"
                        );
                        apply::request_stop();
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot watch for termination signals"),
        }
    }
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
    // Registry checks (reqwest) use rustls' process-wide provider: the same ring as kube's.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The async runtime; `None` (said on stderr) when it cannot start.
fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| eprintln!("error: starting the async runtime: {e}"))
        .ok()
}

fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::from(2)
}

/// `pullsecret-reconciler explain …`: reads only. Exit 0 would pull, 1 would not, 2 invalid.
fn explain(args: &ExplainArgs, env: &[(String, String)]) -> ExitCode {
    if let Err(e) = args.check() {
        return fail(&e);
    }
    init_logs(Format::Text);
    let Some(runtime) = runtime() else {
        return ExitCode::from(2);
    };
    let code = runtime.block_on(async {
        let counter = client::RequestCounter::default();
        let (kube, namespace) = client::connect(&counter).await?;
        let clients = registry::Clients::new(config::registry_ca_file(env).as_deref())?;
        let question = args.question(&namespace);
        anyhow::Ok(explain::answer(&kube, &clients, &question, args.json()).await)
    });
    match code {
        Ok(code) => ExitCode::from(code),
        Err(e) => fail(&e),
    }
}

/// One reconciler run: the summary on stdout, the exit code from it.
fn reconcile(config: &Config) -> ExitCode {
    init_logs(config.log_format);
    let Some(runtime) = runtime() else {
        return ExitCode::from(2);
    };
    let summary = runtime.block_on(async {
        watch_for_termination();
        let counter = client::RequestCounter::default();
        let result = async {
            let connection =
                apply::unless_stopped("connecting to the API server", client::connect_all(&counter)).await?;
            let namespace = config
                .source_namespace
                .clone()
                .unwrap_or_else(|| connection.namespace.clone());
            run(config, &connection, &counter, &namespace).await
        }
        .await;
        let mut summary = result.unwrap_or_else(|e| {
            tracing::error!(error = %format!("{e:#}"), "stopped before writing anything");
            let mut s = match e.downcast_ref::<apply::Interrupted>() {
                Some(stopped) => Summary::interrupted(config.dry_run, &stopped.to_string()),
                None => Summary::aborted(config.dry_run, &e),
            };
            s.api_requests = counter.snapshot();
            s
        });
        // A signal during a watch window only ends the window: the run is judged as it stands.
        if apply::stop_reason() == Some(apply::Stop::Signal) && summary.watch.is_none() {
            summary.stopped();
        }
        push_metrics(config, &mut summary).await;
        summary
    });
    match config.output {
        Format::Json => println!("{}", summary.to_json()),
        Format::Text => print!("{}", summary.to_text()),
    }
    ExitCode::from(summary.exit_code())
}

fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let env = match config::process_environment() {
        Ok(env) => env,
        Err(e) => return fail(&e),
    };
    if let Some(Command::Explain(args)) = &cli.command {
        return explain(args, &env);
    }
    match Config::from_env(env.clone(), cli.dry_run) {
        Ok(config) => reconcile(&config),
        Err(e) => {
            // Scripts asked for JSON still get exactly one object on stdout.
            if config::wants_json(&env) {
                let mode = if cli.dry_run { DryRun::Client } else { DryRun::Off };
                println!("{}", Summary::aborted(mode, &e).to_json());
            }
            fail(&e)
        }
    }
}
