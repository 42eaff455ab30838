//! Messages asking for a feature Saturn does not serve yet.
//!
//! Storing such a message as a plain one would be a wrong result: a request of request-reply
//! waits for a reply Saturn cannot route. Until request-reply lands, the send is refused with
//! MESSAGE_ILLEGAL and a remark naming the feature. MESSAGE_ILLEGAL, not SYSTEM_ERROR: the Java
//! client retries SYSTEM_ERROR on the topic's other brokers, which refuse it too, while
//! MESSAGE_ILLEGAL reaches the application at once.
//!
//! Delayed and timer messages are served (see [`crate::timer`]).

use protocol::message::properties::{self as prop, iter_pairs};

/// Why a message for `topic` with these encoded properties cannot be served; `None` when it can.
pub fn refusal(_topic: &str, properties: &str) -> Option<String> {
    if iter_pairs(properties).any(|(name, _)| name == prop::REPLY_TO_CLIENT) {
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
    use super::refusal;

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
}
