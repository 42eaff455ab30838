//! The tokens of RocketMQ's SQL92 selector grammar.
//!
//! Keywords and identifiers are case-insensitive; identifiers are `[a-zA-Z_$][a-zA-Z0-9_$]*`;
//! a decimal literal is `0` or `[1-9][0-9]*` with an optional `l`/`L`; a floating-point literal
//! needs a `.` or an exponent; strings are single-quoted with `''` for a quote. `--` comments
//! run to the end of the line (or of the input), `/* */` comments may span lines.

use super::SqlError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Not,
    And,
    Or,
    Between,
    In,
    True,
    False,
    Null,
    Is,
    Contains,
    StartsWith,
    EndsWith,
    Decimal(String),
    Float(String),
    Str(String),
    Id(String),
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    LParen,
    RParen,
    Comma,
    Plus,
    Minus,
    Eof,
}

impl Tok {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        let fixed = match self {
            Tok::Decimal(s) | Tok::Float(s) | Tok::Id(s) => return format!("'{s}'"),
            Tok::Str(s) => return format!("string '{}'", s.replace('\'', "''")),
            Tok::Eof => return "end of input".to_owned(),
            Tok::Not => "NOT",
            Tok::And => "AND",
            Tok::Or => "OR",
            Tok::Between => "BETWEEN",
            Tok::In => "IN",
            Tok::True => "TRUE",
            Tok::False => "FALSE",
            Tok::Null => "NULL",
            Tok::Is => "IS",
            Tok::Contains => "CONTAINS",
            Tok::StartsWith => "STARTSWITH",
            Tok::EndsWith => "ENDSWITH",
            Tok::Eq => "=",
            Tok::Ne => "<>",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::Comma => ",",
            Tok::Plus => "+",
            Tok::Minus => "-",
        };
        format!("'{fixed}'")
    }
}

/// A token and the 1-based column (in characters) where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub column: usize,
}

/// The whole input as tokens, ending with [`Tok::Eof`].
pub(crate) fn tokens(input: &str) -> Result<Vec<Token>, SqlError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let tok = match c {
            ' ' | '\t' | '\n' | '\r' | '\u{c}' => {
                i += 1;
                continue;
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' && chars[i] != '\r' {
                    i += 1;
                }
                continue;
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i = block_comment_end(&chars, i)?;
                continue;
            }
            '\'' => {
                let (s, end) = string(&chars, i)?;
                i = end;
                Tok::Str(s)
            }
            '0'..='9' | '.' => {
                let (tok, end) = number(&chars, i)?;
                i = end;
                tok
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == '$' => {
                while i < chars.len() && is_id_part(chars[i]) {
                    i += 1;
                }
                word(chars[start..i].iter().collect())
            }
            _ => {
                let (tok, len) = operator(&chars[i..]).ok_or_else(|| {
                    SqlError::new(start + 1, format!("unexpected character '{c}'"))
                })?;
                i += len;
                tok
            }
        };
        out.push(Token {
            tok,
            column: start + 1,
        });
    }
    out.push(Token {
        tok: Tok::Eof,
        column: chars.len() + 1,
    });
    Ok(out)
}

fn is_id_part(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

fn word(text: String) -> Tok {
    match text.to_ascii_uppercase().as_str() {
        "NOT" => Tok::Not,
        "AND" => Tok::And,
        "OR" => Tok::Or,
        "BETWEEN" => Tok::Between,
        "IN" => Tok::In,
        "TRUE" => Tok::True,
        "FALSE" => Tok::False,
        "NULL" => Tok::Null,
        "IS" => Tok::Is,
        "CONTAINS" => Tok::Contains,
        "STARTSWITH" => Tok::StartsWith,
        "ENDSWITH" => Tok::EndsWith,
        _ => Tok::Id(text),
    }
}

fn operator(rest: &[char]) -> Option<(Tok, usize)> {
    let next = rest.get(1).copied();
    Some(match (rest[0], next) {
        ('<', Some('>')) => (Tok::Ne, 2),
        ('<', Some('=')) => (Tok::Le, 2),
        ('>', Some('=')) => (Tok::Ge, 2),
        ('<', _) => (Tok::Lt, 1),
        ('>', _) => (Tok::Gt, 1),
        ('=', _) => (Tok::Eq, 1),
        ('(', _) => (Tok::LParen, 1),
        (')', _) => (Tok::RParen, 1),
        (',', _) => (Tok::Comma, 1),
        ('+', _) => (Tok::Plus, 1),
        ('-', _) => (Tok::Minus, 1),
        _ => return None,
    })
}

/// The index after the `*/` closing the comment that starts at `i`.
fn block_comment_end(chars: &[char], i: usize) -> Result<usize, SqlError> {
    let mut j = i + 2;
    while j + 1 < chars.len() {
        if chars[j] == '*' && chars[j + 1] == '/' {
            return Ok(j + 2);
        }
        j += 1;
    }
    Err(SqlError::new(i + 1, "unterminated comment"))
}

/// The string literal starting at the quote at `i`, and the index after its closing quote.
fn string(chars: &[char], i: usize) -> Result<(String, usize), SqlError> {
    let mut s = String::new();
    let mut j = i + 1;
    while j < chars.len() {
        if chars[j] == '\'' {
            if chars.get(j + 1) == Some(&'\'') {
                s.push('\'');
                j += 2;
                continue;
            }
            return Ok((s, j + 1));
        }
        s.push(chars[j]);
        j += 1;
    }
    Err(SqlError::new(i + 1, "unterminated string literal"))
}

fn digits_end(chars: &[char], mut j: usize) -> usize {
    while j < chars.len() && chars[j].is_ascii_digit() {
        j += 1;
    }
    j
}

/// The end of an exponent (`e`, optional sign, digits) starting at `j`, if there is one.
fn exponent_end(chars: &[char], j: usize) -> Option<usize> {
    if !matches!(chars.get(j), Some('e' | 'E')) {
        return None;
    }
    let mut k = j + 1;
    if matches!(chars.get(k), Some('+' | '-')) {
        k += 1;
    }
    let end = digits_end(chars, k);
    (end > k).then_some(end)
}

/// The numeric literal starting at `i` (a digit or a `.`), the longest that matches.
fn number(chars: &[char], i: usize) -> Result<(Tok, usize), SqlError> {
    let int_end = digits_end(chars, i);
    let text = |end: usize| chars[i..end].iter().collect::<String>();
    if chars.get(int_end) == Some(&'.') {
        let frac_end = digits_end(chars, int_end + 1);
        if int_end == i && frac_end == int_end + 1 {
            return Err(SqlError::new(i + 1, "unexpected character '.'"));
        }
        let end = exponent_end(chars, frac_end).unwrap_or(frac_end);
        return Ok((Tok::Float(text(end)), end));
    }
    if let Some(end) = exponent_end(chars, int_end) {
        return Ok((Tok::Float(text(end)), end));
    }
    if chars[i] == '0' {
        return Ok((Tok::Decimal("0".into()), i + 1));
    }
    if matches!(chars.get(int_end), Some('l' | 'L')) {
        return Ok((Tok::Decimal(text(int_end + 1)), int_end + 1));
    }
    Ok((Tok::Decimal(text(int_end)), int_end))
}
