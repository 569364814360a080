//! Finds where a JSON path's value starts in the source text, so errors found
//! after parsing (a missing certificate file, a bad address) still point at a
//! line and column.

use super::error::{JsonPath, Segment};

/// Byte offset where the value at `path` starts in `source` (valid JSON), or
/// `None` when the path does not exist.
pub fn locate(source: &str, path: &JsonPath) -> Option<usize> {
    let bytes = source.as_bytes();
    let mut pos = skip_whitespace(bytes, 0);
    for segment in &path.0 {
        pos = match segment {
            Segment::Key(key) => find_member(bytes, pos, key)?,
            Segment::Index(index) => find_element(bytes, pos, *index)?,
        };
    }
    Some(pos)
}

fn skip_whitespace(bytes: &[u8], mut pos: usize) -> usize {
    while bytes.get(pos).is_some_and(|b| b.is_ascii_whitespace()) {
        pos += 1;
    }
    pos
}

/// End (exclusive) of the string starting at `pos` (a `"`).
fn string_end(bytes: &[u8], pos: usize) -> Option<usize> {
    let mut i = pos + 1;
    loop {
        match bytes.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// End (exclusive) of the value starting at `pos`.
fn value_end(bytes: &[u8], pos: usize) -> Option<usize> {
    match bytes.get(pos)? {
        b'"' => string_end(bytes, pos),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = pos;
            loop {
                match bytes.get(i)? {
                    b'"' => {
                        i = string_end(bytes, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let mut i = pos;
            while bytes.get(i).is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace()) {
                i += 1;
            }
            Some(i)
        }
    }
}

/// Start of the value of member `key` in the object at `pos`.
fn find_member(bytes: &[u8], pos: usize, key: &str) -> Option<usize> {
    if bytes.get(pos)? != &b'{' {
        return None;
    }
    let mut i = skip_whitespace(bytes, pos + 1);
    while bytes.get(i)? == &b'"' {
        let key_end = string_end(bytes, i)?;
        let name: String = serde_json::from_slice(&bytes[i..key_end]).ok()?;
        i = skip_whitespace(bytes, key_end);
        if bytes.get(i)? != &b':' {
            return None;
        }
        let value = skip_whitespace(bytes, i + 1);
        if name == key {
            return Some(value);
        }
        i = skip_whitespace(bytes, value_end(bytes, value)?);
        if bytes.get(i) == Some(&b',') {
            i = skip_whitespace(bytes, i + 1);
        }
    }
    None
}

/// Start of element `index` of the array at `pos`.
fn find_element(bytes: &[u8], pos: usize, index: usize) -> Option<usize> {
    if bytes.get(pos)? != &b'[' {
        return None;
    }
    let mut i = skip_whitespace(bytes, pos + 1);
    for _ in 0..index {
        if bytes.get(i)? == &b']' {
            return None;
        }
        i = skip_whitespace(bytes, value_end(bytes, i)?);
        if bytes.get(i)? != &b',' {
            return None;
        }
        i = skip_whitespace(bytes, i + 1);
    }
    (bytes.get(i)? != &b']').then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{
  "address": ":8080",
  "protocols": [
    {"kind": "echo"},
    {"kind": "tls", "conf": {"cert": "a \"b\" }", "key": "k.pem", "protos": ["h2", "ssh"]}}
  ]
}"#;

    fn at(path: JsonPath) -> Option<&'static str> {
        locate(DOC, &path).map(|i| &DOC[i..(i + 8).min(DOC.len())])
    }

    #[test]
    fn finds_nested_values_past_tricky_strings() {
        let root = JsonPath::default();
        assert_eq!(at(root.key("address")), Some("\":8080\","));
        let tls = root.key("protocols").index(1);
        assert_eq!(at(tls.key("kind")), Some("\"tls\", \""));
        assert_eq!(at(tls.key("conf").key("key")), Some("\"k.pem\","));
        assert_eq!(at(tls.key("conf").key("protos").index(1)), Some("\"ssh\"]}}"));
    }

    #[test]
    fn missing_paths_are_none() {
        let root = JsonPath::default();
        assert_eq!(at(root.key("nope")), None);
        assert_eq!(at(root.key("protocols").index(2)), None);
        assert_eq!(at(root.key("address").key("x")), None);
    }
}
