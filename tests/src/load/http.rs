//! A minimal HTTP/1.1 client for loopback benchmarks: one request per connection
//! (`Connection: close`), `Content-Length` or chunked bodies. Refuses non-loopback servers so a
//! benchmark never sends anything off the machine.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Time limit of one request, connect to last byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A server base URL such as `http://127.0.0.1:8080`, resolved to a loopback address.
#[derive(Debug, Clone)]
pub struct Server {
    /// The resolved address.
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: String,
}

impl Server {
    /// Parses `http://HOST:PORT[/]`; errors unless it resolves to a loopback address.
    pub fn parse(url: &str) -> Result<Server> {
        let rest = url
            .strip_prefix("http://")
            .context("the server URL must start with http://")?;
        let host = rest.split('/').next().unwrap_or(rest);
        let hostport = if host.contains(':') && !host.ends_with(']') {
            host.to_owned()
        } else {
            format!("{host}:80")
        };
        use std::net::ToSocketAddrs;
        let addr = hostport
            .to_socket_addrs()
            .with_context(|| format!("resolving {hostport}"))?
            .find(|a| a.ip().is_loopback())
            .with_context(|| {
                format!("{host} is not a loopback address; loadgen stays on loopback")
            })?;
        Ok(Server {
            addr,
            host: host.to_owned(),
        })
    }
}

/// A response: status, headers (names lower-cased) and body.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header (lower-case name, value) pairs in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request and reads the whole response, within [`REQUEST_TIMEOUT`].
pub async fn request(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response> {
    tokio::time::timeout(
        REQUEST_TIMEOUT,
        request_inner(server, method, path, headers, body),
    )
    .await
    .with_context(|| format!("{method} {path} timed out"))?
}

async fn request_inner(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response> {
    let mut stream = TcpStream::connect(server.addr)
        .await
        .with_context(|| format!("connecting to {}", server.addr))?;
    stream.set_nodelay(true)?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        server.host,
        body.len()
    );
    for (n, v) in headers {
        req.push_str(n);
        req.push_str(": ");
        req.push_str(v);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    parse_response(&raw)
}

/// Parses a complete HTTP/1.1 response (read until the server closed the connection).
pub fn parse_response(raw: &[u8]) -> Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("incomplete HTTP response head")?;
    let head = std::str::from_utf8(raw.get(..end).context("head")?)?;
    let rest = raw.get(end + 4..).unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().context("no status line")?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .context("no status code")?
        .parse()
        .context("bad status code")?;
    let mut headers = Vec::new();
    for l in lines {
        if let Some((n, v)) = l.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(len) = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        rest.get(..len)
            .context("body shorter than Content-Length")?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("bad chunk header")?;
        let size_text = std::str::from_utf8(data.get(..eol).context("chunk")?)?;
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).context("bad chunk size")?;
        data = data.get(eol + 2..).context("chunk")?;
        if size == 0 {
            return Ok(out);
        }
        let Some(chunk) = data.get(..size) else {
            bail!("truncated chunk");
        };
        out.extend_from_slice(chunk);
        data = data.get(size + 2..).context("truncated chunk")?;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length() {
        let raw =
            b"HTTP/1.1 201 Created\r\nLocation: /api/whep/main/ab\r\ncontent-length: 3\r\n\r\nv=0";
        let r = parse_response(raw).unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.header("location"), Some("/api/whep/main/ab"));
        assert_eq!(r.text(), "v=0");
    }

    #[test]
    fn parses_chunked() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let r = parse_response(raw).unwrap();
        assert_eq!(r.text(), "abcde");
    }

    #[test]
    fn server_must_be_loopback() {
        assert!(Server::parse("http://127.0.0.1:8080").is_ok());
        assert!(Server::parse("http://localhost:8080/").is_ok());
        assert!(Server::parse("http://8.8.8.8:80").is_err());
        assert!(Server::parse("https://127.0.0.1").is_err());
    }
}
