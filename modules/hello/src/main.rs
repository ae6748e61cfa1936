//! `hello`: the smallest useful tenant. It shows that arguments and the
//! environment variables a manifest allows reach the guest, and nothing else.
//!
//! Usage: `hello [NAME]`, with an optional `GREETING` in the environment.
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

/// Used when the host passes no `GREETING`: a module must work with an empty
/// environment, because nothing is inherited unless the manifest lists it.
const DEFAULT_GREETING: &str = "Hello";

/// Used when no argument is given.
const DEFAULT_NAME: &str = "world";

fn main() -> ExitCode {
    let name = std::env::args().nth(1).unwrap_or_else(|| DEFAULT_NAME.to_owned());
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| DEFAULT_GREETING.to_owned());
    // Writing can fail when the host caps stdout; report it instead of panicking
    // so that the exit status says what happened.
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{greeting}, {name}!").and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hello: cannot write to stdout: {e}");
            ExitCode::from(2)
        }
    }
}
