//! Segment names, their uniqueness key, descriptions and source labels.

use std::fmt;

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

use crate::domain::limits::{MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_SOURCE_CHARS};
use crate::error::{Field, Rule, ValidationError};

/// A validated segment name with its uniqueness key.
///
/// The name is the caller's text with surrounding whitespace trimmed: 1 to
/// [`MAX_NAME_CHARS`] characters, no control characters. It is stored as
/// trimmed. Names are unique per organization **by key**: the name
/// NFC-normalized, every internal run of whitespace collapsed to one space,
/// and lowercased. `"Q1 Leads"` and `" q1   leads "` have the same key and
/// so cannot both exist in one org.
///
/// ```
/// use segments_engine::SegmentName;
/// let a = SegmentName::parse("  Q1   Leads ")?;
/// assert_eq!(a.as_str(), "Q1   Leads");
/// assert_eq!(a.key(), "q1 leads");
/// assert_eq!(a.key(), SegmentName::parse("q1 leads")?.key());
/// # Ok::<(), segments_engine::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SegmentName {
    name: String,
    key: String,
}

impl SegmentName {
    /// Trims and validates `raw`, and computes its key.
    ///
    /// # Errors
    /// [`ValidationError`] on field `name`: [`Rule::Blank`] when nothing is
    /// left after trimming, [`Rule::TooLong`] over [`MAX_NAME_CHARS`]
    /// characters, [`Rule::ControlCharacter`] for any control character.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let name = raw.trim();
        check(name)?;
        Ok(Self {
            key: name_key(name),
            name: name.to_owned(),
        })
    }

    /// [`parse`](Self::parse) of an owned name, which is kept (not copied)
    /// when it needs no trimming.
    pub(crate) fn parse_owned(raw: String) -> Result<Self, ValidationError> {
        let name = raw.trim();
        check(name)?;
        let key = name_key(name);
        let name = if name.len() == raw.len() {
            raw
        } else {
            name.to_owned()
        };
        Ok(Self { key, name })
    }

    /// The name as stored: the caller's text, trimmed.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The uniqueness key: NFC, whitespace runs collapsed, lowercased.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The name as stored, without its key.
    pub fn into_string(self) -> String {
        self.name
    }

    /// The name and its key, without copying either.
    pub(crate) fn into_name_and_key(self) -> (String, String) {
        (self.name, self.key)
    }
}

impl fmt::Debug for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentName")
            .field("name", &self.name)
            .field("key", &self.key)
            .finish()
    }
}

impl fmt::Display for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.name)
    }
}

/// The rules of a trimmed segment name.
fn check(name: &str) -> Result<(), ValidationError> {
    let invalid = |rule| ValidationError::new(Field::Name, rule);
    if name.is_empty() {
        return Err(invalid(Rule::Blank));
    }
    // Byte length bounds the character count from above: skip counting
    // for the common short name.
    if name.len() > MAX_NAME_CHARS && name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(Rule::TooLong {
            max: MAX_NAME_CHARS,
            unit: "characters",
        }));
    }
    let has_control = if name.is_ascii() {
        name.bytes().any(|b| b.is_ascii_control())
    } else {
        name.chars().any(char::is_control)
    };
    if has_control {
        return Err(invalid(Rule::ControlCharacter));
    }
    Ok(())
}

/// The uniqueness key of an already trimmed name.
pub(crate) fn name_key(name: &str) -> String {
    if name.is_ascii() {
        // ASCII is always NFC. Most names have no whitespace run to
        // collapse (no two spaces in a row, no other whitespace): their key
        // is their lowercase, found in one pass over the bytes.
        let mut prev_space = false;
        let plain = name.bytes().all(|b| {
            let space = b == b' ';
            // `char::is_whitespace` of an ASCII byte: `u8`'s, and vertical tab.
            let whitespace = b.is_ascii_whitespace() || b == 0x0b;
            let ok = !(space && prev_space) && (space || !whitespace);
            prev_space = space;
            ok
        });
        if plain {
            return name.to_ascii_lowercase();
        }
        let mut key = String::with_capacity(name.len());
        let mut space = false;
        for b in name.bytes() {
            if (b as char).is_whitespace() {
                space = true;
            } else {
                if space {
                    key.push(' ');
                    space = false;
                }
                key.push(b.to_ascii_lowercase() as char);
            }
        }
        return key;
    }
    let collapsed = if is_nfc_quick(name.chars()) == IsNormalized::Yes {
        collapse_whitespace(name.chars())
    } else {
        collapse_whitespace(name.nfc())
    };
    collapsed.to_lowercase()
}

fn collapse_whitespace(chars: impl Iterator<Item = char>) -> String {
    let mut out = String::new();
    let mut space = false;
    for c in chars {
        if c.is_whitespace() {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out
}

/// Validates an optional description: at most [`MAX_DESCRIPTION_CHARS`]
/// characters and no NUL. Other characters, newlines included, are kept
/// exactly as given.
pub(crate) fn validate_description(description: &str) -> Result<(), ValidationError> {
    let invalid = |rule| ValidationError::new(Field::Description, rule);
    if description.len() > MAX_DESCRIPTION_CHARS
        && description.chars().count() > MAX_DESCRIPTION_CHARS
    {
        return Err(invalid(Rule::TooLong {
            max: MAX_DESCRIPTION_CHARS,
            unit: "characters",
        }));
    }
    if description.contains('\0') {
        return Err(invalid(Rule::NulCharacter));
    }
    Ok(())
}

/// Validates a source label: 1 to [`MAX_SOURCE_CHARS`] characters of ASCII
/// letters, digits, `-`, `_`, `.` or `:`.
pub(crate) fn validate_source(source: &str) -> Result<(), ValidationError> {
    let invalid = |rule| ValidationError::new(Field::Source, rule);
    if source.is_empty() {
        return Err(invalid(Rule::Blank));
    }
    if source.len() > MAX_SOURCE_CHARS {
        return Err(invalid(Rule::TooLong {
            max: MAX_SOURCE_CHARS,
            unit: "characters",
        }));
    }
    if !source
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        return Err(invalid(Rule::Malformed {
            expected: "ASCII letters, digits, '-', '_', '.' or ':'",
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owned_name_parses_as_a_borrowed_one() {
        for raw in ["Q1 Leads", "  Q1   Leads ", "\u{a0}Café\u{2003}", "x"] {
            let owned = SegmentName::parse_owned(raw.to_owned()).unwrap();
            assert_eq!(owned, SegmentName::parse(raw).unwrap(), "{raw:?}");
            assert_eq!(owned.as_str(), raw.trim());
        }
        for bad in ["", "   ", "a\u{7}b"] {
            assert_eq!(
                SegmentName::parse_owned(bad.to_owned()).unwrap_err(),
                SegmentName::parse(bad).unwrap_err()
            );
        }
    }

    fn key(s: &str) -> String {
        SegmentName::parse(s).unwrap().key().to_owned()
    }

    #[test]
    fn trims_and_keeps_the_trimmed_text() {
        let n = SegmentName::parse("\u{a0} Q1  Leads \u{2003}").unwrap();
        assert_eq!(n.as_str(), "Q1  Leads");
        assert_eq!(n.to_string(), "Q1  Leads");
    }

    #[test]
    fn key_collapses_whitespace_lowercases_and_normalizes() {
        assert_eq!(key("Q1 Leads"), "q1 leads");
        assert_eq!(key(" q1   leads "), "q1 leads");
        assert_eq!(
            key("Q1\u{a0}\u{2003}Leads"),
            "q1 leads",
            "Unicode whitespace collapses too"
        );
        // "é" precomposed vs "e" + combining acute: one key.
        assert_eq!(key("Caf\u{e9}"), key("Cafe\u{301}"));
        assert_eq!(key("CAF\u{c9}"), "caf\u{e9}");
        assert_eq!(key("ÅNGSTRÖM"), key("a\u{30a}ngstro\u{308}m"));
    }

    #[test]
    fn the_ascii_key_path_agrees_with_the_general_one() {
        // The general rule, as the non-ASCII path applies it.
        let general = |s: &str| collapse_whitespace(s.chars()).to_lowercase();
        let alphabet = [
            b'a', b'Q', b'1', b' ', b'\t', b'\n', 0x0b, 0x0c, b'\r', b'-',
        ];
        let mut names = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = names
                .iter()
                .flat_map(|n| alphabet.iter().map(move |&b| format!("{n}{}", b as char)))
                .collect();
            names.extend(longer);
        }
        // name_key takes trimmed names.
        for name in names.iter().filter(|n| n.trim() == n.as_str()) {
            assert_eq!(name_key(name), general(name), "{name:?}");
        }
    }

    #[test]
    fn name_rules() {
        let rule = |s: &str| SegmentName::parse(s).unwrap_err().rule().clone();
        assert_eq!(rule(""), Rule::Blank);
        assert_eq!(rule(" \t\n "), Rule::Blank);
        assert_eq!(rule("a\u{7}b"), Rule::ControlCharacter);
        assert_eq!(rule("a\nb"), Rule::ControlCharacter);
        assert_eq!(rule("a\u{0}b"), Rule::ControlCharacter);
        assert_eq!(rule("a\u{85}b"), Rule::ControlCharacter, "C1 controls too");
        assert!(
            SegmentName::parse(&"é".repeat(MAX_NAME_CHARS)).is_ok(),
            "the limit is in characters"
        );
        assert_eq!(
            rule(&"x".repeat(MAX_NAME_CHARS + 1)),
            Rule::TooLong {
                max: 255,
                unit: "characters"
            }
        );
        assert!(SegmentName::parse(&format!("  {}  ", "x".repeat(MAX_NAME_CHARS))).is_ok());
    }

    #[test]
    fn description_and_source_rules() {
        assert!(validate_description("").is_ok());
        assert!(validate_description("line one\nline two\ttabbed").is_ok());
        assert!(validate_description(&"é".repeat(MAX_DESCRIPTION_CHARS)).is_ok());
        assert_eq!(
            validate_description(&"x".repeat(MAX_DESCRIPTION_CHARS + 1))
                .unwrap_err()
                .rule(),
            &Rule::TooLong {
                max: 2000,
                unit: "characters"
            }
        );
        assert_eq!(
            validate_description("a\0b").unwrap_err().rule(),
            &Rule::NulCharacter
        );
        assert!(validate_source("api").is_ok());
        assert!(validate_source("crm:import-2024_v1.2").is_ok());
        assert!(validate_source("").is_err());
        assert!(validate_source("has space").is_err());
        assert!(validate_source(&"s".repeat(MAX_SOURCE_CHARS + 1)).is_err());
    }
}
