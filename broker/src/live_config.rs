//! The broker settings UPDATE_BROKER_CONFIG may change while a shard runs. Each shard is a
//! broker to mqadmin, so each holds its own copy (`updateBrokerConfig -c` reaches every shard,
//! `-b` one). Changes last until the process stops; the startup configuration is not rewritten.
//! Every other key is refused with a remark naming the keys that can change.

use std::cell::Cell;

use crate::config::BrokerConfig;

/// Keys that can change at run time, as RocketMQ names them.
pub const LIVE_KEYS: [&str; 2] = ["maxMessageSize", "autoCreateSubscriptionGroup"];

/// Largest maxMessageSize accepted (RocketMQ's frame limit is 16 MiB; Saturn's send path
/// refuses bodies over it before they reach the store).
pub const MAX_MESSAGE_SIZE_LIMIT: usize = 16 << 20;

#[derive(Debug)]
pub struct LiveConfig {
    pub max_message_size: Cell<usize>,
    pub auto_create_subscription_group: Cell<bool>,
}

impl LiveConfig {
    pub fn new(config: &BrokerConfig) -> Self {
        Self {
            max_message_size: Cell::new(config.max_message_size),
            auto_create_subscription_group: Cell::new(config.auto_create_subscription_group),
        }
    }

    /// Checks every `(key, value)` first, then applies them all: either all change or none.
    pub fn update(&self, pairs: &[(String, String)]) -> Result<(), String> {
        let mut size = None;
        let mut auto_group = None;
        for (k, v) in pairs {
            match k.as_str() {
                "maxMessageSize" => match v.trim().parse::<usize>() {
                    Ok(n) if n > 0 && n <= MAX_MESSAGE_SIZE_LIMIT => size = Some(n),
                    _ => {
                        return Err(format!(
                            "maxMessageSize must be a number of bytes from 1 to {MAX_MESSAGE_SIZE_LIMIT}, not {v:?}"
                        ))
                    }
                },
                "autoCreateSubscriptionGroup" => match v.trim() {
                    "true" => auto_group = Some(true),
                    "false" => auto_group = Some(false),
                    _ => return Err(format!("autoCreateSubscriptionGroup must be true or false, not {v:?}")),
                },
                other => {
                    return Err(format!(
                        "the broker config key <{other}> cannot change while Saturn runs; keys that can: {}",
                        LIVE_KEYS.join(", ")
                    ))
                }
            }
        }
        if pairs.is_empty() {
            return Err("no key=value in the request body".into());
        }
        if let Some(n) = size {
            self.max_message_size.set(n);
        }
        if let Some(b) = auto_group {
            self.auto_create_subscription_group.set(b);
        }
        Ok(())
    }
}
