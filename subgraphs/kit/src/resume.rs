//! Subscriptions that resume: each response carries the id of its event, and a subscription
//! request can name the last id its client received.
//!
//! - A subscription request's `extensions.lastEventId` (an id a response gave) makes the
//!   subscription replay every later event of its topic, then go on live, without a gap or a
//!   duplicate at the seam. When the stream no longer keeps events that far back, the
//!   subscription ends with an error coded [`EVENT_GAP`]; an id that is not one is
//!   [`BAD_EVENT_ID`].
//! - Each response of a subscription that follows a topic carries `extensions.eventId`.
//!
//! Resolvers follow a topic with [`AppState::follow`](crate::AppState::follow); the
//! [`EventIds`] extension (on every kit schema) carries the ids between the request, the
//! resolver's stream and the responses.

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextSubscribe,
};
use async_graphql::{Request, Response, ServerError, ServerResult, Value};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use crate::events::EventId;

/// The request extension naming the last event id a client received.
pub const LAST_EVENT_ID: &str = "lastEventId";
/// The response extension carrying an event's id.
pub const EVENT_ID: &str = "eventId";
/// The code of the error that ends a subscription whose events after its last id are gone.
pub const EVENT_GAP: &str = "EVENT_GAP";
/// The code of the error for a `lastEventId` that is not an event id.
pub const BAD_EVENT_ID: &str = "BAD_EVENT_ID";

/// One subscription's place in its topic: where it resumes from, and its last event.
#[derive(Debug, Default)]
pub struct Cursor {
    after: std::sync::OnceLock<EventId>,
    last: Mutex<Option<EventId>>,
}

impl Cursor {
    /// The id the client asked to resume after.
    pub fn after(&self) -> Option<EventId> {
        self.after.get().copied()
    }

    /// Records the event being given out.
    pub fn record(&self, id: Option<EventId>) {
        if let Some(id) = id {
            *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(id);
        }
    }

    fn last(&self) -> Option<EventId> {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The extension behind `lastEventId` and `eventId` (see the module).
pub struct EventIds;

impl ExtensionFactory for EventIds {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(EventIdsExtension {
            cursor: Arc::new(Cursor::default()),
        })
    }
}

/// One request's: the cursor its resolver records into and its responses read.
struct EventIdsExtension {
    cursor: Arc<Cursor>,
}

fn bad_id(value: impl std::fmt::Display) -> ServerError {
    let message = format!(
        "extensions.{LAST_EVENT_ID} must be an event id (`<millis>-<seq>`, as a response's \
         extensions.{EVENT_ID} gives it), not {value}"
    );
    crate::error::with_code(ServerError::new(message, None), BAD_EVENT_ID)
}

#[async_graphql::async_trait::async_trait]
impl Extension for EventIdsExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        match request.extensions.get(LAST_EVENT_ID) {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) => {
                let after = text.parse::<EventId>().map_err(|_| bad_id(text))?;
                let _ = self.cursor.after.set(after);
            }
            Some(other) => return Err(bad_id(other)),
        }
        request.data.insert(Arc::clone(&self.cursor));
        next.run(ctx, request).await
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let cursor = Arc::clone(&self.cursor);
        next.run(ctx, stream)
            .map(move |mut response| {
                if let (Some(id), false) = (cursor.last(), response.data == Value::Null) {
                    response
                        .extensions
                        .insert(EVENT_ID.to_owned(), Value::String(id.to_string()));
                }
                response
            })
            .boxed()
    }
}
