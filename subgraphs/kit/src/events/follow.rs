//! One subscriber's position in a topic: replay after an id, then live events, catching up
//! from the stream whenever the live fan-out could have missed some.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use super::{Event, EventBus, EventId, Gap, Signal};

/// Events read from the stream per round while catching up.
const CATCH_UP_BATCH: usize = 256;

/// One subscriber's position in a topic ([`EventBus::follow`]).
pub(super) struct Follower {
    bus: EventBus,
    topic: String,
    live: broadcast::Receiver<Signal>,
    /// The last id given out, or followed from.
    last: Option<EventId>,
    /// Where the stream was when a subscriber from now on was first polled: where it catches up
    /// from if it must before it has given anything out.
    start: Option<EventId>,
    /// Whether live events of the topic are known to reach this process.
    listening: bool,
    /// Whether to read the stream before taking live events.
    catch_up: bool,
    /// Whether the catch-up is the replay a subscriber asked for (after its id), where a stream
    /// that began anew is a gap; in a catch-up of its own, the follower goes on with the new
    /// stream (what the old one held after its last event is lost with it, and logged).
    resuming: bool,
    /// Events read from the stream, not given out yet.
    replay: VecDeque<Arc<Event>>,
    done: bool,
}

impl Follower {
    /// A follower of `topic` on `bus`, after `after` or from now on. Live events are heard
    /// from this moment, before any replay is read: nothing falls between the two, and what
    /// both give is dropped by id.
    pub(super) fn new(bus: EventBus, topic: &str, after: Option<EventId>) -> Self {
        let live = bus.inner.sender.subscribe();
        Self {
            bus,
            topic: topic.to_owned(),
            live,
            last: after,
            start: None,
            listening: false,
            catch_up: after.is_some(),
            resuming: after.is_some(),
            replay: VecDeque::new(),
            done: false,
        }
    }

    pub(super) async fn next(&mut self) -> Option<Result<Arc<Event>, Gap>> {
        if self.done {
            return None;
        }
        let mut pause = Duration::from_millis(50);
        while !self.listening {
            // Before the stream is read: whatever is published from here on is heard live.
            match self.bus.listen(&self.topic).await {
                Ok(()) => self.listening = true,
                Err(err) => {
                    tracing::warn!(topic = self.topic, error = %err, "not subscribed yet: will retry");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
        if self.last.is_none() && self.start.is_none() {
            // Where "now" is in the stream, so that a catch-up before the first event knows where
            // to start. Live events already heard are still given out: they came after `follow`.
            // Without Redis at this moment, the subscriber cannot catch up until its first event.
            match self.bus.last_id(&self.topic).await {
                Ok(id) => self.start = Some(id),
                Err(err) => tracing::warn!(topic = self.topic, error = %err, "no stream position"),
            }
        }
        let mut check_gap = self.catch_up;
        loop {
            if let Some(event) = self.replay.pop_front() {
                self.last = event.id.or(self.last);
                return Some(Ok(event));
            }
            if self.catch_up {
                let after = self.last.or(self.start).unwrap_or_default();
                match self
                    .bus
                    .read_after(&self.topic, after, CATCH_UP_BATCH, check_gap)
                    .await
                {
                    Ok(Ok(events)) if events.is_empty() => self.catch_up = false,
                    Ok(Ok(events)) => self.replay = events.into(),
                    Ok(Err(gap)) if gap.reset && !self.resuming => {
                        tracing::error!(
                            topic = self.topic,
                            after = %gap.after,
                            "redis lost the stream: events after this one may be lost; going on \
                             with the new stream"
                        );
                        self.last = Some(EventId::ZERO);
                        self.start = None;
                        check_gap = false;
                        continue;
                    }
                    Ok(Err(gap)) => {
                        self.done = true;
                        return Some(Err(gap));
                    }
                    Err(err) => {
                        tracing::warn!(topic = self.topic, error = %err, "catching up: will retry");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(1));
                        continue;
                    }
                }
                check_gap = false;
                self.resuming = false;
                continue;
            }
            match self.live.recv().await {
                Ok(Signal::Event(event)) if event.topic == self.topic => {
                    if let (Some(id), Some(last)) = (event.id, self.last)
                        && id <= last
                    {
                        continue; // already given out from the stream
                    }
                    self.last = event.id.or(self.last);
                    return Some(Ok(event));
                }
                Ok(Signal::Event(_)) => {}
                Ok(Signal::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    if self.last.is_some() || self.start.is_some() {
                        self.catch_up = true;
                        check_gap = true;
                    } else {
                        tracing::warn!(topic = self.topic, "a subscriber may have missed events");
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
