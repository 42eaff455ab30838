//! RocketMQ's SQL92 message selector (`MessageSelector.bySql`): a parser and an evaluator over
//! message properties, with no I/O.
//!
//! [`Selector::compile`] parses once (per subscription); [`Selector::matches_encoded`] decides
//! a stored message from its encoded properties. The grammar and the semantics are RocketMQ's
//! (its `filter` module), including its corners:
//!
//! * Comparisons: `=`, `<>`, `<`, `<=`, `>`, `>=`; `[NOT] BETWEEN a AND b`; `[NOT] IN ('x', ...)`
//!   (string literals, on a property); `IS [NOT] NULL`; `AND`, `OR`, `NOT`; parentheses; string
//!   (`'it''s'`), integer (int when it fits 32 bits, else long; `10L`), floating-point and
//!   boolean (`TRUE`/`FALSE`) literals; `[NOT] CONTAINS` / `STARTSWITH` / `ENDSWITH 'x'`.
//! * Keywords are case-insensitive, property names are not; `TAGS`, `KEYS` and every user
//!   property are properties of the message.
//! * Three-valued logic: a comparison with a missing property is unknown (NULL), and only TRUE
//!   selects a message; `a <> 'x'` and `NOT (a = 'x')` do not select a message without `a`.
//!   `AND` is FALSE as soon as one side is FALSE, `OR` TRUE as soon as one side is TRUE.
//! * Property values are strings, converted to the literal's type when compared with one: with
//!   an int literal the value must parse as a 32-bit int (`a > 5` never selects `a=5.5` or
//!   `a=5000000000`), with a long literal as a long, with a float literal as a double, with
//!   TRUE/FALSE it is TRUE when it is `true` in any case. A value that does not convert makes the
//!   evaluation fail, and a failed evaluation does not select the message. Two properties
//!   compared with `<`, `>`, ... are both read as doubles.
//! * A property alone where a boolean is needed (`a AND b = 1`) is FALSE when present (a string
//!   is not a boolean) and NULL when missing.
//! * At compile time RocketMQ refuses: ordering a string, boolean or NULL literal (`a > 'x'`),
//!   `= NULL`, a boolean literal equal to a non-boolean literal, BETWEEN with literal bounds in
//!   the wrong order, IN on anything but a property, a float literal that overflows or is below
//!   4.9E-324 (so `0.0`), an integer literal beyond 64 bits.
//!
//! Where Saturn differs: input left over after a complete expression is refused (RocketMQ's
//! parser stops at the first token that cannot continue the expression and ignores the rest, so
//! `a = 1 b = 2` means `a = 1` there); a `--` comment may end the input without a newline;
//! selectors nested deeper than [`MAX_DEPTH`] (or [`MAX_NESTING`] parentheses) are refused so
//! evaluation never exhausts the stack; hexadecimal floating-point property values
//! (`0x1p3`) and non-ASCII digits are not numbers here.

mod eval;
mod lex;
mod parse;

use std::fmt;

use crate::message::properties::iter_pairs;

pub use eval::EvalError;

/// The deepest expression tree a selector may have.
pub const MAX_DEPTH: usize = 256;
/// The most parentheses and prefix operators (`-`, `+`, `NOT`) nested in one another.
pub const MAX_NESTING: usize = 64;

/// A selector that does not compile: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid MessageSelector. {message} (column {column})")]
pub struct SqlError {
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

impl SqlError {
    pub(crate) fn new(column: usize, message: impl Into<String>) -> Self {
        SqlError {
            column,
            message: message.into(),
        }
    }
}

/// A compiled selector.
#[derive(Debug, Clone)]
pub struct Selector {
    root: Node,
    /// The properties the selector reads, each once; nodes refer to them by index.
    names: Vec<String>,
}

impl Selector {
    /// Parses and checks a selector.
    pub fn compile(text: &str) -> Result<Selector, SqlError> {
        let tokens = lex::tokens(text)?;
        let mut parser = parse::Parser::new(tokens);
        let root = parser.selector()?;
        Ok(Selector {
            root,
            names: parser.names,
        })
    }

    /// The property names the selector reads.
    pub fn property_names(&self) -> &[String] {
        &self.names
    }

    /// The selector's value for a message whose properties `get` looks up: `Some(true)`,
    /// `Some(false)`, `None` (unknown), or the evaluation's failure.
    pub fn evaluate<'a>(
        &self,
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Option<bool>, EvalError> {
        let values: Vec<Option<&'a str>> = self.names.iter().map(|n| get(n)).collect();
        eval::truth(eval::eval(&self.root, &values)?)
    }

    /// Whether a message with these encoded properties (`name\u1value\u2...`, the stored form)
    /// is selected: only when the selector is TRUE for it (unknown and failures are not).
    /// One pass over the properties; a repeated name's last value counts.
    pub fn matches_encoded(&self, properties: &str) -> bool {
        let mut values: Vec<Option<&str>> = vec![None; self.names.len()];
        for (name, value) in iter_pairs(properties) {
            if let Some(i) = self.names.iter().position(|n| n == name) {
                values[i] = Some(value);
            }
        }
        matches!(
            eval::eval(&self.root, &values).map(eval::truth),
            Ok(Ok(Some(true)))
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Const {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Double(f64),
    Str(String),
}

impl Const {
    fn describe(&self) -> String {
        match self {
            Const::Null => "NULL".into(),
            Const::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
            Const::Int(i) => i.to_string(),
            Const::Long(l) => l.to_string(),
            Const::Double(d) => d.to_string(),
            Const::Str(s) => format!("'{}'", s.replace('\'', "''")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelOp {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextOp {
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Const(Const),
    /// A property, by index into the selector's names.
    Prop(usize),
    Neg(Box<Node>),
    Not(Box<Node>),
    /// A property where a boolean is needed.
    BoolCast(usize),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cmp(RelOp, Box<Node>, Box<Node>),
    In {
        prop: usize,
        list: Vec<String>,
        not: bool,
    },
    Text {
        op: TextOp,
        not: bool,
        operand: Box<Node>,
        search: String,
    },
}

impl Node {
    /// RocketMQ's BooleanExpression: what may stand where a boolean is needed.
    fn is_boolean(&self) -> bool {
        match self {
            Node::Const(c) => matches!(c, Const::Bool(_) | Const::Null),
            Node::Prop(_) | Node::Neg(_) => false,
            _ => true,
        }
    }

    fn describe(&self) -> String {
        match self {
            Node::Const(c) => c.describe(),
            Node::Prop(_) | Node::BoolCast(_) => "a property".into(),
            Node::Neg(_) => "a negated value".into(),
            _ => "a boolean expression".into(),
        }
    }
}

/// A value during evaluation: literals, property values (always strings) and results.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Double(f64),
    Str(&'a str),
}

impl<'a> Value<'a> {
    fn of(c: &'a Const) -> Value<'a> {
        match c {
            Const::Null => Value::Null,
            Const::Bool(b) => Value::Bool(*b),
            Const::Int(i) => Value::Int(*i),
            Const::Long(l) => Value::Long(*l),
            Const::Double(d) => Value::Double(*d),
            Const::Str(s) => Value::Str(s),
        }
    }
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Long(l) => write!(f, "{l}"),
            Value::Double(d) => write!(f, "{d}"),
            Value::Str(s) => write!(f, "'{s}'"),
        }
    }
}

#[cfg(test)]
mod tests;
