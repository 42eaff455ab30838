//! Evaluation with RocketMQ's three-valued logic and type conversions.

use std::cmp::Ordering;

use super::{Node, RelOp, TextOp, Value};

/// Why an evaluation failed (the message is then not selected).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("{value} is not a {target}")]
    NotANumber { value: String, target: &'static str },
    #[error("a boolean cannot be compared with the string {0}")]
    BooleanWithString(String),
    #[error("a boolean was needed, the value is {0}")]
    NotABoolean(String),
}

type R<'a> = Result<Value<'a>, EvalError>;

/// A boolean expression's outcome: TRUE, FALSE, or unknown.
pub(crate) fn truth(v: Value<'_>) -> Result<Option<bool>, EvalError> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b)),
        other => Err(EvalError::NotABoolean(other.to_string())),
    }
}

pub(crate) fn eval<'a>(node: &'a Node, props: &[Option<&'a str>]) -> R<'a> {
    Ok(match node {
        Node::Const(c) => Value::of(c),
        Node::Prop(i) => props[*i].map_or(Value::Null, Value::Str),
        Node::BoolCast(i) => props[*i].map_or(Value::Null, |_| Value::Bool(false)),
        Node::Neg(inner) => negate(eval(inner, props)?),
        Node::Not(inner) => match truth(eval(inner, props)?)? {
            None => Value::Null,
            Some(b) => Value::Bool(!b),
        },
        Node::And(l, r) => logic(l, r, props, false)?,
        Node::Or(l, r) => logic(l, r, props, true)?,
        Node::Cmp(RelOp::Eq, l, r) => equal(eval(l, props)?, eval(r, props)?)?,
        Node::Cmp(op, l, r) => relation(*op, l, r, props)?,
        Node::In { prop, list, not } => match props[*prop] {
            None => Value::Null,
            Some(v) => Value::Bool(list.iter().any(|x| x == v) ^ not),
        },
        Node::Text {
            op,
            not,
            operand,
            search,
        } => text(*op, *not, operand, search, props)?,
    })
}

fn negate(v: Value<'_>) -> Value<'_> {
    match v {
        Value::Int(i) => Value::Int(i.wrapping_neg()),
        Value::Long(l) => Value::Long(l.wrapping_neg()),
        Value::Double(d) => Value::Double(-d),
        _ => Value::Null,
    }
}

/// AND (`decisive == false`) and OR (`decisive == true`): a side equal to `decisive` decides,
/// otherwise an unknown side makes the result unknown.
fn logic<'a>(l: &'a Node, r: &'a Node, props: &[Option<&'a str>], decisive: bool) -> R<'a> {
    let lv = truth(eval(l, props)?)?;
    if lv == Some(decisive) {
        return Ok(Value::Bool(decisive));
    }
    let rv = truth(eval(r, props)?)?;
    if rv == Some(decisive) {
        return Ok(Value::Bool(decisive));
    }
    if lv.is_none() || rv.is_none() {
        return Ok(Value::Null);
    }
    Ok(Value::Bool(!decisive))
}

fn equal<'a>(l: Value<'a>, r: Value<'a>) -> R<'a> {
    Ok(match (l, r) {
        (Value::Null, Value::Null) => Value::Bool(true),
        (Value::Null, _) => Value::Null,
        (_, Value::Null) => Value::Bool(false),
        (l, r) => Value::Bool(compare(l, r)?.is_eq()),
    })
}

fn relation<'a>(op: RelOp, l: &'a Node, r: &'a Node, props: &[Option<&'a str>]) -> R<'a> {
    let lv = eval(l, props)?;
    if lv == Value::Null {
        return Ok(Value::Null);
    }
    let rv = eval(r, props)?;
    if rv == Value::Null {
        return Ok(Value::Null);
    }
    let ordering = match (lv, rv) {
        (Value::Str(a), Value::Str(b)) => java_double_cmp(to_double(a)?, to_double(b)?),
        (a, b) => compare(a, b)?,
    };
    Ok(Value::Bool(match op {
        RelOp::Gt => ordering.is_gt(),
        RelOp::Ge => ordering.is_ge(),
        RelOp::Lt => ordering.is_lt(),
        RelOp::Le => ordering.is_le(),
        RelOp::Eq => ordering.is_eq(),
    }))
}

fn text<'a>(
    op: TextOp,
    not: bool,
    operand: &'a Node,
    search: &str,
    props: &[Option<&'a str>],
) -> R<'a> {
    if search.is_empty() {
        return Ok(Value::Bool(false));
    }
    let Value::Str(s) = eval(operand, props)? else {
        return Ok(Value::Bool(false));
    };
    let found = match op {
        TextOp::Contains => s.contains(search),
        TextOp::StartsWith => s.starts_with(search),
        TextOp::EndsWith => s.ends_with(search),
    };
    Ok(Value::Bool(found ^ not))
}

/// RocketMQ's comparison of two non-null values of possibly different types: numbers widen
/// (int → long → double), a string converts to the other side's type (failing when it does not
/// parse), and values that cannot be compared order "less" (-1 in Java).
pub(crate) fn compare(l: Value<'_>, r: Value<'_>) -> Result<Ordering, EvalError> {
    use Value as V;
    let less = Ordering::Less;
    Ok(match (l, r) {
        (V::Bool(a), V::Bool(b)) => a.cmp(&b),
        (V::Bool(_), V::Str(s)) => return Err(EvalError::BooleanWithString(s.to_owned())),
        (V::Int(a), V::Int(b)) => a.cmp(&b),
        (V::Int(a), V::Long(b)) => i64::from(a).cmp(&b),
        (V::Int(a), V::Double(b)) => java_double_cmp(f64::from(a), b),
        (V::Int(a), V::Str(s)) => a.cmp(&to_int(s)?),
        (V::Long(a), V::Int(b)) => a.cmp(&i64::from(b)),
        (V::Long(a), V::Long(b)) => a.cmp(&b),
        (V::Long(a), V::Double(b)) => java_double_cmp(a as f64, b),
        (V::Long(a), V::Str(s)) => a.cmp(&to_long(s)?),
        (V::Double(a), V::Int(b)) => java_double_cmp(a, f64::from(b)),
        (V::Double(a), V::Long(b)) => java_double_cmp(a, b as f64),
        (V::Double(a), V::Double(b)) => java_double_cmp(a, b),
        (V::Double(a), V::Str(s)) => java_double_cmp(a, to_double(s)?),
        (V::Str(s), V::Bool(b)) => s.eq_ignore_ascii_case("true").cmp(&b),
        (V::Str(s), V::Int(b)) => to_int(s)?.cmp(&b),
        (V::Str(s), V::Long(b)) => to_long(s)?.cmp(&b),
        (V::Str(s), V::Double(b)) => java_double_cmp(to_double(s)?, b),
        (V::Str(a), V::Str(b)) => java_string_cmp(a, b),
        _ => less,
    })
}

fn not_a(value: &str, target: &'static str) -> EvalError {
    EvalError::NotANumber {
        value: value.to_owned(),
        target,
    }
}

fn to_int(s: &str) -> Result<i32, EvalError> {
    s.parse().map_err(|_| not_a(s, "32-bit int"))
}

fn to_long(s: &str) -> Result<i64, EvalError> {
    s.parse().map_err(|_| not_a(s, "64-bit long"))
}

fn to_double(s: &str) -> Result<f64, EvalError> {
    java_double(s).ok_or_else(|| not_a(s, "double"))
}

/// Java's `Double.compareTo`: -0.0 below 0.0, NaN above everything and equal to itself.
pub(crate) fn java_double_cmp(a: f64, b: f64) -> Ordering {
    if a < b {
        return Ordering::Less;
    }
    if a > b {
        return Ordering::Greater;
    }
    let bits = |d: f64| {
        if d.is_nan() {
            0x7ff8_0000_0000_0000_i64
        } else {
            d.to_bits() as i64
        }
    };
    bits(a).cmp(&bits(b))
}

/// Java's `String.compareTo` (UTF-16 code units).
fn java_string_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Java's `Double.valueOf` for decimal forms: surrounding characters up to U+0020 trimmed, an
/// optional sign, `NaN`, `Infinity`, or digits with an optional point and exponent, and an
/// optional `f`/`F`/`d`/`D` suffix. Hexadecimal forms are not read.
pub(crate) fn java_double(s: &str) -> Option<f64> {
    let t = s.trim_matches(|c: char| c <= ' ');
    let (negative, body) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let magnitude = match body {
        "NaN" => f64::NAN,
        "Infinity" => f64::INFINITY,
        _ => decimal_magnitude(body)?,
    };
    Some(if negative { -magnitude } else { magnitude })
}

fn decimal_magnitude(body: &str) -> Option<f64> {
    let body = body.strip_suffix(['f', 'F', 'd', 'D']).unwrap_or(body);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    let exp = match exponent {
        None => "0",
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !all_digits(digits) {
                return None;
            }
            e
        }
    };
    let int = if int.is_empty() { "0" } else { int };
    let frac = if frac.is_empty() { "0" } else { frac };
    format!("{int}.{frac}e{exp}").parse().ok()
}
