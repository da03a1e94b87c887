//! Person ids (PIDs).

use smol_str::SmolStr;
use std::fmt;
use std::str::FromStr;

use crate::domain::limits::MAX_PID_HASH_CHARS;
use crate::error::{Field, Rule, ValidationError};

/// A well-formed person id: `p-` followed by 1 to [`MAX_PID_HASH_CHARS`]
/// characters of `[0-9a-z]`, as documented ("PIDs follow the format `p-{hash}`").
///
/// Clones are cheap: a PID of up to 23 bytes (the documented
/// `p-a1b2c3d4e5f6` form is 14) is kept inline, with no allocation; a
/// longer one in a shared string.
///
/// In member operations a malformed PID is not an error: it is reported in
/// `invalid_pids` and skipped. `Pid::parse` is for hosts that want the check
/// on its own.
///
/// ```
/// use segments_engine::Pid;
/// assert!(Pid::parse("p-a1b2c3d4e5f6").is_ok());
/// assert!(Pid::parse("p-bad!").is_err());
/// assert!(Pid::parse("P-A1B2").is_err(), "lowercase only");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "String", into = "String"))]
pub struct Pid(SmolStr);

impl Pid {
    /// Checks the form of `s` and wraps it.
    ///
    /// # Errors
    /// [`ValidationError`] on field `minerva_pids` when `s` is not `p-`
    /// followed by 1–64 of `[0-9a-z]`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if is_well_formed(s) {
            Ok(Self::new_unchecked(s))
        } else {
            Err(ValidationError::new(
                Field::MinervaPids,
                Rule::Malformed {
                    expected: "a PID of the form p-{hash}, hash 1 to 64 of [0-9a-z]",
                },
            ))
        }
    }

    /// Wraps text already checked with [`is_well_formed`].
    pub(crate) fn new_unchecked(s: &str) -> Self {
        debug_assert!(is_well_formed(s));
        Self(SmolStr::new(s))
    }

    /// The PID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `s` is a well-formed PID, without allocating.
pub fn is_well_formed(s: &str) -> bool {
    match s.as_bytes() {
        [b'p', b'-', hash @ ..] => {
            // Every byte checked, with no early exit: a loop the compiler
            // can unroll and vectorize (PIDs are short, and most are
            // well-formed).
            !hash.is_empty()
                && hash.len() <= MAX_PID_HASH_CHARS
                && hash.iter().fold(true, |ok, b| {
                    ok & (b.is_ascii_digit() | b.is_ascii_lowercase())
                })
        }
        _ => false,
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pid").field(&self.0.as_str()).finish()
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl FromStr for Pid {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Pid {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Pid> for String {
    fn from(pid: Pid) -> Self {
        pid.0.into()
    }
}

impl AsRef<str> for Pid {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Pid {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_form() {
        for ok in [
            "p-a1b2c3d4e5f6",
            "p-x9y8z7w6v5u4",
            "p-0",
            "p-ceef1fd768e389abd4d33fdd901a5964",
        ] {
            assert!(is_well_formed(ok), "{ok} is well formed");
        }
        assert!(is_well_formed(&format!("p-{}", "a".repeat(64))));
        for bad in [
            "", "p", "p-", "p-bad!", "P-abc", "p-ABC", "h-abc", "p_abc", " p-abc", "p-abc ", "p-é",
            "pp-abc",
        ] {
            assert!(!is_well_formed(bad), "{bad:?} is malformed");
        }
        assert!(!is_well_formed(&format!("p-{}", "a".repeat(65))));
        assert_eq!(Pid::parse("p-abc").unwrap().as_str(), "p-abc");
        for len in [1, 21, 22, 64] {
            let text = format!("p-{}", "7".repeat(len));
            assert_eq!(
                Pid::parse(&text).unwrap().as_str(),
                text,
                "{len} characters"
            );
        }
        assert_eq!(Pid::parse("p-").unwrap_err().field(), Field::MinervaPids);
        // Every byte value, first, inside and last in the hash (the bytes
        // above 0x7f alone are not UTF-8: a character of them is checked
        // below).
        for b in 0..=255u8 {
            let ok = b.is_ascii_digit() || b.is_ascii_lowercase();
            for bytes in [
                vec![b'p', b'-', b],
                vec![b'p', b'-', b'a', b, b'1'],
                vec![b'p', b'-', b'0', b],
            ] {
                if let Ok(text) = std::str::from_utf8(&bytes) {
                    assert_eq!(is_well_formed(text), ok, "{text:?}");
                }
            }
        }
        for text in ["p-aé1", "p-é", "p-1\u{2003}", "p-a\u{0}"] {
            assert!(!is_well_formed(text), "{text:?}");
        }
    }
}
