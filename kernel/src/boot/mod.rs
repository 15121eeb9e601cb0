//! Entry from GRUB and the boot information it hands over.

pub mod entry;
pub mod info;
