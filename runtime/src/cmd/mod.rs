//! One module per subcommand, plus the host arguments they share.

pub mod exec;
mod host;
pub mod replay;
mod report;
pub mod verify_receipt;
