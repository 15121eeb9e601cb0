//! Syntax of the values that end up on GRUB's `multiboot2` and `module2` lines.
//!
//! The kernel parses and re-validates every option itself; this module exists so
//! that a typo in a VM config is reported on the host, with the VM's name, before
//! an ISO is built and booted. It also owns the rule that keeps config values from
//! injecting GRUB script syntax: option values are restricted to a safe character
//! set, and command-line words are quoted for GRUB when they need it.
//! It knows nothing about files, TOML or GRUB templates.

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

/// A VM name: also used as the image's file name in the ISO, so it is kept to a
/// portable file-name alphabet.
pub fn vm_name(value: &str) -> Result<&str, SyntaxError> {
    let mut chars = value.chars();
    match chars.next() {
        None => return err("the name is empty"),
        Some(first) if !first.is_ascii_alphanumeric() => {
            return err(format!(
                "a name must start with a letter or digit, not {first:?}"
            ))
        }
        Some(_) => {}
    }
    match value
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
    {
        None => Ok(value),
        Some(c) => err(format!(
            "{c:?} is not allowed in a name (use letters, digits, '.', '_' and '-')"
        )),
    }
}

/// A memory size: decimal digits with an optional `K`, `M` or `G` suffix (binary units).
/// Returns the size in bytes; the text itself is passed to the kernel unchanged.
pub fn memory_size(value: &str) -> Result<u64, SyntaxError> {
    let (digits, multiplier) = match value.as_bytes().last() {
        Some(b'K') => (&value[..value.len() - 1], 1u64 << 10),
        Some(b'M') => (&value[..value.len() - 1], 1u64 << 20),
        Some(b'G') => (&value[..value.len() - 1], 1u64 << 30),
        _ => (value, 1),
    };
    let hint = "expected a number with an optional K, M or G suffix, e.g. \"64M\"";
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return err(format!("{value:?}: {hint}"));
    }
    let number: u64 = digits
        .parse()
        .or_else(|_| err(format!("{value:?}: too large")))?;
    let bytes = number
        .checked_mul(multiplier)
        .ok_or_else(|| SyntaxError(format!("{value:?}: too large")))?;
    if bytes == 0 {
        return err(format!("{value:?}: must not be zero"));
    }
    Ok(bytes)
}

/// A memory size from TOML: a string as in [`memory_size`], or a plain number of bytes.
/// Returns the text to put on the module line.
pub fn memory_size_value(value: &NumberOrText) -> Result<String, SyntaxError> {
    match value {
        NumberOrText::Text(text) => memory_size(text).map(|_| text.clone()),
        NumberOrText::Number(n) if *n > 0 => Ok(n.to_string()),
        NumberOrText::Number(n) => err(format!("{n}: must be a positive size")),
    }
}

/// A guest-physical address: `0x` followed by hex digits, or decimal digits; fits 64 bits.
pub fn address(value: &str) -> Result<u64, SyntaxError> {
    let hint = "expected a hex (0x…) or decimal address";
    let parsed = if let Some(hex) = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return err(format!("{value:?}: {hint}"));
        }
        u64::from_str_radix(hex, 16)
    } else {
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return err(format!("{value:?}: {hint}"));
        }
        value.parse()
    };
    parsed.or_else(|_| err(format!("{value:?}: does not fit in 64 bits")))
}

/// An address from TOML: a string as in [`address`], or an integer (TOML allows
/// `0x` integers). Returns the text to put on the module line.
pub fn address_value(value: &NumberOrText) -> Result<String, SyntaxError> {
    match value {
        NumberOrText::Text(text) => address(text).map(|_| text.clone()),
        NumberOrText::Number(n) if *n >= 0 => Ok(format!("{n:#x}")),
        NumberOrText::Number(n) => err(format!("{n}: an address cannot be negative")),
    }
}

/// The `cpu=` value. Its syntax belongs to the kernel's scheduler, so the host only
/// keeps it GRUB-safe: a non-negative number or a plain token.
pub fn cpu_value(value: &NumberOrText) -> Result<String, SyntaxError> {
    match value {
        NumberOrText::Text(text) => plain_token(text).map(str::to_owned),
        NumberOrText::Number(n) if *n >= 0 => Ok(n.to_string()),
        NumberOrText::Number(n) => err(format!("{n}: a CPU number cannot be negative")),
    }
}

/// Declares an option whose value is one of a fixed set of keywords.
macro_rules! keyword_option {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every accepted spelling, in documentation order.
            pub const KEYWORDS: &'static [&'static str] = &[$($text),+];

            /// The keyword as written on the module line.
            pub fn keyword(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            /// Parses the keyword, naming the accepted ones on error.
            pub fn parse(value: &str) -> Result<Self, SyntaxError> {
                match value {
                    $($text => Ok(Self::$variant),)+
                    _ => err(format!(
                        "{value:?}: expected one of {}",
                        Self::KEYWORDS.join(", ")
                    )),
                }
            }
        }
    };
}

keyword_option! {
    /// `restart=`: what happens when a VM stops.
    Restart {
        /// Leave a stopped VM stopped.
        Never = "never",
        /// Restart the VM whenever it stops.
        Always = "always",
        /// Restart the VM only after a crash.
        OnCrash = "on-crash",
    }
}

keyword_option! {
    /// `format=`: how the image is interpreted.
    Format {
        /// Detect from the image's bytes.
        Auto = "auto",
        /// A flat binary.
        Raw = "raw",
        /// An ELF executable.
        Elf = "elf",
        /// A Multiboot kernel.
        Multiboot = "multiboot",
        /// A Linux bzImage.
        Linux = "linux",
    }
}

keyword_option! {
    /// `mode=`: the CPU mode a raw image starts in.
    Mode {
        /// 16-bit real mode, like a boot sector.
        Real = "real",
        /// 32-bit protected mode.
        Protected = "protected",
        /// 64-bit long mode.
        Long = "long",
    }
}

keyword_option! {
    /// `role=`: whether a module is run or only handed to other VMs.
    Role {
        /// A virtual machine.
        Vm = "vm",
        /// Data (an initrd, say) that VMs refer to by name.
        Data = "data",
    }
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
    fn memory_sizes_take_binary_suffixes() {
        assert_eq!(memory_size("4096"), Ok(4096));
        assert_eq!(memory_size("1K"), Ok(1024));
        assert_eq!(memory_size("2M"), Ok(2 << 20));
        assert_eq!(memory_size("3G"), Ok(3 << 30));
    }

    #[test]
    fn memory_sizes_reject_bad_syntax() {
        for bad in ["", "M", "1m", "1MB", "1.5M", "-1M", "0", "0M", " 1M", "1T"] {
            assert!(memory_size(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(memory_size("99999999999999999999G").is_err());
        assert!(
            memory_size("17179869184G").is_err(),
            "overflow must be caught"
        );
    }

    #[test]
    fn memory_size_from_toml_number_is_bytes() {
        assert_eq!(
            memory_size_value(&NumberOrText::Number(65536)),
            Ok("65536".into())
        );
        assert!(memory_size_value(&NumberOrText::Number(0)).is_err());
        assert_eq!(
            memory_size_value(&NumberOrText::Text("8M".into())),
            Ok("8M".into())
        );
    }

    #[test]
    fn addresses_are_hex_or_decimal() {
        assert_eq!(address("0x7c00"), Ok(0x7c00));
        assert_eq!(address("0X7C00"), Ok(0x7c00));
        assert_eq!(address("31744"), Ok(31744));
        assert_eq!(address("0xffffffffffffffff"), Ok(u64::MAX));
        for bad in [
            "",
            "0x",
            "7c00",
            "0x7g",
            "1_000",
            "0x1_0",
            "-5",
            "0x10000000000000000",
        ] {
            assert!(address(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn toml_integer_addresses_render_as_hex() {
        assert_eq!(
            address_value(&NumberOrText::Number(0x10_0000)),
            Ok("0x100000".into())
        );
        assert!(address_value(&NumberOrText::Number(-1)).is_err());
    }

    #[test]
    fn keywords_round_trip_and_name_alternatives() {
        for &keyword in Restart::KEYWORDS {
            assert_eq!(Restart::parse(keyword).unwrap().keyword(), keyword);
        }
        assert_eq!(Format::parse("multiboot"), Ok(Format::Multiboot));
        assert_eq!(Mode::parse("long"), Ok(Mode::Long));
        assert_eq!(Role::parse("data"), Ok(Role::Data));
        let message = Restart::parse("sometimes").unwrap_err().0;
        assert!(message.contains("never, always, on-crash"), "{message}");
        assert!(Format::parse("ELF").is_err(), "keywords are case-sensitive");
    }

    #[test]
    fn names_are_file_name_safe() {
        assert!(vm_name("hello-1.x_y").is_ok());
        for bad in ["", "-x", ".hidden", "a b", "a/b", "a;b", "a'b", "né"] {
            assert!(vm_name(bad).is_err(), "{bad:?} was accepted");
        }
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
