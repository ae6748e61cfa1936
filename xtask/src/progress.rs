//! How long-running library code tells a person what it is doing without the
//! library deciding where output goes: the binary picks a [`Progress`] (chatty
//! on a terminal, quiet when piped) and the library only calls it.

use std::io::IsTerminal;

/// Where progress messages go. Notices (things a person must learn about even
/// in a pipeline, such as "installing the wasm32-wasip1 target") are printed
/// unless the mode is [`Progress::Silent`]; steps only on a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Notices only: the right mode when stderr is not a terminal.
    Notices,
    /// Nothing at all: for tests and benchmarks.
    Silent,
    /// Steps and notices, and child processes such as cargo show their own
    /// progress: the right mode on a terminal.
    Steps,
}

// The one place in a library crate that writes to stderr: the binary chose
// this destination by choosing the mode.
#[allow(clippy::print_stderr)]
impl Progress {
    /// `Steps` when stderr is a terminal, `Notices` otherwise.
    pub fn for_stderr() -> Self {
        if std::io::stderr().is_terminal() { Self::Steps } else { Self::Notices }
    }

    /// Reports one step of long work.
    pub fn step(self, message: impl std::fmt::Display) {
        if self == Self::Steps {
            eprintln!("  {message}");
        }
    }

    /// Reports something that changes the machine or surprises the caller.
    pub fn notice(self, message: impl std::fmt::Display) {
        if self != Self::Silent {
            eprintln!("note: {message}");
        }
    }

    /// Whether child processes may write their own progress to our stderr.
    pub fn shows_child_output(self) -> bool {
        self == Self::Steps
    }
}
