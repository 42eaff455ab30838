//! Table tests of the selector: parse errors, and values over property sets.

use super::{EvalError, Selector};

fn eval(expr: &str, props: &[(&str, &str)]) -> Result<Option<bool>, EvalError> {
    let s = Selector::compile(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    s.evaluate(|name| {
        props
            .iter()
            .rev()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    })
}

fn encoded(props: &[(&str, &str)]) -> String {
    props
        .iter()
        .map(|(k, v)| format!("{k}\u{1}{v}\u{2}"))
        .collect()
}

const T: Option<bool> = Some(true);
const F: Option<bool> = Some(false);
const U: Option<bool> = None;

/// A selector, the properties of a message, and the selector's value for it.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<bool>);

#[test]
fn values_over_properties() {
    let a10 = &[("a", "10"), ("s", "abc"), ("TAGS", "TagA"), ("b", "true")][..];
    let cases: &[Case] = &[
        ("a > 5", a10, T),
        ("a > 10", a10, F),
        ("a >= 10", a10, T),
        ("a < 10.5", a10, T),
        ("a <= 9", a10, F),
        ("a = 10", a10, T),
        ("a <> 10", a10, F),
        ("a = 10L", a10, T),
        ("a = 10.0", a10, T),
        ("10 = a", a10, T),
        ("5 < a", a10, T),
        ("a BETWEEN 1 AND 10", a10, T),
        ("a BETWEEN 11 AND 20", a10, F),
        ("a NOT BETWEEN 11 AND 20", a10, T),
        ("a NOT BETWEEN 1 AND 10", a10, F),
        ("s = 'abc'", a10, T),
        ("s <> 'abc'", a10, F),
        ("s IN ('x', 'abc')", a10, T),
        ("s NOT IN ('x', 'abc')", a10, F),
        ("s NOT IN ('x', 'y')", a10, T),
        ("TAGS = 'TagA'", a10, T),
        ("TAGS IN ('TagB', 'TagC')", a10, F),
        ("s CONTAINS 'b'", a10, T),
        ("s NOT CONTAINS 'b'", a10, F),
        ("s STARTSWITH 'ab'", a10, T),
        ("s ENDSWITH 'bc'", a10, T),
        ("s NOT ENDSWITH 'x'", a10, T),
        ("s CONTAINS ''", a10, F),
        ("missing CONTAINS 'x'", a10, F),
        ("missing NOT CONTAINS 'x'", a10, F),
        ("b = TRUE", a10, T),
        ("b = FALSE", a10, F),
        ("s = FALSE", a10, T),
        ("a IS NOT NULL", a10, T),
        ("a IS NULL", a10, F),
        ("missing IS NULL", a10, T),
        ("missing IS NOT NULL", a10, F),
        ("missing = 'x'", a10, U),
        ("missing <> 'x'", a10, U),
        ("NOT (missing = 'x')", a10, U),
        ("missing > 1", a10, U),
        ("missing IN ('x')", a10, U),
        ("missing NOT IN ('x')", a10, U),
        ("missing = 'x' AND a = 10", a10, U),
        ("missing = 'x' AND a = 11", a10, F),
        ("missing = 'x' OR a = 10", a10, T),
        ("missing = 'x' OR a = 11", a10, U),
        ("(a > 5 AND s = 'abc') OR TAGS = 'none'", a10, T),
        ("a > 5 AND (s = 'x' OR TAGS = 'TagA')", a10, T),
        ("not (a > 5)", a10, F),
        ("a > -5", a10, T),
        ("-a < 0", a10, U),
        ("a > +5", a10, T),
        ("TRUE", a10, T),
        ("FALSE", a10, F),
        ("NULL", a10, U),
        ("s", a10, F),
        ("missing", a10, U),
        ("NOT s", a10, T),
        ("s = 'it''s'", &[("s", "it's")], T),
        ("a > b", &[("a", "2.5"), ("b", "10")], F),
        ("a < b", &[("a", "2.5"), ("b", "10")], T),
        ("a = b", &[("a", "x"), ("b", "x")], T),
        ("a > 5.0", &[("a", "5.5")], T),
        ("a > 5.0", &[("a", " 5.5 ")], T),
        ("a > 5.0", &[("a", "6d")], T),
        ("a > 5.0", &[("a", "NaN")], T),
        ("a > 3000000000", &[("a", "3000000001")], T),
        ("a = 1 = TRUE", &[("a", "1")], T),
        ("1 = TRUE", a10, F),
        ("a = 1 -- comment", &[("a", "1")], T),
        ("a /* c */ = 1", &[("a", "1")], T),
        ("a = 1 AND b = 2", &[("a", "1"), ("b", "2"), ("a", "3")], F),
        ("a in ('1') and B = 'x'", &[("a", "1"), ("B", "x")], T),
    ];
    for (expr, props, want) in cases {
        assert_eq!(eval(expr, props), Ok(*want), "{expr} over {props:?}");
        let s = Selector::compile(expr).unwrap();
        assert_eq!(
            s.matches_encoded(&encoded(props)),
            *want == T,
            "{expr} encoded"
        );
    }
}

#[test]
fn conversions_that_fail_do_not_select() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("a > 5", &[("a", "5.5")]),
        ("a > 5", &[("a", "5000000000")]),
        ("a = 5", &[("a", "abc")]),
        ("a > 5.0", &[("a", "abc")]),
        ("a > b", &[("a", "x"), ("b", "1")]),
        ("a > 5L", &[("a", "")]),
        ("TRUE = a", &[("a", "true")]),
        ("NOT a = 'x'", &[("a", "y")]),
    ];
    for (expr, props) in cases {
        assert!(eval(expr, props).is_err(), "{expr} over {props:?}");
        let s = Selector::compile(expr).unwrap();
        assert!(!s.matches_encoded(&encoded(props)), "{expr}");
    }
    // A failure on the right of AND is not reached when the left is FALSE.
    assert_eq!(eval("a = 2 AND b > 1", &[("a", "1"), ("b", "x")]), Ok(F));
    assert!(eval("a = 1 AND b > 1", &[("a", "1"), ("b", "x")]).is_err());
}

#[test]
fn bad_selectors_are_refused_with_a_reason() {
    let cases = [
        ("", "unexpected end of input"),
        ("a >", "unexpected end of input"),
        ("a > 'x'", "cannot be compared"),
        ("a > TRUE", "cannot be compared"),
        ("a > NULL", "cannot be compared"),
        ("(a > 1) > 2", "cannot be compared"),
        ("a = NULL", "'NULL' cannot be compared"),
        ("TRUE = 1", "cannot be compared with"),
        ("a BETWEEN 10 AND 1", "Illegal values of between"),
        ("a BETWEEN 'a' AND 'b'", "cannot be compared"),
        ("a BETWEEN 1", "expected AND"),
        ("(a) = 1 IN ('x')", "Expected a property for In"),
        ("1 IN ('x')", "Expected a property for In"),
        ("a IN (1)", "expected a string literal"),
        ("a IN ()", "expected a string literal"),
        ("a IN ('x'", "expected , or )"),
        ("a = 1 b = 2", "unexpected 'b', expected AND, OR or the end"),
        ("a = 'x", "unterminated string literal"),
        ("a = 1 /* x", "unterminated comment"),
        ("a == 1", "expected a literal"),
        ("a != 1", "unexpected character '!'"),
        ("a.b = 1", "unexpected character '.'"),
        ("5", "will not result in a boolean"),
        ("'x'", "will not result in a boolean"),
        ("-a", "will not result in a boolean"),
        ("NOT 5", "will not result in a boolean"),
        ("a AND 1", "will not result in a boolean"),
        ("a > 0.0", "less than 4.9E-324"),
        ("a > 1e400", "greater than"),
        ("a > 9223372036854775808", "out of the range"),
        ("NOT a > 5", "cannot be compared"),
        ("a IS 1", "expected NULL or NOT NULL"),
        ("a IS NOT 1", "expected NULL"),
        ("05 = a", "expected AND, OR"),
        ("(a = 1", "expected )"),
        ("a = 1)", "expected AND, OR"),
    ];
    for (expr, reason) in cases {
        match Selector::compile(expr) {
            Ok(s) => panic!("{expr:?} compiled: {s:?}"),
            Err(e) => {
                let text = e.to_string();
                assert!(
                    text.starts_with("Invalid MessageSelector. ") && text.contains(reason),
                    "{expr:?}: {text}"
                );
            }
        }
    }
}

#[test]
fn columns_point_at_the_problem() {
    let e = Selector::compile("a = 1 AND b >> 2").unwrap_err();
    assert_eq!(e.column, 14, "{e}");
    let e = Selector::compile("x = 'é' AND ?").unwrap_err();
    assert_eq!(e.column, 13, "{e}");
}

#[test]
fn keywords_ignore_case_and_names_do_not() {
    assert_eq!(eval("a Between 1 aNd 3", &[("a", "2")]), Ok(T));
    assert_eq!(eval("A = 1", &[("a", "1")]), Ok(U));
    assert_eq!(eval("$x_1 = 'y'", &[("$x_1", "y")]), Ok(T));
    assert_eq!(eval("andy = 1", &[("andy", "1")]), Ok(T));
    let s = Selector::compile("a = 1 OR b = 2 OR a = 3").unwrap();
    assert_eq!(s.property_names(), ["a", "b"]);
}

#[test]
fn nesting_is_bounded() {
    let deep = format!("{}a = 1{}", "(".repeat(200), ")".repeat(200));
    assert!(Selector::compile(&deep)
        .unwrap_err()
        .message
        .contains("nested too deeply"));
    let nots = format!("{}a", "NOT ".repeat(100));
    assert!(Selector::compile(&nots).is_err());
    let chain = vec!["a = '1'"; 1000].join(" OR ");
    assert!(Selector::compile(&chain)
        .unwrap_err()
        .message
        .contains("nested too deeply"));
    let ok = vec!["a = '1'"; 100].join(" OR ");
    assert_eq!(eval(&ok, &[("a", "1")]), Ok(T));
    let ok = format!("{}a = 1{}", "(".repeat(60), ")".repeat(60));
    assert_eq!(eval(&ok, &[("a", "1")]), Ok(T));
}

#[test]
fn java_doubles() {
    use super::eval::java_double;
    for (s, v) in [
        ("1", 1.0),
        ("1.", 1.0),
        (".5", 0.5),
        ("1.e2", 100.0),
        ("-2.5E-1", -0.25),
        ("+3f", 3.0),
        ("\t4D ", 4.0),
        ("-Infinity", f64::NEG_INFINITY),
    ] {
        assert_eq!(java_double(s), Some(v), "{s}");
    }
    assert!(java_double("NaN").unwrap().is_nan());
    for s in [
        "", ".", "e5", "1e", "inf", "nan", "0x1p3", "1,5", "1.5.2", "--1", "1f2",
    ] {
        assert_eq!(java_double(s), None, "{s}");
    }
}
