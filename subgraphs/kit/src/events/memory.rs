//! The in-process bus's history: each topic's last events, kept and trimmed like a Redis
//! stream, with ids of the same shape.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::{Event, EventId, Lost, Retention};

/// The in-process bus's history: each topic's last events, like a Redis stream.
#[derive(Default)]
pub(super) struct Log {
    last: EventId,
    topics: HashMap<String, TopicLog>,
}

#[derive(Default)]
struct TopicLog {
    entries: VecDeque<Arc<Event>>,
    /// The first id the topic ever had.
    origin: Option<EventId>,
    /// The newest id trimmed away.
    trimmed: EventId,
}

impl Log {
    /// `event` with the next id, appended (the oldest trimmed to `retention`).
    pub(super) fn publish(&mut self, event: &Event, retention: Retention) -> Arc<Event> {
        let id = self.next_id();
        let event = Arc::new(Event {
            id: Some(id),
            ..event.clone()
        });
        self.append(&event, retention);
        event
    }

    /// The newest id `topic` has had ([`EventId::ZERO`] for a topic that never had one).
    pub(super) fn last_id(&self, topic: &str) -> EventId {
        self.topics.get(topic).map_or(EventId::ZERO, |kept| {
            kept.entries
                .back()
                .and_then(|e| e.id)
                .unwrap_or(kept.trimmed)
        })
    }

    /// Up to `count` events of `topic` after `after`; with `check`, [`Lost`] when some event
    /// after `after` is no longer kept.
    pub(super) fn read_after(
        &self,
        topic: &str,
        after: EventId,
        count: usize,
        check: bool,
    ) -> Result<Vec<Arc<Event>>, Lost> {
        let Some(kept) = self.topics.get(topic) else {
            return if check && after != EventId::ZERO {
                Err(Lost { reset: true })
            } else {
                Ok(Vec::new())
            };
        };
        if check {
            let reset = after != EventId::ZERO && kept.origin.is_some_and(|origin| after < origin);
            if reset || after < kept.trimmed {
                return Err(Lost { reset });
            }
        }
        let start = kept
            .entries
            .partition_point(|e| e.id.is_none_or(|id| id <= after));
        Ok(kept
            .entries
            .iter()
            .skip(start)
            .take(count)
            .cloned()
            .collect())
    }
    /// The next id: this millisecond's, after every id given so far.
    fn next_id(&mut self) -> EventId {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let id = if millis > self.last.millis {
            EventId { millis, seq: 0 }
        } else {
            EventId {
                millis: self.last.millis,
                seq: self.last.seq + 1,
            }
        };
        self.last = id;
        id
    }

    fn append(&mut self, event: &Arc<Event>, retention: Retention) {
        let Some(id) = event.id else { return };
        let log = self.topics.entry(event.topic.clone()).or_default();
        log.origin.get_or_insert(id);
        log.entries.push_back(Arc::clone(event));
        let oldest = retention.max_age.map(|age| {
            id.millis
                .saturating_sub(u64::try_from(age.as_millis()).unwrap_or(u64::MAX))
        });
        while let Some(first) = log.entries.front() {
            let first_id = first.id.unwrap_or_default();
            let too_many = log.entries.len() > retention.max_events.max(1);
            let too_old = oldest.is_some_and(|oldest| first_id.millis < oldest);
            if !(too_many || too_old) {
                break;
            }
            log.trimmed = first_id;
            log.entries.pop_front();
        }
    }
}
