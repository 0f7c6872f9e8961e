//! Just enough HTTP/1.1 for the load: POST with a body over a kept-alive
//! connection, answers with `Content-Length` or chunked bodies.

use crate::Result;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where the server listens: `http://host:port/path`.
#[derive(Debug, Clone)]
pub struct Target {
    addr: String,
    host: String,
    path: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .ok_or("only http:// URLs are supported")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            addr,
            host: authority.to_string(),
            path: path.to_string(),
        })
    }
}

/// What every request carries after the handshake.
#[derive(Debug)]
pub struct Session {
    /// The fixed part of each request's headers, ending before Content-Length.
    headers: Vec<u8>,
}

pub struct Answer {
    pub status: u16,
    pub keep_alive: bool,
    pub session_id: Option<String>,
    pub body: Vec<u8>,
}

pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    request: Vec<u8>,
}

const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Larger bodies are refused rather than buffered.
const MAX_BODY: usize = 64 * 1024 * 1024;

impl Connection {
    pub async fn open(target: &Target) -> Result<Self> {
        let stream = TcpStream::connect(&target.addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            request: Vec::with_capacity(1024),
        })
    }

    pub async fn post(&mut self, session: &Session, body: &[u8]) -> Result<Answer> {
        self.request.clear();
        self.request.extend_from_slice(&session.headers);
        self.request.extend_from_slice(b"Content-Length: ");
        self.request
            .extend_from_slice(body.len().to_string().as_bytes());
        self.request.extend_from_slice(b"\r\n\r\n");
        self.request.extend_from_slice(body);
        self.stream.write_all(&self.request).await?;
        tokio::time::timeout(READ_TIMEOUT, self.read_answer())
            .await
            .map_err(|_| "no answer within 10 s")?
    }

    async fn read_answer(&mut self) -> Result<Answer> {
        self.buf.clear();
        let (status, keep_alive, session_id, framing, head_len) = loop {
            self.fill().await?;
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(len) = response.parse(&self.buf)? {
                let status = response.code.ok_or("no status")?;
                let mut keep_alive = response.version == Some(1);
                let mut session_id = None;
                // 1xx, 204 and 304 never have a body (RFC 9112 6.3).
                let bodiless = status < 200 || status == 204 || status == 304;
                let mut framing = if bodiless {
                    Framing::Length(0)
                } else {
                    Framing::UntilClose
                };
                for h in response.headers.iter() {
                    let value = std::str::from_utf8(h.value).unwrap_or("");
                    if bodiless {
                        // framing stays: no body whatever the headers say
                    } else if h.name.eq_ignore_ascii_case("content-length") {
                        // chunked wins over a length, whichever came first
                        if !matches!(framing, Framing::Chunked) {
                            framing = Framing::Length(value.trim().parse()?);
                        }
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding")
                        && value.to_ascii_lowercase().contains("chunked")
                    {
                        framing = Framing::Chunked;
                    }
                    if h.name.eq_ignore_ascii_case("connection") {
                        keep_alive = !value.eq_ignore_ascii_case("close");
                    } else if h.name.eq_ignore_ascii_case("mcp-session-id") {
                        session_id = Some(value.to_string());
                    }
                }
                break (status, keep_alive, session_id, framing, len);
            }
        };
        let body = match framing {
            Framing::Length(n) => {
                if n > MAX_BODY {
                    return Err(format!("a body of {n} bytes").into());
                }
                while self.buf.len() < head_len + n {
                    self.fill().await?;
                }
                self.buf[head_len..head_len + n].to_vec()
            }
            Framing::Chunked => self.read_chunks(head_len).await?,
            Framing::UntilClose => {
                while self.fill().await.is_ok() {}
                return Ok(Answer {
                    status,
                    keep_alive: false,
                    session_id,
                    body: self.buf[head_len..].to_vec(),
                });
            }
        };
        Ok(Answer {
            status,
            keep_alive,
            session_id,
            body,
        })
    }

    /// Decodes a chunked body that starts at `at` in the buffer.
    async fn read_chunks(&mut self, mut at: usize) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = memchr::memmem::find(&self.buf[at..], b"\r\n") {
                    break at + i;
                }
                self.fill().await?;
            };
            let size_text = std::str::from_utf8(&self.buf[at..line_end])?;
            let size_text = size_text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)?;
            if size > MAX_BODY {
                return Err(format!("chunk of {size} bytes").into());
            }
            let data = line_end + 2;
            if size == 0 {
                // No trailers expected: the last chunk ends with one CRLF.
                while self.buf.len() < data + 2 {
                    self.fill().await?;
                }
                return Ok(body);
            }
            while self.buf.len() < data + size + 2 {
                self.fill().await?;
            }
            if &self.buf[data + size..data + size + 2] != b"\r\n" {
                return Err("a chunk does not end with CRLF".into());
            }
            body.extend_from_slice(&self.buf[data..data + size]);
            at = data + size + 2;
        }
    }

    /// Reads more bytes into the buffer; an error at end of stream.
    async fn fill(&mut self) -> Result<()> {
        self.buf.reserve(8192);
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err("connection closed".into());
        }
        Ok(())
    }
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

fn request_head(target: &Target, key: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nAuthorization: Bearer {key}\r\n",
        target.path, target.host
    );
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.into_bytes()
}

/// `initialize` and `notifications/initialized`, as a client would: learns
/// the protocol version and the session id (if the server keeps sessions).
pub async fn handshake(target: &Target, key: &str) -> Result<Session> {
    let mut conn = Connection::open(target).await?;
    let init = Session {
        headers: request_head(target, key, &[]),
    };
    let answer = conn
        .post(
            &init,
            br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"fleetmind-loadgen","version":"1.0"}}}"#,
        )
        .await?;
    let text = String::from_utf8_lossy(&answer.body).into_owned();
    if answer.status != 200 {
        return Err(format!("initialize: HTTP {}: {text}", answer.status).into());
    }
    let version = text
        .split(r#""protocolVersion":""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .ok_or_else(|| format!("initialize: no protocolVersion in {text}"))?
        .to_string();
    let mut extra = vec![("MCP-Protocol-Version", version.as_str())];
    if let Some(id) = answer.session_id.as_deref() {
        extra.push(("Mcp-Session-Id", id));
    }
    let session = Session {
        headers: request_head(target, key, &extra),
    };
    let answer = conn
        .post(
            &session,
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        )
        .await?;
    if !matches!(answer.status, 200 | 202 | 204) {
        return Err(format!("notifications/initialized: HTTP {}", answer.status).into());
    }
    Ok(session)
}
