//! OCI hooks: host programs run at points of a container's life, given the
//! container's state on stdin. They run on the host, as the runtime does:
//! a sandbox has no host namespace for createContainer and startContainer
//! to enter, so those run there too (as with runsc).

use std::io::{Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use oci_spec::runtime::Hook;

use super::state::OciState;

/// Runs `hooks` in order, stopping at the first failure.
pub fn run(kind: &str, hooks: &[Hook], state: &OciState) -> anyhow::Result<()> {
    if hooks.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_vec(state)?;
    for hook in hooks {
        run_one(hook, &json).with_context(|| format!("{kind} hook {}", hook.path().display()))?;
    }
    Ok(())
}

fn run_one(hook: &Hook, state: &[u8]) -> anyhow::Result<()> {
    let mut cmd = Command::new(hook.path());
    let args = hook.args().clone().unwrap_or_default();
    if let Some((argv0, rest)) = args.split_first() {
        cmd.arg0(argv0).args(rest);
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    // A file, not a pipe, so that a hook writing much is not stalled.
    let mut errors = tempfile::tempfile().context("creating a file for its stderr")?;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(errors.try_clone()?)
        .spawn()
        .context("starting")?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its state may close stdin early.
        let _ = stdin.write_all(state);
    }
    let deadline = hook
        .timeout()
        .filter(|&t| t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        if let Some(status) = child.try_wait().context("waiting")? {
            if status.success() {
                return Ok(());
            }
            let mut err = String::new();
            let _ = std::io::Seek::rewind(&mut errors);
            let _ = (&errors).take(4096).read_to_string(&mut err);
            bail!("{status}: {}", err.trim());
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out after {}s", hook.timeout().unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
