//! One module per `signer` subcommand.

pub mod bundle;
pub mod embed;
pub mod inspect;
pub mod keygen;
pub mod sign;
pub mod verify;
pub mod wasmsig;

/// Prints a serialisable value as one line of JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
