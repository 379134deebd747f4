//! Reading HTTP bodies whole, up to a limit: clients' requests and subgraphs' responses.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Body;

/// Why a body was not read whole.
#[derive(Debug)]
pub enum BodyError<E> {
    /// It is longer than the limit.
    TooLarge,
    /// Reading it failed.
    Read(E),
}

/// Reads `body` whole, frame by frame, so a body without (or lying about) its length stops at
/// `limit`; `expected` (a declared length) sizes the buffer. A body that arrives in one frame is
/// returned as it is, without a copy.
pub async fn read_whole<B>(
    body: &mut B,
    limit: usize,
    expected: usize,
) -> Result<Bytes, BodyError<B::Error>>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut only: Option<Bytes> = None;
    let mut joined = BytesMut::new();
    let mut received = 0;
    while let Some(frame) = body.frame().await {
        let Ok(chunk) = frame.map_err(BodyError::Read)?.into_data() else {
            continue;
        };
        received += chunk.len();
        if received > limit {
            return Err(BodyError::TooLarge);
        }
        if received == chunk.len() {
            only = Some(chunk);
            continue;
        }
        if let Some(first) = only.take() {
            joined.reserve(expected.max(received));
            joined.extend_from_slice(&first);
        }
        joined.extend_from_slice(&chunk);
    }
    Ok(only.unwrap_or_else(|| joined.freeze()))
}

/// Reads and drops what is left of a body refused before it was read, up to `most` bytes and
/// for at most `time`. A client that sends its whole body before reading the response then gets
/// the refusal: a connection closed with unread data is reset, and a reset loses the response
/// the client has not read yet.
pub async fn drain<B>(body: &mut B, most: usize, time: Duration)
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut seen = 0;
    let discard = async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > most {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(time, discard).await;
}
