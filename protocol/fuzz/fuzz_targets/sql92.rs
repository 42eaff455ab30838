//! SQL92 selectors: compiling any input never panics; a selector that compiles evaluates
//! without panicking over property sets built from the same input, and `matches_encoded` agrees
//! with `evaluate` (selected exactly when the value is TRUE).
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::sql92::Selector;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The selector is the input up to a NUL; what follows is `name=value` lines of properties.
    let (expr, props) = text.split_once('\0').unwrap_or((&text, ""));
    let Ok(selector) = Selector::compile(expr) else {
        return;
    };
    let mut pairs: Vec<(String, String)> = props
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .filter(|(k, v)| !(k.contains(['\u{1}', '\u{2}']) || v.contains(['\u{1}', '\u{2}'])))
        .collect();
    // Every property the selector reads gets a value from the input, in turn.
    let values: Vec<String> = props.lines().map(str::to_owned).collect();
    for (i, name) in selector.property_names().iter().enumerate() {
        if i % 3 != 2 && !values.is_empty() {
            let v = values[i % values.len()].clone();
            if !v.is_empty() && !v.contains(['\u{1}', '\u{2}']) {
                pairs.push((name.clone(), v));
            }
        }
    }
    let value = selector.evaluate(|n| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    });
    let encoded: String = pairs
        .iter()
        .map(|(k, v)| format!("{k}\u{1}{v}\u{2}"))
        .collect();
    assert_eq!(
        selector.matches_encoded(&encoded),
        value == Ok(Some(true)),
        "{expr:?} over {pairs:?}: {value:?}"
    );
});
