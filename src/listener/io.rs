//! The connection's socket as the HTTP library sees it: reads are reported
//! to the connection's [`Activity`] (they start head timers), so are
//! writes that must wait for the client (they start the send-stall timer),
//! and the
//! library's own answers to requests it cannot parse are replaced by the
//! service's JSON errors.
//!
//! hyper answers an unparseable request (bad framing, a request target over
//! its 64 KiB limit, a head over its buffer) by itself, before any service
//! code runs, with an empty-bodied 400, 414 or 431 — then closes the
//! connection. The contract wants every status to carry the JSON envelope,
//! and hyper offers no hook for those answers, so this wrapper recognises
//! them on their way out (a 400/414/431 head without `content-type`, which
//! the service's own answers always have) and writes the service's answer
//! for the same status instead.

use super::watchdog::Activity;
use crate::error::ApiError;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A socket whose reads feed the watchdog and whose bare parse-error
/// answers are replaced.
pub struct GuardedIo {
    stream: TcpStream,
    activity: Arc<Activity>,
    /// A replacement answer still being written, and how much of it is out.
    replacement: Option<(Vec<u8>, usize)>,
}

impl GuardedIo {
    /// Wraps an accepted socket.
    pub fn new(stream: TcpStream, activity: Arc<Activity>) -> Self {
        Self {
            stream,
            activity,
            replacement: None,
        }
    }

    /// Writes what is left of a replacement answer.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while let Some((bytes, written)) = &mut self.replacement {
            if *written == bytes.len() {
                self.replacement = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }

    /// Tells the watchdog whether the client takes what is written: a
    /// write that must wait for room starts its send-stall timer, one that
    /// went through stops it.
    fn report_send(&self, written: &Poll<std::io::Result<usize>>) {
        match written {
            Poll::Pending => self.activity.send_waiting(),
            Poll::Ready(Ok(n)) if *n > 0 => self.activity.sent(),
            Poll::Ready(_) => {}
        }
    }

    /// Takes over `head` when it is one of the library's bare answers:
    /// claims it written and queues the service's answer (logged where it
    /// is mapped, in `error`) instead.
    fn intercept(&mut self, cx: &mut Context<'_>, head: &[u8], len: usize) -> Option<usize> {
        let error = bare_parse_error(head)?;
        self.replacement = Some((error.http1_answer(), 0));
        // The answer is small and the socket's buffer empty: it usually
        // goes out at once; otherwise flush and shutdown finish it.
        let _ = self.poll_replacement(cx);
        Some(len)
    }
}

/// The error a bare answer of the HTTP library stands for: a 400, 414 or
/// 431 status line whose head carries no `content-type`.
fn bare_parse_error(bytes: &[u8]) -> Option<ApiError> {
    let rest = bytes
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| bytes.strip_prefix(b"HTTP/1.0 "))?;
    let error = match rest.get(..4)? {
        b"400 " => ApiError::BadRequest("the HTTP library could not parse the request".into()),
        b"414 " => ApiError::UriTooLong,
        b"431 " => ApiError::RequestHeaderFieldsTooLarge,
        _ => return None,
    };
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = bytes[..end].to_ascii_lowercase();
    let typed = head
        .split(|b| *b == b'\n')
        .any(|line| line.starts_with(b"content-type:"));
    (!typed).then_some(error)
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.stream).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        ready!(self.poll_replacement(cx))?;
        if let Some(n) = self.intercept(cx, buf, buf.len()) {
            return Poll::Ready(Ok(n));
        }
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.report_send(&written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        ready!(self.poll_replacement(cx))?;
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            let total = bufs.iter().map(|b| b.len()).sum();
            if let Some(n) = self.intercept(cx, first, total) {
                return Poll::Ready(Ok(n));
            }
        }
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.report_send(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::bare_parse_error;
    use axum::http::StatusCode;

    fn status(head: &str) -> Option<StatusCode> {
        bare_parse_error(head.as_bytes()).map(|e| e.status())
    }

    #[test]
    fn recognises_only_the_libraries_bare_answers() {
        let bare =
            "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(
            status(bare),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        assert_eq!(
            status("HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n"),
            Some(StatusCode::URI_TOO_LONG)
        );
        assert_eq!(
            status("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"),
            Some(StatusCode::BAD_REQUEST)
        );
        // The service's own answers carry their JSON type.
        assert_eq!(
            status("HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\ncontent-length: 9\r\n\r\n"),
            None
        );
        assert_eq!(status("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"), None);
        // Body bytes and incomplete heads are left alone.
        assert_eq!(status("2024-01-01T00:00:00.000Z,View"), None);
        assert_eq!(status("HTTP/1.1 400 Bad Request\r\ncontent-len"), None);
    }
}
