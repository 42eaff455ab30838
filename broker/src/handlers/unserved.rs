//! Messages asking for a feature Saturn does not serve yet.
//!
//! Storing such a message as a plain one would deliver it at once, which is a wrong result: a
//! delayed or timer message must not be consumed before its time. Until scheduled delivery
//! (issue 13) lands, the send is refused with MESSAGE_ILLEGAL and a remark naming the
//! feature. MESSAGE_ILLEGAL, not SYSTEM_ERROR (RocketMQ's answer when its timer wheel is off):
//! the Java client retries SYSTEM_ERROR on the topic's other brokers, which refuse it too, while
//! MESSAGE_ILLEGAL reaches the application at once.
//!
//! Retries are the exception: a consumer whose CONSUMER_SEND_MSG_BACK failed re-sends the
//! message to `%RETRY%<group>` with a DELAY level; it is stored and redelivered without delay.

use super::send::{Scanned, TIMER_PROPERTIES};
use crate::metadata::RETRY_PREFIX;

/// Why a message for `topic` whose properties' scan found `found` cannot be served; `None` when
/// it can. The scan is the send path's one pass over the properties; this reads its result.
pub fn refusal(topic: &str, found: &Scanned) -> Option<String> {
    if let Some(level) = &found.delay {
        let delayed = level.trim().parse::<i64>().map_or(true, |l| l > 0);
        if delayed && !topic.starts_with(RETRY_PREFIX) {
            return Some(format!(
                "delayed delivery (DELAY level {level}) is not served by this broker yet; \
                 the message was not stored"
            ));
        }
    }
    if let Some((name, value)) = TIMER_PROPERTIES
        .iter()
        .zip(&found.timers)
        .find_map(|(name, value)| Some((name, value.as_ref()?)))
    {
        return Some(format!(
            "timer messages ({name}={value}) are not served by this broker yet; \
             the message was not stored"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::send::scan;

    /// The refusal for a message with these properties, read through the send path's scan.
    fn refusal(topic: &str, encoded: &str) -> Option<String> {
        super::refusal(topic, &scan(encoded))
    }

    fn props(pairs: &[(&str, &str)]) -> String {
        pairs
            .iter()
            .map(|(k, v)| format!("{k}\u{1}{v}\u{2}"))
            .collect()
    }

    #[test]
    fn plain_messages_and_retries_pass() {
        assert_eq!(refusal("T", &props(&[("TAGS", "a"), ("KEYS", "k")])), None);
        assert_eq!(refusal("T", &props(&[("DELAY", "0")])), None);
        assert_eq!(refusal("%RETRY%G", &props(&[("DELAY", "4")])), None);
        // Requests of request-reply are served (handlers::reply).
        let request = props(&[("CORRELATION_ID", "c"), ("REPLY_TO_CLIENT", "id")]);
        assert_eq!(refusal("T", &request), None);
    }

    #[test]
    fn delay_and_timer_are_refused() {
        let r = refusal("T", &props(&[("DELAY", "3")])).unwrap();
        assert!(r.contains("delayed delivery (DELAY level 3)"), "{r}");
        let r = refusal("T", &props(&[("DELAY", "x")])).unwrap();
        assert!(r.contains("delayed"), "{r}");
        for name in ["TIMER_DELIVER_MS", "TIMER_DELAY_SEC", "TIMER_DELAY_MS"] {
            let r = refusal("T", &props(&[(name, "5")])).unwrap();
            assert!(r.contains("timer messages") && r.contains(name), "{r}");
        }
    }

    #[test]
    fn the_last_occurrence_counts_and_delay_comes_first() {
        // A later DELAY=0 cancels an earlier level, as property_value reads it.
        let p = props(&[("DELAY", "3"), ("TAGS", "a"), ("DELAY", "0")]);
        assert_eq!(refusal("T", &p), None);
        let p = props(&[
            ("TIMER_DELAY_MS", "1"),
            ("DELAY", "2"),
            ("TIMER_DELIVER_MS", "9"),
        ]);
        assert!(refusal("T", &p).unwrap().contains("DELAY level 2"));
        let p = props(&[
            ("TIMER_DELAY_MS", "1"),
            ("TIMER_DELIVER_MS", "9"),
            ("TIMER_DELIVER_MS", "7"),
        ]);
        assert!(refusal("T", &p).unwrap().contains("TIMER_DELIVER_MS=7"));
        let p = props(&[("REPLY_TO_CLIENT", "c"), ("TIMER_DELAY_SEC", "5")]);
        assert!(refusal("T", &p).unwrap().contains("TIMER_DELAY_SEC=5"));
    }

    #[test]
    fn the_scan_finds_the_special_properties() {
        let found = scan(&props(&[
            ("TRAN_MSG", "TRUE"),
            ("DELAY", "2"),
            ("TIMER_DELAY_SEC", "5"),
        ]));
        assert!(found.tran_msg);
        assert_eq!(found.delay.as_deref(), Some("2"));
        assert_eq!(found.timers[1].as_deref(), Some("5"));
        assert!(found.timers[0].is_none() && found.timers[2].is_none());
        // The last TRAN_MSG counts, as in property_value.
        let found = scan(&props(&[("TRAN_MSG", "true"), ("TRAN_MSG", "false")]));
        assert!(!found.tran_msg);
        let found = scan(&props(&[("TAGS", "a")]));
        assert!(!found.tran_msg && found.delay.is_none());
    }
}
