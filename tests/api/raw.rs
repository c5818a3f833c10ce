//! Raw HTTP/1.x over a TCP socket, for what a well-behaved client library
//! will not send: half heads, huge targets, repeated headers, HTTP/1.0.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An answer read off the socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        assert_eq!(self.header("content-type"), Some("application/json"));
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Sends `request` as is and reads one answer (its body by
/// `content-length`, or to the end of the connection).
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The server may answer (and close) before it read everything.
    let _ = stream.write_all(request).await;
    read_response(&mut stream).await
}

/// Reads one answer from `stream`.
pub async fn read_response(stream: &mut TcpStream) -> RawResponse {
    let mut buf = Vec::new();
    let deadline = Duration::from_secs(20);
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(deadline, stream.read(&mut chunk))
            .await
            .expect("no answer in time")
            .unwrap_or(0);
        assert!(n > 0, "connection closed before an answer: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let mut body = buf[head_end + 4..].to_vec();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse::<usize>().unwrap())
        .or(matches!(status, 204 | 304).then_some(0));
    match length {
        Some(len) => {
            while body.len() < len {
                let mut chunk = vec![0u8; len - body.len()];
                let n = tokio::time::timeout(deadline, stream.read(&mut chunk))
                    .await
                    .unwrap()
                    .unwrap();
                assert!(n > 0, "body cut short");
                body.extend_from_slice(&chunk[..n]);
            }
        }
        None => {
            let _ = tokio::time::timeout(deadline, stream.read_to_end(&mut body)).await;
        }
    }
    RawResponse {
        status,
        headers,
        body,
    }
}

/// Waits until the server closes `stream` (reads return 0, or reset),
/// returning every byte it sent before.
pub async fn until_closed(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(within, async {
        let mut chunk = [0u8; 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("the server kept the connection open");
    got
}
