//! Reading the client's body under its limit (`MAX_BODY_BYTES`, see `magnetar_core::request`).
//!
//! The declared `Content-Length` is checked before a byte is read; the bytes are then read chunk
//! by chunk and counted, so a client that declares nothing (chunked) or less than it sends is cut
//! off as soon as it passes the limit. The body is buffered (at most the limit) because it may be
//! replayed to another downstream; whether it is, `magnetar_core::retry::Replay` decides.

use futures_util::StreamExt;
use magnetar_core::request::{BodyError, BodyLimit};
use worker::Request;

/// Why the body could not be read.
pub enum BodyRead {
    /// Over the limit, or a malformed `Content-Length` (answered with 413 or 400).
    Refused(BodyError),
    /// The client's stream failed (answered with 400).
    Broken(String),
}

/// The body of `req`, at most `limit` bytes.
pub async fn read(req: &mut Request, limit: u64) -> Result<Vec<u8>, BodyRead> {
    let declared = req.headers().get("content-length").ok().flatten();
    let mut limit = BodyLimit::new(limit, declared.as_deref()).map_err(BodyRead::Refused)?;
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    let mut stream = req.stream().map_err(|e| BodyRead::Broken(e.to_string()))?;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BodyRead::Broken(e.to_string()))?;
        limit.take(chunk.len()).map_err(BodyRead::Refused)?;
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
