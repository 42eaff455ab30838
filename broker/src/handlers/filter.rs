//! SQL92 subscriptions (`MessageSelector.bySql`): compiled once per expression on each shard,
//! evaluated on the stored properties of each record a pull reads.
//!
//! CHECK_CLIENT_CONFIG (the Java consumer's `start()`) and PULL_MESSAGE refuse an expression
//! that does not compile with SUBSCRIPTION_PARSE_FAILED and the parser's reason, and refuse SQL92
//! altogether with RocketMQ's SYSTEM_ERROR remark when `enablePropertyFilter` is off.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use bytes::Bytes;
use protocol::body::SubscriptionData;
use protocol::message::RecordView;
use protocol::sql92::{Selector, SqlError};
use protocol::ResponseCode;

use super::HandlerError;

/// Compiled expressions kept per shard; the cache starts over when it reaches this many.
const CACHE_MAX: usize = 1024;

thread_local! {
    /// Each shard runs on a thread of its own: the cache is the shard's.
    static CACHE: RefCell<HashMap<String, Result<Rc<Selector>, SqlError>>> =
        RefCell::new(HashMap::new());
}

/// The selector of a subscription: `None` for a tag subscription, the compiled selector for
/// SQL92, a refusal (code and remark) when the broker does not serve it or it does not compile.
pub fn selector(
    sub: &SubscriptionData,
    property_filter_enabled: bool,
) -> Result<Option<Rc<Selector>>, HandlerError> {
    if sub.is_tag_type() {
        return Ok(None);
    }
    let kind = sub.expression_type.as_deref().unwrap_or_default();
    if !property_filter_enabled {
        return Err(HandlerError::Refused(
            ResponseCode::SYSTEM_ERROR,
            format!("The broker does not support consumer to filter message by {kind}"),
        ));
    }
    if !kind.eq_ignore_ascii_case("SQL92") {
        return Err(HandlerError::Refused(
            ResponseCode::SUBSCRIPTION_PARSE_FAILED,
            format!("expression type {kind} is not supported; use TAG or SQL92"),
        ));
    }
    compile(&sub.sub_string)
        .map(Some)
        .map_err(|e| HandlerError::Refused(ResponseCode::SUBSCRIPTION_PARSE_FAILED, e.to_string()))
}

/// The selector for `text`, compiled at most once per shard while it stays cached.
pub fn compile(text: &str) -> Result<Rc<Selector>, SqlError> {
    CACHE.with(|cache| {
        if let Some(found) = cache.borrow().get(text) {
            return found.clone();
        }
        let compiled = Selector::compile(text).map(Rc::new);
        let mut cache = cache.borrow_mut();
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(text.to_owned(), compiled.clone());
        compiled
    })
}

/// Keeps the records the selector selects. A record that does not decode is kept (the client
/// reports it as it would any damaged record) rather than silently dropped.
pub fn retain_selected(selector: &Selector, records: &mut Vec<Bytes>) {
    records.retain(|record| match RecordView::parse(record) {
        Ok((view, _)) => selector.matches_encoded(view.properties),
        Err(_) => true,
    });
}
