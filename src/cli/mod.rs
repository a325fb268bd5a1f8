//! The command line: argv (one clap definition) -> what to do, and `explain`'s question. The
//! settings from the environment are the `config` layer's. Nothing here talks to the cluster.

use anyhow::{Result, bail};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::core::names::{check_label, check_object_name};
use crate::explain::Question;

#[derive(Debug, Parser)]
#[command(
    name = "pullsecret-reconciler",
    version,
    about = "Copies registry pull Secrets into every selected namespace and lists them in ServiceAccounts'\n\
             imagePullSecrets, in one run; then prints a summary and exits.",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Plan and report, write nothing (the same as PULLSECRET_DRY_RUN=true)
    #[arg(long)]
    pub dry_run: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Why a Pod's images would or would not pull (reads only)
    Explain(ExplainArgs),
}

/// The usage lines of `explain`, in errors and in its help.
pub const EXPLAIN_USAGE: &str = "pullsecret-reconciler explain POD -n NAMESPACE [--output json]\n       \
                                 pullsecret-reconciler explain --image REF [--service-account SA] -n NAMESPACE [--output json]\n       \
                                 pullsecret-reconciler explain --stuck [--output json]";

/// `explain`'s arguments as typed; [`ExplainArgs::check`] says what is wrong with a combination.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
#[command(
    override_usage = EXPLAIN_USAGE,
    after_help = "Exit codes: 0 would pull, 1 would not, 2 the question is invalid or the cluster unreachable."
)]
pub struct ExplainArgs {
    /// The Pod whose images to explain
    pub pod: Option<String>,
    /// The namespace (default: the kubeconfig's)
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// An image reference, for a Pod not created yet
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// With --image: the ServiceAccount the Pod would run as
    #[arg(long, value_name = "SA")]
    pub service_account: Option<String>,
    /// Every Pod waiting in ImagePullBackOff or ErrImagePull, grouped by cause
    #[arg(long)]
    pub stuck: bool,
    /// The answer on stdout
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

impl ExplainArgs {
    /// What clap cannot say: exactly one question, and names the API server would accept.
    pub fn check(&self) -> Result<()> {
        let modes = usize::from(self.pod.is_some()) + usize::from(self.image.is_some()) + usize::from(self.stuck);
        if modes != 1 {
            bail!("give exactly one of POD, --image REF or --stuck\nUsage: {EXPLAIN_USAGE}");
        }
        if self.stuck && (self.namespace.is_some() || self.service_account.is_some()) {
            bail!("--stuck looks at every namespace: -n and --service-account do not apply\nUsage: {EXPLAIN_USAGE}");
        }
        if self.service_account.is_some() && self.image.is_none() {
            bail!("--service-account goes with --image\nUsage: {EXPLAIN_USAGE}");
        }
        if let Some(ns) = &self.namespace
            && check_label(ns).is_err()
        {
            bail!(
                "invalid namespace name {ns:?}: a namespace is a DNS label (lower-case letters, digits, '-'; 63 at most)"
            );
        }
        for (what, v) in [("Pod", &self.pod), ("ServiceAccount", &self.service_account)] {
            if let Some(v) = v
                && check_object_name(v).is_err()
            {
                bail!("invalid {what} name {v:?}");
            }
        }
        Ok(())
    }

    pub fn json(&self) -> bool {
        self.output == Output::Json
    }

    /// The question checked arguments ask, with the kubeconfig's namespace when `-n` is not given.
    pub fn question(&self, default_namespace: &str) -> Question {
        let namespace = self.namespace.clone().unwrap_or_else(|| default_namespace.to_owned());
        if self.stuck {
            Question::Stuck
        } else if let Some(image) = &self.image {
            Question::Image {
                namespace,
                image: image.clone(),
                service_account: self.service_account.clone().unwrap_or_else(|| "default".into()),
            }
        } else {
            Question::Pod {
                namespace,
                name: self.pod.clone().unwrap_or_default(),
            }
        }
    }
}

/// Parses argv (the program name first). `Err` is clap's: help, version or a usage error, each
/// with its own exit code (0, 0, 2).
pub fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = Cli::command()
        .after_help(crate::config::help::after_help())
        .try_get_matches_from(args)?;
    Cli::from_arg_matches(&matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explain(args: &[&str]) -> Result<ExplainArgs> {
        let argv = ["pullsecret-reconciler", "explain"].iter().chain(args);
        let cli = parse(argv).map_err(|e| anyhow::anyhow!("{e}"))?;
        let Some(Command::Explain(a)) = cli.command else {
            bail!("not explain")
        };
        a.check()?;
        Ok(a)
    }

    #[test]
    fn the_reconciler_takes_dry_run_and_nothing_else() {
        assert!(parse(["p", "--dry-run"]).unwrap().dry_run);
        assert!(!parse(["p"]).unwrap().dry_run);
        let e = parse(["p", "--dryrun"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("unexpected argument '--dryrun'"), "{e}");
        assert_eq!(parse(["p", "--help"]).unwrap_err().exit_code(), 0);
        assert_eq!(parse(["p", "--version"]).unwrap_err().exit_code(), 0);
    }

    #[test]
    fn questions_parse_and_invalid_ones_say_why() {
        let a = explain(&["web-0", "-n", "shop", "--output", "json"]).unwrap();
        assert_eq!(
            (a.pod.as_deref(), a.namespace.as_deref(), a.json()),
            (Some("web-0"), Some("shop"), true)
        );
        let a = explain(&["--image=ghcr.io/acme/app:1", "--service-account", "builder"]).unwrap();
        assert_eq!(a.image.as_deref(), Some("ghcr.io/acme/app:1"));
        assert_eq!(a.service_account.as_deref(), Some("builder"));
        assert!(explain(&["--stuck"]).unwrap().stuck);
        for (args, want) in [
            (vec![], "exactly one of POD, --image REF or --stuck"),
            (vec!["a", "--stuck"], "exactly one of"),
            (vec!["a", "b"], "unexpected argument 'b'"),
            (vec!["--stuck", "-n", "x"], "-n and --service-account do not apply"),
            (vec!["web", "-n", "shop.eu"], "invalid namespace name"),
            (vec!["web", "-n", "Shop"], "invalid namespace name"),
            (
                vec!["a", "--service-account", "x"],
                "--service-account goes with --image",
            ),
            (vec!["a", "-n"], "a value is required for '--namespace <NAMESPACE>'"),
            (vec!["a", "-o", "yaml"], "invalid value 'yaml' for '--output <OUTPUT>'"),
            (vec!["a", "--bogus"], "unexpected argument '--bogus'"),
            (vec!["Bad_Pod"], "invalid Pod name"),
        ] {
            let e = format!("{:#}", explain(&args).unwrap_err());
            assert!(e.contains(want), "{args:?}: {e}");
        }
    }
}
