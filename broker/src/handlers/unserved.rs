//! Messages asking for a feature Saturn does not serve yet.
//!
//! Storing such a message as a plain one would be a wrong result: a request of request-reply
//! waits for a reply Saturn cannot route. Until request-reply lands, the send is refused with
//! MESSAGE_ILLEGAL and a remark naming the feature. MESSAGE_ILLEGAL, not SYSTEM_ERROR: the Java
//! client retries SYSTEM_ERROR on the topic's other brokers, which refuse it too, while
//! MESSAGE_ILLEGAL reaches the application at once.
//!
//! Delayed and timer messages are served (see [`crate::timer`]).

use super::send::Scanned;

/// Why a message for `topic` whose properties' scan found `found` cannot be served; `None` when
/// it can. The scan is the send path's one pass over the properties; this reads its result.
pub fn refusal(_topic: &str, found: &Scanned) -> Option<String> {
    if found.reply_to_client.is_some() {
        return Some(
            "request-reply messages (REPLY_TO_CLIENT) are not served by this broker yet; \
             the request was not stored"
                .to_owned(),
        );
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
    fn plain_delayed_and_timer_messages_pass() {
        assert_eq!(refusal("T", &props(&[("TAGS", "a"), ("KEYS", "k")])), None);
        assert_eq!(refusal("T", &props(&[("DELAY", "3")])), None);
        assert_eq!(refusal("T", &props(&[("TIMER_DELAY_SEC", "5")])), None);
    }

    #[test]
    fn requests_are_refused() {
        let r = refusal(
            "T",
            &props(&[("CORRELATION_ID", "c"), ("REPLY_TO_CLIENT", "id")]),
        );
        assert!(r.unwrap().contains("request-reply"));
    }

    #[test]
    fn the_scan_finds_the_special_properties() {
        let found = scan(&props(&[
            ("TRAN_MSG", "TRUE"),
            ("DELAY", "2"),
            ("TIMER_DELAY_SEC", "5"),
            ("REPLY_TO_CLIENT", "c1"),
        ]));
        assert!(found.tran_msg);
        assert_eq!(found.delay.as_deref(), Some("2"));
        assert_eq!(found.timers[1].as_deref(), Some("5"));
        assert!(found.timers[0].is_none() && found.timers[2].is_none());
        assert_eq!(found.reply_to_client.as_deref(), Some("c1"));
        // The last TRAN_MSG counts, as in property_value.
        let found = scan(&props(&[("TRAN_MSG", "true"), ("TRAN_MSG", "false")]));
        assert!(!found.tran_msg);
        let found = scan(&props(&[("TAGS", "a")]));
        assert!(!found.tran_msg && found.delay.is_none() && found.reply_to_client.is_none());
    }
}
