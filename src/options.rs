//! Turning TOML values into the text of GRUB's `multiboot2` and `module2` lines.
//!
//! What an option *means* and which values are valid is the kernel's grammar
//! alone: [`crate::config`] hands the finished module line to
//! `tessera_kernel::options`, the parser the kernel runs at boot. This module
//! only converts TOML values (integers, strings) to option text and owns the
//! rule that keeps config values from injecting GRUB script syntax: option
//! values are restricted to a safe character set, and command-line words are
//! quoted for GRUB when they need it. It knows nothing about files or templates.

use std::fmt;

/// Why a value was rejected; the caller adds which VM and which key it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError(pub String);

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(message: impl Into<String>) -> Result<T, SyntaxError> {
    Err(SyntaxError(message.into()))
}

/// A TOML value that may be written either as a number or as a string
/// (`load = 0x100000` and `load = "0x100000"` mean the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberOrText {
    /// A TOML integer.
    Number(i64),
    /// A TOML string.
    Text(String),
}

impl<'de> serde::Deserialize<'de> for NumberOrText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A hand-written visitor rather than `#[serde(untagged)]`, whose error
        // ("did not match any variant") would not say what was expected.
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = NumberOrText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(NumberOrText::Number(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v)
                    .map(NumberOrText::Number)
                    .map_err(|_| E::custom("number too large"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(NumberOrText::Text(v.to_owned()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Characters that GRUB's script parser treats as ordinary in an unquoted word.
///
/// Everything else (whitespace, quotes, `\`, `$`, `;`, `{`, `}`, `|`, `&`, `<`, `>`,
/// `#`, …) has a meaning to GRUB, so option values must avoid it entirely.
fn is_plain_grub_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._-+:,/=@%".contains(c)
}

/// Checks that `value` can stand unquoted as (part of) a GRUB word.
pub fn plain_token(value: &str) -> Result<&str, SyntaxError> {
    if value.is_empty() {
        return err("the value is empty");
    }
    match value.chars().find(|&c| !is_plain_grub_char(c)) {
        None => Ok(value),
        Some(c) => err(format!(
            "{c:?} is not allowed (use only letters, digits and . _ - + : , / = @ %)"
        )),
    }
}

/// A size from TOML as option text: a string as written (the kernel's parser
/// judges it), or a plain number of bytes.
pub fn size_text(value: &NumberOrText) -> Result<String, SyntaxError> {
    match value {
        NumberOrText::Text(text) => plain_token(text).map(str::to_owned),
        NumberOrText::Number(n) if *n > 0 => Ok(n.to_string()),
        NumberOrText::Number(n) => err(format!("{n}: must be a positive size")),
    }
}

/// An address from TOML as option text: a string as written (the kernel's
/// parser judges it), or an integer (TOML allows `0x` integers), written in hex.
pub fn address_text(value: &NumberOrText) -> Result<String, SyntaxError> {
    match value {
        NumberOrText::Text(text) => plain_token(text).map(str::to_owned),
        NumberOrText::Number(n) if *n >= 0 => Ok(format!("{n:#x}")),
        NumberOrText::Number(n) => err(format!("{n}: an address cannot be negative")),
    }
}

/// Any other option from TOML as option text: a string as written, or a
/// non-negative integer in decimal.
pub fn value_text(value: &NumberOrText) -> Result<String, SyntaxError> {
    match value {
        NumberOrText::Text(text) => plain_token(text).map(str::to_owned),
        NumberOrText::Number(n) if *n >= 0 => Ok(n.to_string()),
        NumberOrText::Number(n) => err(format!("{n}: cannot be negative")),
    }
}

/// A list of names from TOML (`modules = ["initfs", "font"]`) as option text:
/// the names joined by commas. Each must be a plain GRUB word without a comma
/// of its own (a comma inside one name would silently make it two); whether it
/// is a good name is the kernel's parser's call. An empty list is refused
/// rather than dropped: the key was written, so something was meant.
pub fn list_text(values: &[String]) -> Result<String, SyntaxError> {
    if values.is_empty() {
        return err("the list is empty (leave the key out for none)");
    }
    for value in values {
        plain_token(value)
            .map_err(|SyntaxError(reason)| SyntaxError(format!("{value:?}: {reason}")))?;
        if value.contains(',') {
            return err(format!("{value:?}: a name cannot contain ','"));
        }
    }
    Ok(values.join(","))
}

/// Splits a command line into words for a GRUB line.
///
/// GRUB re-joins the words with single spaces, and it backslash-escapes quotes and
/// backslashes when it builds the command line it hands to the kernel, so those
/// characters could not reach the guest as written; they are rejected instead of
/// being silently changed. Runs of whitespace collapse to one space.
pub fn command_line_words(value: &str) -> Result<Vec<String>, SyntaxError> {
    if let Some(c) = value
        .chars()
        .find(|&c| matches!(c, '"' | '\'' | '\\') || (c.is_control() && !c.is_whitespace()))
    {
        return err(format!(
            "{c:?} is not allowed in a command line (GRUB would escape it)"
        ));
    }
    Ok(value.split_whitespace().map(str::to_owned).collect())
}

/// Writes one command-line word as a GRUB word: bare when every character is
/// plain, otherwise in single quotes, inside which GRUB treats everything literally.
pub fn grub_word(word: &str) -> String {
    debug_assert!(!word.contains('\''), "command_line_words rejects quotes");
    if !word.is_empty() && word.chars().all(is_plain_grub_char) {
        word.to_owned()
    } else {
        format!("'{word}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_numbers_become_option_text() {
        assert_eq!(size_text(&NumberOrText::Number(65536)), Ok("65536".into()));
        assert!(size_text(&NumberOrText::Number(0)).is_err());
        assert_eq!(
            size_text(&NumberOrText::Text("8MiB".into())),
            Ok("8MiB".into())
        );
        assert_eq!(
            address_text(&NumberOrText::Number(0x10_0000)),
            Ok("0x100000".into())
        );
        assert!(address_text(&NumberOrText::Number(-1)).is_err());
        assert_eq!(value_text(&NumberOrText::Number(1)), Ok("1".into()));
        assert!(value_text(&NumberOrText::Number(-1)).is_err());
    }

    #[test]
    fn text_values_must_be_plain_grub_words() {
        assert!(size_text(&NumberOrText::Text("1M; reboot".into())).is_err());
        assert!(address_text(&NumberOrText::Text("".into())).is_err());
        assert!(value_text(&NumberOrText::Text("0 1".into())).is_err());
    }

    #[test]
    fn plain_tokens_reject_grub_syntax() {
        assert!(plain_token("0-3,5").is_ok());
        for bad in [
            "", "a b", "a;b", "a\"b", "a'b", "$x", "{x}", "a|b", "a&b", "#x", "a\\b", "a\nb",
        ] {
            assert!(plain_token(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn lists_become_comma_separated_names() {
        let list = |names: &[&str]| -> Vec<String> { names.iter().map(|&n| n.into()).collect() };
        assert_eq!(
            list_text(&list(&["initfs", "font"])),
            Ok("initfs,font".into())
        );
        assert_eq!(list_text(&list(&["one"])), Ok("one".into()));
        for bad in [&[][..], &["a b"], &["a,b"], &[""], &["ok", "x;y"]] {
            assert!(list_text(&list(bad)).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn command_lines_split_on_whitespace() {
        assert_eq!(
            command_line_words("  console=ttyS0   quiet\tinit=/bin/sh "),
            Ok(vec![
                "console=ttyS0".into(),
                "quiet".into(),
                "init=/bin/sh".into()
            ])
        );
        assert_eq!(command_line_words(""), Ok(vec![]));
    }

    #[test]
    fn command_lines_reject_what_grub_would_escape() {
        for bad in ["a=\"b c\"", "it's", "a\\b", "a\u{1b}[0m"] {
            assert!(command_line_words(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn grub_words_quote_only_when_needed() {
        assert_eq!(grub_word("console=ttyS0"), "console=ttyS0");
        assert_eq!(grub_word("a$b;c"), "'a$b;c'");
        assert_eq!(grub_word("{x}"), "'{x}'");
        assert_eq!(grub_word("#comment"), "'#comment'");
    }
}
