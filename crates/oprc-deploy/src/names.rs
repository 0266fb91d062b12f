//! Kubernetes names from function keys: DNS-1035 labels (lowercase
//! letters, digits and `-`, starting with a letter, ending with a letter
//! or digit, at most 63 characters).

/// The label for `key` (`pkg.fn`): lowercased, every other character a
/// `-`, runs of `-` collapsed, `fn-` in front of a leading digit, and a
/// key too long cut at 54 characters with 8 hex digits of its FNV-1a hash
/// (so that two long keys stay apart).
pub fn label(key: &str) -> String {
    let mut s = String::with_capacity(key.len());
    for c in key.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            s.push(c);
        } else if !s.ends_with('-') {
            s.push('-');
        }
    }
    let mut s = s.trim_matches('-').to_owned();
    if s.is_empty() {
        s.push_str("fn");
    } else if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        s.insert_str(0, "fn-");
    }
    if s.len() > 63 {
        let mut h: u32 = 0x811c_9dc5;
        for b in key.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        s.truncate(54);
        let s = s.trim_end_matches('-');
        return format!("{s}-{h:08x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(l: &str) -> bool {
        l.len() <= 63
            && l.starts_with(|c: char| c.is_ascii_lowercase())
            && l.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    }

    #[test]
    fn keys_become_valid_labels() {
        assert_eq!(label("shop.Resize_Image"), "shop-resize-image");
        assert_eq!(label("9lives.f~x"), "fn-9lives-f-x");
        let long = format!("p.{}", "x".repeat(80));
        let other = format!("p.{}y", "x".repeat(80));
        assert!(valid(&label(&long)), "{}", label(&long));
        assert_ne!(label(&long), label(&other));
        for k in ["a.b", "A--B.c", "_x._y", "p.-", "p.0", "-.-"] {
            assert!(valid(&label(k)), "{k}: {}", label(k));
        }
    }
}
