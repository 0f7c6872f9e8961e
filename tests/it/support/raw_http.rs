//! Raw HTTP/1.1 on a TCP connection, byte for byte, so malformed requests
//! can be sent and every answer (or none) seen (added for the fuzz, issue 9).

/// What a raw HTTP exchange gave.
#[derive(Debug)]
pub enum RawOutcome {
    /// A complete response.
    Answered(RawAnswer),
    /// The connection closed or was reset before a complete response.
    Closed(String),
    /// No complete response within the deadline.
    TimedOut,
}

#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Sends `request` (bytes exactly as given, so malformed requests can be
/// sent) on a new connection to `addr` and reads one response, all within
/// `deadline`. Reading runs while writing, so an early answer to a large
/// body is not lost. With `half_close` the write side is shut after the
/// request (a client that stops sending mid-body).
pub async fn raw_http(
    addr: std::net::SocketAddr,
    request: Vec<u8>,
    half_close: bool,
    deadline: std::time::Duration,
) -> RawOutcome {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let head_request = request.starts_with(b"HEAD ");
    let exchange = async move {
        let stream = match tokio::net::TcpStream::connect(addr).await {
            Ok(stream) => stream,
            Err(err) => return RawOutcome::Closed(format!("connect: {err}")),
        };
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        let write = tokio::spawn(async move {
            let _ = writer.write_all(&request).await;
            if half_close {
                let _ = writer.shutdown().await;
            } else {
                // Keep the write side open until the answer is read.
                std::future::pending::<()>().await;
            }
            writer
        });
        let mut buf = Vec::with_capacity(4096);
        let outcome = loop {
            let mut chunk = [0u8; 16 * 1024];
            let read = reader.read(&mut chunk).await;
            match read {
                Ok(0) => {
                    break match parse_response(&buf, head_request, true) {
                        Some(answer) => RawOutcome::Answered(answer),
                        None => RawOutcome::Closed(format!(
                            "closed after {} bytes: {:?}",
                            buf.len(),
                            String::from_utf8_lossy(&buf[..buf.len().min(200)])
                        )),
                    };
                }
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(answer) = parse_response(&buf, head_request, false) {
                        break RawOutcome::Answered(answer);
                    }
                }
                Err(err) => {
                    break match parse_response(&buf, head_request, true) {
                        Some(answer) => RawOutcome::Answered(answer),
                        None => RawOutcome::Closed(format!("read: {err}")),
                    };
                }
            }
        };
        write.abort();
        outcome
    };
    tokio::time::timeout(deadline, exchange)
        .await
        .unwrap_or(RawOutcome::TimedOut)
}

/// A complete response in `buf`, or `None` while more bytes are needed
/// (`at_eof`: the body runs to the end of the stream when it has no length).
fn parse_response(buf: &[u8], head_request: bool, at_eof: bool) -> Option<RawAnswer> {
    let mut header_slots = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut header_slots);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    let status = response.code?;
    let headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let rest = &buf[head_len..];
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let no_body = head_request || status == 204 || status == 304 || (100..200).contains(&status);
    let body = if no_body {
        Vec::new()
    } else if find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        dechunk(rest)?
    } else if let Some(length) = find("content-length") {
        let length: usize = length.trim().parse().ok()?;
        if rest.len() < length {
            return None;
        }
        rest[..length].to_vec()
    } else if at_eof {
        rest.to_vec()
    } else {
        return None;
    };
    Some(RawAnswer {
        status,
        headers,
        body,
    })
}

/// A complete chunked body, or `None` if it has not all arrived.
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = memchr::memmem::find(rest, b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        if rest.len() < size + 2 {
            return None;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}
