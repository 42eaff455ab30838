//! Property tests of the SQL92 selector against a reference evaluator of SQL's three-valued
//! logic, over random expressions and random integer properties (some missing).

use proptest::prelude::*;
use protocol::sql92::Selector;

#[derive(Debug, Clone)]
enum E {
    Cmp(usize, &'static str, i32),
    IsNull(usize, bool),
    Between(usize, bool, i32, i32),
    In(usize, bool, Vec<i32>),
    Lit(bool),
    Not(Box<E>),
    And(Box<E>, Box<E>),
    Or(Box<E>, Box<E>),
}

const NAMES: [&str; 3] = ["a", "b", "c"];
const OPS: [&str; 6] = ["=", "<>", "<", "<=", ">", ">="];

fn leaf() -> impl Strategy<Value = E> {
    prop_oneof![
        (0..3usize, 0..6usize, -4..4i32).prop_map(|(p, o, v)| E::Cmp(p, OPS[o], v)),
        (0..3usize, any::<bool>()).prop_map(|(p, n)| E::IsNull(p, n)),
        (0..3usize, any::<bool>(), -4..4i32, 0..4i32).prop_map(|(p, n, lo, w)| E::Between(
            p,
            n,
            lo,
            lo + w
        )),
        (
            0..3usize,
            any::<bool>(),
            prop::collection::vec(-4..4i32, 1..4)
        )
            .prop_map(|(p, n, l)| E::In(p, n, l)),
        any::<bool>().prop_map(E::Lit),
    ]
}

fn expr() -> impl Strategy<Value = E> {
    leaf().prop_recursive(5, 40, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| E::Not(Box::new(e))),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| E::And(Box::new(l), Box::new(r))),
            (inner.clone(), inner).prop_map(|(l, r)| E::Or(Box::new(l), Box::new(r))),
        ]
    })
}

fn text(e: &E) -> String {
    match e {
        E::Cmp(p, op, v) => format!("{} {op} {v}", NAMES[*p]),
        E::IsNull(p, not) => format!("{} IS {}NULL", NAMES[*p], if *not { "NOT " } else { "" }),
        E::Between(p, not, lo, hi) => format!(
            "{} {}BETWEEN {lo} AND {hi}",
            NAMES[*p],
            if *not { "NOT " } else { "" }
        ),
        E::In(p, not, list) => {
            let items: Vec<String> = list.iter().map(|v| format!("'{v}'")).collect();
            let not = if *not { "NOT " } else { "" };
            format!("{} {not}IN ({})", NAMES[*p], items.join(", "))
        }
        E::Lit(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        E::Not(e) => format!("NOT ({})", text(e)),
        E::And(l, r) => format!("({}) AND ({})", text(l), text(r)),
        E::Or(l, r) => format!("({}) OR ({})", text(l), text(r)),
    }
}

/// SQL's three-valued logic over integer properties; `None` is unknown.
fn reference(e: &E, props: &[Option<i32>; 3]) -> Option<bool> {
    match e {
        E::Cmp(p, op, v) => props[*p].map(|x| match *op {
            "=" => x == *v,
            "<>" => x != *v,
            "<" => x < *v,
            "<=" => x <= *v,
            ">" => x > *v,
            _ => x >= *v,
        }),
        E::IsNull(p, not) => Some(props[*p].is_none() != *not),
        E::Between(p, not, lo, hi) => props[*p].map(|x| (*lo <= x && x <= *hi) != *not),
        E::In(p, not, list) => props[*p].map(|x| list.contains(&x) != *not),
        E::Lit(b) => Some(*b),
        E::Not(e) => reference(e, props).map(|b| !b),
        E::And(l, r) => match (reference(l, props), reference(r, props)) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        E::Or(l, r) => match (reference(l, props), reference(r, props)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
    }
}

proptest! {
    #[test]
    fn agrees_with_three_valued_logic(
        e in expr(),
        props in prop::array::uniform3(prop::option::of(-5..5i32)),
    ) {
        let src = text(&e);
        let selector = Selector::compile(&src).map_err(|err| TestCaseError::fail(format!("{src}: {err}")))?;
        let values: Vec<Option<String>> = props.iter().map(|v| v.map(|x| x.to_string())).collect();
        let got = selector.evaluate(|name| {
            NAMES.iter().position(|n| *n == name).and_then(|i| values[i].as_deref())
        });
        prop_assert_eq!(got.clone(), Ok(reference(&e, &props)), "{}", src);
        let encoded: String = NAMES
            .iter()
            .zip(&values)
            .filter_map(|(n, v)| v.as_ref().map(|v| format!("{n}\u{1}{v}\u{2}")))
            .collect();
        prop_assert_eq!(selector.matches_encoded(&encoded), got == Ok(Some(true)));
    }

    #[test]
    fn any_input_compiles_or_is_refused_without_panicking(s in "\\PC{0,80}") {
        let _ = Selector::compile(&s);
    }

    #[test]
    fn token_soup_compiles_or_is_refused_without_panicking(
        words in prop::collection::vec(prop::sample::select(vec![
            "a", "b", "TAGS", "NOT", "AND", "OR", "BETWEEN", "IN", "IS", "NULL", "TRUE", "FALSE",
            "CONTAINS", "STARTSWITH", "ENDSWITH", "=", "<>", "<", "<=", ">", ">=", "(", ")", ",",
            "+", "-", "1", "2.5", "10L", "'x'", "''", "0", "1e3", "--c\n", "/*c*/",
        ]), 0..24),
        value in "[a-z0-9.]{0,6}",
    ) {
        let src = words.join(" ");
        if let Ok(selector) = Selector::compile(&src) {
            let got = selector.evaluate(|_| Some(value.as_str()));
            let encoded = format!("a\u{1}{value}\u{2}b\u{1}{value}\u{2}TAGS\u{1}{value}\u{2}");
            if !value.is_empty() {
                prop_assert_eq!(selector.matches_encoded(&encoded), got == Ok(Some(true)), "{}", src);
            }
        }
    }
}
