//! Reading the JSON that RocketMQ brokers write with fastjson: maps keyed by a
//! `MessageQueue` carry object literals as keys (`{{"brokerName":"b","queueId":0,"topic":"t"}:1}`)
//! and integer keys may be bare (`{0:"addr"}`). Neither is standard JSON, so
//! this small parser reads them into a [`Value`] whose object keys are strings:
//! an object key becomes its compact JSON text, which [`mq_of_key`] reads back.

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
#[error("malformed JSON at byte {at}: {what}")]
pub struct ParseError {
    pub at: usize,
    pub what: &'static str,
}

/// Parses fastjson text (a superset of JSON) into a value.
pub fn parse(text: &[u8]) -> Result<Value, ParseError> {
    let mut p = Parser { s: text, i: 0 };
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("trailing characters"));
    }
    Ok(v)
}

/// A message queue as written in a key: (topic, brokerName, queueId).
pub fn mq_of_key(key: &str) -> Option<(String, String, i64)> {
    let v: Value = serde_json::from_str(key).ok()?;
    Some((
        v.get("topic")?.as_str()?.to_owned(),
        v.get("brokerName")?.as_str()?.to_owned(),
        v.get("queueId")?.as_i64()?,
    ))
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, what: &'static str) -> ParseError {
        ParseError { at: self.i, what }
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), ParseError> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err("unexpected character"))
        }
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(_) => self.scalar(),
            None => Err(self.err("unexpected end")),
        }
    }

    fn object(&mut self) -> Result<Value, ParseError> {
        self.expect(b'{')?;
        let mut map = Map::new();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(Value::Object(map));
        }
        loop {
            let key = match self.peek() {
                Some(b'"') => self.string()?,
                Some(b'{') | Some(b'[') => self.value()?.to_string(),
                _ => self.bare()?.to_owned(),
            };
            self.expect(b':')?;
            let v = self.value()?;
            map.insert(key, v);
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Value::Object(map));
                }
                _ => return Err(self.err("expected , or }")),
            }
        }
    }

    fn array(&mut self) -> Result<Value, ParseError> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value()?);
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.err("expected , or ]")),
            }
        }
    }

    fn string(&mut self) -> Result<String, ParseError> {
        let start = self.i;
        self.i += 1;
        let mut escaped = false;
        while self.i < self.s.len() {
            let c = self.s[self.i];
            self.i += 1;
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                return serde_json::from_slice(&self.s[start..self.i]).map_err(|_| ParseError {
                    at: start,
                    what: "bad string",
                });
            }
        }
        Err(self.err("unterminated string"))
    }

    /// A bare token: a number, true, false, null or an unquoted key.
    fn bare(&mut self) -> Result<&str, ParseError> {
        self.ws();
        let start = self.i;
        while self.i < self.s.len() && !b",:}] \t\r\n".contains(&self.s[self.i]) {
            self.i += 1;
        }
        if start == self.i {
            return Err(self.err("expected a value"));
        }
        std::str::from_utf8(&self.s[start..self.i]).map_err(|_| self.err("not UTF-8"))
    }

    fn scalar(&mut self) -> Result<Value, ParseError> {
        let at = self.i;
        let token = self.bare()?;
        serde_json::from_str(token).map_err(|_| ParseError {
            at,
            what: "bad literal",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_object_keys_and_bare_keys() {
        let text = br#"{"offsetTable":{{"brokerName":"b-0","queueId":3,"topic":"T"}:{"maxOffset":7}},"m":{0:"a:1",-1:"x"},"tps":1.5,"ok":true,"n":null,"l":[1,"2"]}"#;
        let v = parse(text).unwrap();
        let (key, val) = v["offsetTable"].as_object().unwrap().iter().next().unwrap();
        assert_eq!(mq_of_key(key), Some(("T".into(), "b-0".into(), 3)));
        assert_eq!(val["maxOffset"], 7);
        assert_eq!(v["m"]["0"], "a:1");
        assert_eq!(v["m"]["-1"], "x");
        assert_eq!(v["tps"], 1.5);
        assert_eq!(v["ok"], true);
        assert_eq!(v["l"][1], "2");
    }

    #[test]
    fn rejects_broken_text() {
        assert!(parse(b"{\"a\":").is_err());
        assert!(parse(b"{\"a\":1}x").is_err());
        assert!(parse(b"[1 2]").is_err());
        assert!(parse(b"\"abc").is_err());
    }
}
