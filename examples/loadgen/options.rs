//! Command-line options (plain parsing: an example cannot use clap's derive
//! without making it a dependency of the server's tests too).

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    pub key: String,
    pub tool: String,
    pub args: String,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub max_requests: u64,
    pub server_pid: Option<u32>,
}

const USAGE: &str = "usage: loadgen URL --key KEY [--tool NAME] [--args JSON] \
[--connections C] [--duration S] [--warmup S] [--max-requests N] [--server-pid PID]";

impl Options {
    pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut options = Options {
            url: String::new(),
            key: String::new(),
            tool: "whoami".into(),
            args: "{}".into(),
            connections: 16,
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(10),
            max_requests: u64::MAX,
            server_pid: None,
        };
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
            };
            match arg.as_str() {
                "--key" => options.key = value()?,
                "--tool" => options.tool = value()?,
                "--args" => options.args = value()?,
                "--connections" => options.connections = number(&arg, &value()?)?,
                "--duration" => options.duration = seconds(&arg, &value()?)?,
                "--warmup" => options.warmup = seconds(&arg, &value()?)?,
                "--max-requests" => options.max_requests = number(&arg, &value()?)?,
                "--server-pid" => options.server_pid = Some(number(&arg, &value()?)?),
                "-h" | "--help" => return Err(USAGE.into()),
                url if options.url.is_empty() && !url.starts_with('-') => options.url = arg,
                _ => return Err(format!("unexpected argument {arg}\n{USAGE}")),
            }
        }
        if options.url.is_empty() || options.key.is_empty() {
            return Err(USAGE.into());
        }
        if options.connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        Ok(options)
    }
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: not a number: {value}"))
}

fn seconds(flag: &str, value: &str) -> Result<Duration, String> {
    let s: f64 = number(flag, value)?;
    Duration::try_from_secs_f64(s).map_err(|_| format!("{flag}: not a duration: {value}"))
}
