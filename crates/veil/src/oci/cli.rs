//! The runc commands whose flags liboci-cli models differently from runc.

use clap::{Args, Subcommand};

/// The OCI runtime commands, with runc's flags.
#[derive(Subcommand, Debug)]
pub enum OciCommand {
    /// Create a container from a bundle, its process waiting for `start`.
    Create(liboci_cli::Create),
    /// Start the process of a created container.
    Start(liboci_cli::Start),
    /// Create and start a container, waiting for it unless detached.
    Run(liboci_cli::Run),
    /// Run another process in a container.
    Exec(liboci_cli::Exec),
    /// Send a signal to a container's init (or all its processes).
    Kill(Kill),
    /// Delete a container and what it holds.
    Delete(liboci_cli::Delete),
    /// Print a container's state as JSON.
    State(liboci_cli::State),
    /// List a container's processes.
    Ps(liboci_cli::Ps),
    /// List the containers.
    List(List),
    /// Write a default config.json into the bundle.
    Spec(liboci_cli::Spec),
    /// Print the features veil supports as JSON.
    Features(liboci_cli::Features),
    /// Print a container's events and resource statistics.
    Events(Events),
    /// Suspend all the processes of a container.
    Pause(liboci_cli::Pause),
    /// Resume the processes of a paused container.
    Resume(liboci_cli::Resume),
    /// (internal) Stand for a detached exec'd process until it exits.
    #[command(hide = true)]
    ExecWait(ExecWait),
}

impl OciCommand {
    /// The command's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Create(_) => "create",
            Self::Start(_) => "start",
            Self::Run(_) => "run",
            Self::Exec(_) => "exec",
            Self::Kill(_) => "kill",
            Self::Delete(_) => "delete",
            Self::State(_) => "state",
            Self::Ps(_) => "ps",
            Self::List(_) => "list",
            Self::Spec(_) => "spec",
            Self::Features(_) => "features",
            Self::Events(_) => "events",
            Self::Pause(_) => "pause",
            Self::Resume(_) => "resume",
            Self::ExecWait(_) => "exec-wait",
        }
    }
}

/// runc's `kill`: the signal is optional and defaults to SIGTERM.
#[derive(Args, Debug)]
pub struct Kill {
    /// Send the signal to all the container's processes.
    #[arg(short, long)]
    pub all: bool,
    /// The container.
    #[arg(value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub container_id: String,
    /// A signal name (with or without SIG) or number.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

/// runc's `list`, with its `-f`.
#[derive(Args, Debug)]
pub struct List {
    /// `table` or `json`.
    #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Print only the container ids.
    #[arg(short, long)]
    pub quiet: bool,
}

/// runc's `events`: the interval is a duration such as `5s`.
#[derive(Args, Debug)]
pub struct Events {
    /// How often to print statistics (a duration: 500ms, 5s, 1m).
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// Print statistics once and exit.
    #[arg(long)]
    pub stats: bool,
    /// The container.
    #[arg(value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub container_id: String,
}

/// The waiter `exec --detach` leaves behind.
#[derive(Args, Debug)]
pub struct ExecWait {
    pub container_id: String,
    /// The exec'd process's pid in the sandbox; without it, the waiter
    /// stands for a pod's container's init.
    pub pid: Option<i32>,
    /// The connection its wait request went out on.
    #[arg(long)]
    pub conn_fd: std::os::fd::RawFd,
}
