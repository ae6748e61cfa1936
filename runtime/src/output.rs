//! In-memory stdout/stderr for guests, capped at the policy's output limit.
//!
//! wasmtime-wasi's `MemoryOutputPipe` refuses a whole write that does not fit
//! and reports it with an anonymous error. This pipe keeps every byte up to the
//! cap (so the captured output is the exact prefix of what the guest wrote),
//! then stops the guest with [`LimitExceeded::Output`] so that a flood costs
//! neither memory nor CPU and the run is classified as having hit a limit.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use crate::limits::LimitExceeded;

/// Largest chunk offered to the guest per write; wasmtime-wasi splits guest
/// writes into pieces of at most this many bytes anyway.
const WRITE_PERMIT: usize = 64 * 1024;

#[derive(Debug, Default)]
struct PipeState {
    bytes: Vec<u8>,
    truncated: bool,
}

/// A cloneable handle on one capped in-memory stream: the WASI context holds
/// one clone, the host keeps another to read the output after the run.
#[derive(Debug, Clone)]
pub struct CappedPipe {
    stream: &'static str,
    limit: u64,
    state: Arc<Mutex<PipeState>>,
}

impl CappedPipe {
    /// A pipe for the stream called `stream` (`stdout` or `stderr`) holding at
    /// most `limit` bytes.
    pub fn new(stream: &'static str, limit: u64) -> Self {
        Self { stream, limit, state: Arc::new(Mutex::new(PipeState::default())) }
    }

    fn lock(&self) -> MutexGuard<'_, PipeState> {
        // A poisoned lock only means another clone panicked mid-append; the
        // bytes are still a valid prefix of the guest's output.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The captured bytes so far.
    pub fn contents(&self) -> Vec<u8> {
        self.lock().bytes.clone()
    }

    /// Whether the guest tried to write past the cap.
    pub fn truncated(&self) -> bool {
        self.lock().truncated
    }

    fn overflow(&self) -> LimitExceeded {
        LimitExceeded::Output { stream: self.stream, limit: self.limit }
    }

    /// Appends what fits; reports an overflow if anything was cut.
    fn append(&self, bytes: &[u8]) -> Result<(), LimitExceeded> {
        let mut state = self.lock();
        if state.truncated {
            return Err(self.overflow());
        }
        let room = usize::try_from(self.limit).unwrap_or(usize::MAX).saturating_sub(state.bytes.len());
        if bytes.len() > room {
            state.bytes.extend_from_slice(&bytes[..room]);
            state.truncated = true;
            return Err(self.overflow());
        }
        state.bytes.extend_from_slice(bytes);
        Ok(())
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.append(&bytes).map_err(|limit| StreamError::Trap(wasmtime::Error::new(limit)))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Permission is granted even when the cap is near, so that the write
        // itself is attempted and the overflow stops the guest, instead of the
        // guest seeing a closed stream it might ignore and keep running.
        if self.lock().truncated {
            return Err(StreamError::Trap(wasmtime::Error::new(self.overflow())));
        }
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CappedPipe {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.append(buf).map(|()| buf.len()).map_err(std::io::Error::other))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_exact_prefix_and_reports_overflow() {
        let pipe = CappedPipe::new("stdout", 5);
        assert!(pipe.append(b"abc").is_ok());
        assert_eq!(pipe.append(b"defg"), Err(LimitExceeded::Output { stream: "stdout", limit: 5 }));
        assert_eq!(pipe.contents(), b"abcde");
        assert!(pipe.truncated());
        assert!(pipe.append(b"").is_err());
    }

    #[test]
    fn exactly_full_is_not_truncated() {
        let pipe = CappedPipe::new("stderr", 3);
        assert!(pipe.append(b"abc").is_ok());
        assert!(!pipe.truncated());
    }
}
