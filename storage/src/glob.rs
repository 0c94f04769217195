//! Redis glob-style matching (`stringmatchlen` in Redis's util.c).

/// Redis glob-style matching (KEYS, SCAN MATCH): `*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\x`.
///
/// Matches the way Redis's `stringmatchlen` does, byte-wise and case-sensitive.
pub fn glob_match(pattern: &[u8], key: &[u8]) -> bool {
    // stringmatchlen's loop runs only while both pattern and string remain, so an empty key
    // matches only an empty pattern; KEYS and SCAN skip matching for a lone `*`, so `*`
    // still lists it. `**` or `?*` does not.
    if key.is_empty() {
        return pattern.is_empty() || pattern == b"*";
    }
    matches(pattern, key, 0)
}

fn matches(mut p: &[u8], mut s: &[u8], depth: u32) -> bool {
    // Redis bounds the recursion too (stringmatchlen_impl's nesting limit).
    if depth > 1000 {
        return false;
    }
    while let Some(&pc) = p.first() {
        match pc {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                let rest = &p[1..];
                for i in 0..=s.len() {
                    if matches(rest, &s[i..], depth + 1) {
                        return true;
                    }
                }
                return false;
            }
            b'?' => {
                if s.is_empty() {
                    return false;
                }
                s = &s[1..];
            }
            b'[' => {
                let Some(&c) = s.first() else { return false };
                p = &p[1..];
                let not = p.first() == Some(&b'^');
                if not {
                    p = &p[1..];
                }
                let mut matched = false;
                loop {
                    match p.first() {
                        None => {
                            // Unterminated class: Redis treats the end as closing it.
                            break;
                        }
                        Some(b'\\') if p.len() >= 2 => {
                            p = &p[1..];
                            if p[0] == c {
                                matched = true;
                            }
                        }
                        Some(b']') => break,
                        Some(_) if p.len() >= 3 && p[1] == b'-' => {
                            let (mut start, mut end) = (p[0], p[2]);
                            if start > end {
                                std::mem::swap(&mut start, &mut end);
                            }
                            if c >= start && c <= end {
                                matched = true;
                            }
                            p = &p[2..];
                        }
                        Some(&x) => {
                            if x == c {
                                matched = true;
                            }
                        }
                    }
                    p = &p[1..];
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s = &s[1..];
                if p.is_empty() {
                    // Unterminated class consumed the pattern.
                    return s.is_empty();
                }
            }
            b'\\' if p.len() >= 2 => {
                p = &p[1..];
                if s.first() != Some(&p[0]) {
                    return false;
                }
                s = &s[1..];
            }
            _ => {
                if s.first() != Some(&pc) {
                    return false;
                }
                s = &s[1..];
            }
        }
        p = &p[1..];
        if s.is_empty() {
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn an_empty_key_matches_only_an_empty_pattern_or_a_lone_star() {
        assert!(glob_match(b"", b""));
        assert!(glob_match(b"*", b""));
        for p in [&b"**"[..], b"?", b"*?", b"[a]", b"a*", b"\\*"] {
            assert!(!glob_match(p, b""), "{p:?}");
        }
        assert!(glob_match(b"**", b"x"));
    }

    #[test]
    fn redis_cases() {
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"*", b"abc"));
        assert!(glob_match(b"a*c", b"abbbc"));
        assert!(!glob_match(b"a*c", b"abbb"));
        assert!(glob_match(b"h?llo", b"hello"));
        assert!(!glob_match(b"h?llo", b"hllo"));
        assert!(glob_match(b"h[ae]llo", b"hallo"));
        assert!(!glob_match(b"h[ae]llo", b"hillo"));
        assert!(glob_match(b"h[^e]llo", b"hallo"));
        assert!(!glob_match(b"h[^e]llo", b"hello"));
        assert!(glob_match(b"h[a-b]llo", b"hbllo"));
        assert!(glob_match(b"h[b-a]llo", b"hallo"));
        assert!(glob_match(b"h\\*llo", b"h*llo"));
        assert!(!glob_match(b"h\\*llo", b"hello"));
        assert!(glob_match(b"key:*", b"key:1"));
        assert!(!glob_match(b"key:*", b"kex:1"));
        assert!(glob_match(b"", b""));
        assert!(!glob_match(b"", b"a"));
        assert!(glob_match(b"a**", b"a"));
    }
}
