//! A minimal blocking HTTP/1.1 client for talking to the test registry over loopback.
//!
//! One connection per request (`Connection: close`), so a response ends where the stream ends.
//! It exists so that the fixtures need no async runtime and no dependency beyond the crate's.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long one request may wait on the socket before it fails instead of hanging the test.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(60);

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code, e.g. 201.
    pub status: u16,
    /// Header names (as sent) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, with any chunked transfer encoding removed.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Sends one request to `host` ("127.0.0.1:PORT") and reads the whole response.
///
/// `target` is the request target: a path with an optional query. `headers` are sent in
/// addition to `Host`, `Connection` and `Content-Length`.
pub fn send(
    host: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(SOCKET_TIMEOUT))?;
    stream.set_write_timeout(Some(SOCKET_TIMEOUT))?;

    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;

    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

/// Sends a GET without a body.
pub fn get(host: &str, target: &str, headers: &[(&str, &str)]) -> io::Result<Response> {
    send(host, "GET", target, headers, &[])
}

fn parse_response(raw: &[u8]) -> io::Result<Response> {
    let head_end = find(raw, b"\r\n\r\n").ok_or_else(|| invalid("response has no header end"))?;
    let head = std::str::from_utf8(&raw[..head_end])
        .map_err(|_| invalid("response header is not UTF-8"))?;
    let mut lines = head.split("\r\n");

    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(&format!("bad status line {status_line:?}")))?;

    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();

    let mut response = Response {
        status,
        headers,
        body: raw[head_end + 4..].to_vec(),
    };
    if response.header("Transfer-Encoding") == Some("chunked") {
        response.body = dechunk(&response.body)?;
    }
    Ok(response)
}

/// Removes chunked transfer encoding (trailers are ignored).
fn dechunk(mut chunked: &[u8]) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = find(chunked, b"\r\n").ok_or_else(|| invalid("chunk size line"))?;
        let size_field = std::str::from_utf8(&chunked[..line_end]).unwrap_or_default();
        let size_hex = size_field.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| invalid(&format!("bad chunk size {size_hex:?}")))?;
        if size == 0 {
            return Ok(body);
        }

        let data = chunked
            .get(line_end + 2..line_end + 2 + size)
            .ok_or_else(|| invalid("chunk shorter than its size"))?;
        body.extend_from_slice(data);
        chunked = chunked.get(line_end + 2 + size + 2..).unwrap_or_default();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}
