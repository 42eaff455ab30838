//! What a command prints: a table (aligned columns for people, an array of
//! objects with `--json`) or a record of named values.

use serde_json::{Map, Value};

/// Rows of named columns.
pub struct Table {
    pub cols: Vec<&'static str>,
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    pub fn new(cols: &[&'static str]) -> Self {
        Self {
            cols: cols.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<Value>) {
        debug_assert_eq!(cells.len(), self.cols.len());
        self.rows.push(cells);
    }

    pub fn to_json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|r| {
                    let obj: Map<String, Value> = self
                        .cols
                        .iter()
                        .zip(r)
                        .map(|(c, v)| ((*c).to_owned(), v.clone()))
                        .collect();
                    Value::Object(obj)
                })
                .collect(),
        )
    }

    pub fn render(&self) -> String {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(text).collect())
            .collect();
        let header: Vec<String> = self.cols.iter().map(|c| format!("#{c}")).collect();
        let mut widths: Vec<usize> = header.iter().map(|c| c.chars().count()).collect();
        for r in &cells {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        push_line(&mut out, &header, &widths);
        for r in &cells {
            push_line(&mut out, r, &widths);
        }
        out
    }
}

fn push_line(out: &mut String, cells: &[String], widths: &[usize]) {
    let mut line = String::new();
    for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
        if i + 1 == cells.len() {
            line.push_str(c);
        } else {
            line.push_str(c);
            let pad = (w + 2).saturating_sub(c.chars().count());
            line.extend(std::iter::repeat_n(' ', pad.max(1)));
        }
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// A cell as people read it: strings without quotes.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// What a command produced.
pub enum Output {
    Table(Table),
    /// Named values, printed `key : value` one per line.
    Record(Map<String, Value>),
    /// Several outputs under titles (one per broker, per topic, ...).
    Sections(Vec<(String, Output)>),
}

impl Output {
    pub fn to_json(&self) -> Value {
        match self {
            Output::Table(t) => t.to_json(),
            Output::Record(m) => Value::Object(m.clone()),
            Output::Sections(s) => Value::Object(
                s.iter()
                    .map(|(title, o)| (title.clone(), o.to_json()))
                    .collect(),
            ),
        }
    }

    pub fn render(&self) -> String {
        match self {
            Output::Table(t) => t.render(),
            Output::Record(m) => {
                let w = m.keys().map(String::len).max().unwrap_or(0);
                m.iter()
                    .map(|(k, v)| format!("{k:<w$} : {}\n", text(v)))
                    .collect()
            }
            Output::Sections(s) => s
                .iter()
                .map(|(title, o)| format!("============ {title} ============\n{}", o.render()))
                .collect(),
        }
    }
}

/// A record from pairs.
pub fn record<I, K>(pairs: I) -> Output
where
    I: IntoIterator<Item = (K, Value)>,
    K: Into<String>,
{
    Output::Record(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_aligns_and_serializes() {
        let mut t = Table::new(&["Topic", "Queue"]);
        t.row(vec![json!("a-long-topic"), json!(3)]);
        t.row(vec![json!("b"), Value::Null]);
        assert_eq!(
            t.render(),
            "#Topic        #Queue\na-long-topic  3\nb             -\n"
        );
        assert_eq!(t.to_json()[0]["Queue"], 3);
        assert_eq!(t.to_json()[1]["Topic"], "b");
    }
}
