//! Host-name patterns for `serverNames` (TLS SNI) and `hosts` (HTTP Host).
//!
//! Case-insensitive; a trailing dot is ignored. `*.example.com` matches
//! exactly one more label (`a.example.com`, not `example.com` nor
//! `a.b.example.com`), `*` matches any name, and `""` matches a client that
//! sent no name at all. Matching reads the name in place: no allocation.
//!
//! (A general glob crate does not fit: its `*` stops at `/`, not at `.`.)

/// One pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// `*`: any name.
    Any,
    /// A literal name, lowercased.
    Exact(Box<[u8]>),
    /// `*.suffix`: one label, then the suffix (lowercased, without `*.`).
    OneLabelUnder(Box<[u8]>),
}

/// A list of name patterns; a name matches when any pattern does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamePatterns {
    patterns: Vec<Pattern>,
    missing: bool,
}

impl NamePatterns {
    /// Parses `patterns`; the error names the first bad one and why.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, (usize, String)> {
        let mut list = NamePatterns::default();
        for (i, pattern) in patterns.iter().enumerate() {
            let pattern = pattern.as_ref();
            let name = pattern.strip_suffix('.').unwrap_or(pattern).to_ascii_lowercase();
            if pattern.is_empty() {
                list.missing = true;
                continue;
            }
            let parsed = match name.as_str() {
                "*" => Pattern::Any,
                _ => match name.strip_prefix("*.") {
                    Some(suffix) => Pattern::OneLabelUnder(suffix.as_bytes().into()),
                    None => Pattern::Exact(name.as_bytes().into()),
                },
            };
            let literal = match &parsed {
                Pattern::Any => "",
                Pattern::Exact(n) | Pattern::OneLabelUnder(n) => std::str::from_utf8(n).unwrap_or_default(),
            };
            if literal.contains('*') {
                return Err((
                    i,
                    format!("`{pattern}`: `*` may only be a whole leading label (`*.example.com`) or `*`"),
                ));
            }
            if literal.split('.').any(str::is_empty) && !literal.is_empty() {
                return Err((i, format!("`{pattern}`: empty label")));
            }
            if literal.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'/') {
                return Err((i, format!("`{pattern}`: not a host name")));
            }
            list.patterns.push(parsed);
        }
        Ok(list)
    }

    /// Whether `name` (as sent, any case, `None` when the client sent none)
    /// matches.
    pub fn matches(&self, name: Option<&[u8]>) -> bool {
        let Some(name) = name else { return self.missing };
        let name = name.strip_suffix(b".").unwrap_or(name);
        if name.is_empty() {
            return self.missing;
        }
        self.patterns.iter().any(|pattern| match pattern {
            Pattern::Any => true,
            Pattern::Exact(exact) => name.eq_ignore_ascii_case(exact),
            Pattern::OneLabelUnder(suffix) => name
                .iter()
                .position(|&b| b == b'.')
                .is_some_and(|dot| dot > 0 && name[dot + 1..].eq_ignore_ascii_case(suffix)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(list: &[&str]) -> NamePatterns {
        NamePatterns::new(list).unwrap()
    }

    #[test]
    fn exact_names_match_case_insensitively_with_or_without_a_trailing_dot() {
        let p = patterns(&["Git.Example.com"]);
        assert!(p.matches(Some(b"git.example.com")));
        assert!(p.matches(Some(b"GIT.EXAMPLE.COM.")));
        assert!(!p.matches(Some(b"git.example.org")));
        assert!(!p.matches(None));
    }

    #[test]
    fn a_leading_star_label_matches_exactly_one_label() {
        let p = patterns(&["*.example.com"]);
        assert!(p.matches(Some(b"a.example.com")));
        assert!(p.matches(Some(b"A.Example.Com")));
        assert!(!p.matches(Some(b"example.com")));
        assert!(!p.matches(Some(b"a.b.example.com")));
        assert!(!p.matches(Some(b".example.com")));
    }

    #[test]
    fn star_is_any_name_and_empty_is_no_name() {
        let any = patterns(&["*"]);
        assert!(any.matches(Some(b"whatever.test")));
        assert!(!any.matches(None));
        let none = patterns(&[""]);
        assert!(none.matches(None));
        assert!(!none.matches(Some(b"a.test")));
    }

    #[test]
    fn bad_patterns_are_refused_with_their_index() {
        assert_eq!(NamePatterns::new(&["ok.test", "a.*.test"]).unwrap_err().0, 1);
        assert!(NamePatterns::new(&["a..test"]).is_err());
        assert!(NamePatterns::new(&["a b"]).is_err());
    }
}
