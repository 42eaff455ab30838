//! Recursive descent over RocketMQ's selector grammar, with its compile-time checks.
//!
//! ```text
//! selector   := or EOF
//! or         := and (OR and)*
//! and        := equality (AND equality)*
//! equality   := comparison ( '=' comparison | '<>' comparison | IS NULL | IS NOT NULL )*
//! comparison := unary ( ('>' | '>=' | '<' | '<=') unary
//!                     | [NOT] (CONTAINS | STARTSWITH | ENDSWITH) string
//!                     | [NOT] BETWEEN unary AND unary
//!                     | [NOT] IN '(' string (',' string)* ')' )*
//! unary      := '+' unary | '-' unary | NOT unary | primary
//! primary    := literal | identifier | '(' or ')'
//! ```
//!
//! NOT binds tighter than any comparison, as in RocketMQ: `NOT a = 'x'` is `(NOT a) = 'x'`.

use super::eval::compare;
use super::lex::{Tok, Token};
use super::{Const, Node, RelOp, SqlError, TextOp, Value, MAX_DEPTH, MAX_NESTING};

/// A node and the depth of the tree under it (evaluation recurses that deep).
type Parsed = (Node, usize);

pub(crate) struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    nesting: usize,
    pub names: Vec<String>,
}

type R = Result<Parsed, SqlError>;

impl Parser {
    pub fn new(tokens: Vec<Token>) -> Self {
        Parser {
            tokens,
            pos: 0,
            nesting: 0,
            names: Vec::new(),
        }
    }

    fn peek(&self) -> &Tok {
        &self.tokens[self.pos].tok
    }

    fn peek2(&self) -> &Tok {
        let i = (self.pos + 1).min(self.tokens.len() - 1);
        &self.tokens[i].tok
    }

    fn column(&self) -> usize {
        self.tokens[self.pos].column
    }

    fn bump(&mut self) -> Tok {
        let tok = self.tokens[self.pos].tok.clone();
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        tok
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, SqlError> {
        Err(SqlError::new(self.column(), message))
    }

    fn unexpected<T>(&self, expected: &str) -> Result<T, SqlError> {
        self.error(format!(
            "unexpected {}, expected {expected}",
            self.peek().describe()
        ))
    }

    fn expect(&mut self, tok: Tok, expected: &str) -> Result<(), SqlError> {
        if *self.peek() != tok {
            return self.unexpected(expected);
        }
        self.bump();
        Ok(())
    }

    /// The whole selector: a boolean expression and nothing after it.
    pub fn selector(&mut self) -> Result<Node, SqlError> {
        let column = self.column();
        let parsed = self.or()?;
        if *self.peek() != Tok::Eof {
            return self.unexpected("AND, OR or the end");
        }
        Ok(as_boolean(parsed, column)?.0)
    }

    fn combine(&self, node: Node, depth: usize) -> R {
        if depth > MAX_DEPTH {
            return self.error(format!(
                "expression nested too deeply (more than {MAX_DEPTH} levels)"
            ));
        }
        Ok((node, depth))
    }

    fn or(&mut self) -> R {
        let column = self.column();
        let mut left = self.and()?;
        while *self.peek() == Tok::Or {
            self.bump();
            let right_column = self.column();
            let right = as_boolean(self.and()?, right_column)?;
            let l = as_boolean(left, column)?;
            let depth = l.1.max(right.1) + 1;
            left = self.combine(Node::Or(Box::new(l.0), Box::new(right.0)), depth)?;
        }
        Ok(left)
    }

    fn and(&mut self) -> R {
        let column = self.column();
        let mut left = self.equality()?;
        while *self.peek() == Tok::And {
            self.bump();
            let right_column = self.column();
            let right = as_boolean(self.equality()?, right_column)?;
            let l = as_boolean(left, column)?;
            let depth = l.1.max(right.1) + 1;
            left = self.combine(Node::And(Box::new(l.0), Box::new(right.0)), depth)?;
        }
        Ok(left)
    }

    fn equality(&mut self) -> R {
        let mut left = self.comparison()?;
        loop {
            let column = self.column();
            left = match self.peek() {
                Tok::Eq | Tok::Ne => {
                    let negate = self.bump() == Tok::Ne;
                    let right = self.comparison()?;
                    let (eq, depth) = equal(left, right, column)?;
                    let eq = self.combine(eq, depth)?;
                    if negate {
                        self.combine(Node::Not(Box::new(eq.0)), eq.1 + 1)?
                    } else {
                        eq
                    }
                }
                Tok::Is => self.is_null(left)?,
                _ => return Ok(left),
            };
        }
    }

    /// `IS NULL` / `IS NOT NULL` after `left`.
    fn is_null(&mut self, left: Parsed) -> R {
        self.bump();
        let not = *self.peek() == Tok::Not;
        if not {
            self.bump();
        }
        self.expect(Tok::Null, if not { "NULL" } else { "NULL or NOT NULL" })?;
        let depth = left.1 + 1;
        let eq = Node::Cmp(
            RelOp::Eq,
            Box::new(left.0),
            Box::new(Node::Const(Const::Null)),
        );
        let eq = self.combine(eq, depth)?;
        if not {
            self.combine(Node::Not(Box::new(eq.0)), eq.1 + 1)
        } else {
            Ok(eq)
        }
    }

    fn comparison(&mut self) -> R {
        let mut left = self.unary()?;
        loop {
            let column = self.column();
            let op = match self.peek() {
                Tok::Gt => RelOp::Gt,
                Tok::Ge => RelOp::Ge,
                Tok::Lt => RelOp::Lt,
                Tok::Le => RelOp::Le,
                Tok::Not if is_negatable(self.peek2()) => {
                    self.bump();
                    left = self.negatable(left, true, column)?;
                    continue;
                }
                t if is_negatable(t) => {
                    left = self.negatable(left, false, column)?;
                    continue;
                }
                _ => return Ok(left),
            };
            self.bump();
            let right_column = self.column();
            let right = self.unary()?;
            check_less_operand(&left.0, column)?;
            check_less_operand(&right.0, right_column)?;
            let depth = left.1.max(right.1) + 1;
            left = self.combine(Node::Cmp(op, Box::new(left.0), Box::new(right.0)), depth)?;
        }
    }

    /// BETWEEN, IN, CONTAINS, STARTSWITH or ENDSWITH after `left` (and after NOT when `not`).
    fn negatable(&mut self, left: Parsed, not: bool, column: usize) -> R {
        let text_op = match self.bump() {
            Tok::Between => return self.between(left, not, column),
            Tok::In => return self.in_list(left, not, column),
            Tok::Contains => TextOp::Contains,
            Tok::StartsWith => TextOp::StartsWith,
            _ => TextOp::EndsWith,
        };
        let search = self.string_literal()?;
        let depth = left.1 + 1;
        let node = Node::Text {
            op: text_op,
            not,
            operand: Box::new(left.0),
            search,
        };
        self.combine(node, depth)
    }

    fn string_literal(&mut self) -> Result<String, SqlError> {
        match self.peek().clone() {
            Tok::Str(s) => {
                self.bump();
                Ok(s)
            }
            _ => self.unexpected("a string literal"),
        }
    }

    /// `BETWEEN low AND high` is `>= low AND <= high`; `NOT BETWEEN` is `< low OR > high`.
    fn between(&mut self, value: Parsed, not: bool, column: usize) -> R {
        let low_column = self.column();
        let low = self.unary()?;
        self.expect(Tok::And, "AND")?;
        let high_column = self.column();
        let high = self.unary()?;
        if !not {
            check_between_bounds(&low.0, &high.0, low_column)?;
        }
        for (node, col) in [
            (&value.0, column),
            (&low.0, low_column),
            (&high.0, high_column),
        ] {
            check_less_operand(node, col)?;
        }
        let depth = value.1.max(low.1).max(high.1) + 2;
        let (lo_op, hi_op) = if not {
            (RelOp::Lt, RelOp::Gt)
        } else {
            (RelOp::Ge, RelOp::Le)
        };
        let lo = Node::Cmp(lo_op, Box::new(value.0.clone()), Box::new(low.0));
        let hi = Node::Cmp(hi_op, Box::new(value.0), Box::new(high.0));
        let node = if not {
            Node::Or(Box::new(lo), Box::new(hi))
        } else {
            Node::And(Box::new(lo), Box::new(hi))
        };
        self.combine(node, depth)
    }

    /// `IN ('a', 'b', ...)` on a property.
    fn in_list(&mut self, left: Parsed, not: bool, column: usize) -> R {
        let Node::Prop(prop) = left.0 else {
            return Err(SqlError::new(
                column,
                format!(
                    "Expected a property for In expression, got: {}",
                    left.0.describe()
                ),
            ));
        };
        self.expect(Tok::LParen, "(")?;
        let mut list = vec![self.string_literal()?];
        while *self.peek() == Tok::Comma {
            self.bump();
            list.push(self.string_literal()?);
        }
        self.expect(Tok::RParen, ", or )")?;
        Ok((Node::In { prop, list, not }, 1))
    }

    fn unary(&mut self) -> R {
        let op = self.peek().clone();
        if !matches!(op, Tok::Plus | Tok::Minus | Tok::Not) {
            return self.primary();
        }
        self.bump();
        let inner_column = self.column();
        self.nest()?;
        let inner = self.unary();
        self.nesting -= 1;
        let inner = inner?;
        match op {
            Tok::Plus => Ok(inner),
            Tok::Minus => self.combine(Node::Neg(Box::new(inner.0)), inner.1 + 1),
            _ => {
                let b = as_boolean(inner, inner_column)?;
                self.combine(Node::Not(Box::new(b.0)), b.1 + 1)
            }
        }
    }

    fn nest(&mut self) -> Result<(), SqlError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            self.nesting -= 1;
            return self.error(format!(
                "expression nested too deeply (more than {MAX_NESTING} levels of parentheses and prefixes)"
            ));
        }
        Ok(())
    }

    fn primary(&mut self) -> R {
        let column = self.column();
        let node = match self.bump() {
            Tok::Str(s) => Node::Const(Const::Str(s)),
            Tok::Decimal(text) => Node::Const(decimal(&text, column)?),
            Tok::Float(text) => Node::Const(float(&text, column)?),
            Tok::True => Node::Const(Const::Bool(true)),
            Tok::False => Node::Const(Const::Bool(false)),
            Tok::Null => Node::Const(Const::Null),
            Tok::Id(name) => Node::Prop(self.name_index(name)),
            Tok::LParen => {
                self.nest()?;
                let inner = self.or();
                self.nesting -= 1;
                let inner = inner?;
                self.expect(Tok::RParen, ")")?;
                return Ok(inner);
            }
            tok => {
                return Err(SqlError::new(
                    column,
                    format!(
                        "unexpected {}, expected a literal, a property or (",
                        tok.describe()
                    ),
                ))
            }
        };
        Ok((node, 1))
    }

    /// Properties are looked up by exact name; the index into the selector's name list.
    fn name_index(&mut self, name: String) -> usize {
        match self.names.iter().position(|n| *n == name) {
            Some(i) => i,
            None => {
                self.names.push(name);
                self.names.len() - 1
            }
        }
    }
}

fn is_negatable(tok: &Tok) -> bool {
    matches!(
        tok,
        Tok::Between | Tok::In | Tok::Contains | Tok::StartsWith | Tok::EndsWith
    )
}

/// An integer literal: an int when it fits 32 bits, a long otherwise (Java's Integer / Long).
fn decimal(text: &str, column: usize) -> Result<Const, SqlError> {
    let digits = text.trim_end_matches(['l', 'L']);
    let value: i64 = digits.parse().map_err(|_| {
        SqlError::new(
            column,
            format!("{text} is out of the range of a 64-bit long"),
        )
    })?;
    Ok(match i32::try_from(value) {
        Ok(int) => Const::Int(int),
        Err(_) => Const::Long(value),
    })
}

/// A floating-point literal; like RocketMQ, one that overflows a double or is below the
/// smallest positive double (4.9E-324, so `0.0` too) is refused.
fn float(text: &str, column: usize) -> Result<Const, SqlError> {
    let value = super::eval::java_double(text)
        .ok_or_else(|| SqlError::new(column, format!("bad floating-point literal {text}")))?;
    if value > f64::MAX {
        return Err(SqlError::new(
            column,
            format!("{text} is greater than 1.7976931348623157E308"),
        ));
    }
    if value < 4.9e-324 {
        return Err(SqlError::new(
            column,
            format!("{text} is less than 4.9E-324"),
        ));
    }
    Ok(Const::Double(value))
}

/// Where a boolean is needed: boolean expressions as they are, a property as a boolean cast.
fn as_boolean(parsed: Parsed, column: usize) -> R {
    let (node, depth) = parsed;
    match node {
        Node::Prop(i) => Ok((Node::BoolCast(i), depth)),
        n if n.is_boolean() => Ok((n, depth)),
        n => Err(SqlError::new(
            column,
            format!(
                "Expression will not result in a boolean value: {}",
                n.describe()
            ),
        )),
    }
}

/// `left = right`, with RocketMQ's checks: no NULL literal on either side, and a boolean
/// literal only compared with a boolean.
fn equal(left: Parsed, right: Parsed, column: usize) -> R {
    for node in [&left.0, &right.0] {
        if let Node::Const(Const::Null) = node {
            return Err(SqlError::new(
                column,
                "'NULL' cannot be compared (use IS NULL)",
            ));
        }
    }
    if let (Node::Const(l @ Const::Bool(_)), Node::Const(r)) = (&left.0, &right.0) {
        if !matches!(r, Const::Bool(_)) {
            return Err(SqlError::new(
                column,
                format!(
                    "'{}' cannot be compared with '{}'",
                    l.describe(),
                    r.describe()
                ),
            ));
        }
    }
    let depth = left.1.max(right.1) + 1;
    Ok((
        Node::Cmp(RelOp::Eq, Box::new(left.0), Box::new(right.0)),
        depth,
    ))
}

/// An operand of `<`, `<=`, `>`, `>=` (and BETWEEN): a literal must be a number, and a boolean
/// expression cannot be ordered.
fn check_less_operand(node: &Node, column: usize) -> Result<(), SqlError> {
    let bad = match node {
        Node::Const(c) => !matches!(c, Const::Int(_) | Const::Long(_) | Const::Double(_)),
        n => n.is_boolean(),
    };
    if bad {
        return Err(SqlError::new(
            column,
            format!("Value '{}' cannot be compared.", node.describe()),
        ));
    }
    Ok(())
}

/// BETWEEN with two literals: the low one must not be above the high one.
fn check_between_bounds(low: &Node, high: &Node, column: usize) -> Result<(), SqlError> {
    let (Node::Const(lo), Node::Const(hi)) = (low, high) else {
        return Ok(());
    };
    if matches!(lo, Const::Null) || matches!(hi, Const::Null) {
        return Err(SqlError::new(
            column,
            "Illegal values of between, values can not be null!",
        ));
    }
    let ordering = compare(Value::of(hi), Value::of(lo))
        .map_err(|e| SqlError::new(column, format!("Illegal values of between: {e}")))?;
    if ordering.is_lt() {
        return Err(SqlError::new(
            column,
            format!(
                "Illegal values of between, left value({}) must less than or equal to right value({})",
                lo.describe(),
                hi.describe()
            ),
        ));
    }
    Ok(())
}
