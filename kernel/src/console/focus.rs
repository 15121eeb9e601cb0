//! Who gets the operator's keystrokes: the focus state machine of the
//! interactive console.
//!
//! Every byte that arrives on the host's COM1 goes through [`Focus::feed`],
//! which says where it goes. The targets are the VMs, by index, and the
//! tessera shell; exactly one has the focus. This module only decides: it
//! neither touches the UART nor knows what a VM is, so the caller delivers
//! the bytes and prints the line that names a new focus.
//!
//! The keys, after Xen's serial console:
//!
//! - **Ctrl-A three times in a row** moves the focus to the next target:
//!   VM 0, VM 1, ..., VM n-1, the shell, VM 0 again. No VM is skipped: a
//!   stopped VM still takes the focus (its bytes then wait in its queue or
//!   are dropped and counted there), so the cycle is the same every time and
//!   the operator can count presses. The three Ctrl-As are consumed.
//! - **Ctrl-A once or twice, then another key**: the Ctrl-As and the key go
//!   to the focused target as typed, so a guest program that uses Ctrl-A as a
//!   prefix (screen, Emacs) still gets `Ctrl-A x`. They are held back until
//!   the next key shows they were not a switch.
//! - **Ctrl-A, then `a`** (lowercase) sends the Ctrl-A alone, without the
//!   `a`, as in screen and QEMU; `Ctrl-A Ctrl-A a` sends two. This is the
//!   way to give a guest a Ctrl-A that nothing follows (readline's
//!   beginning-of-line), or three in a row (`Ctrl-A a` three times).
//!
//! Ctrl-As held at the end of the input stay held: there is no timeout,
//! because the console has no clock of its own. [`Focus::flush`] hands them
//! over if the caller wants one.

/// The escape key: Ctrl-A.
pub const CTRL_A: u8 = 0x01;

/// How many Ctrl-As in a row switch the focus (Xen's convention).
pub const SWITCH_PRESSES: usize = 3;

/// The key that, after one or two Ctrl-As, sends them without itself.
pub const LITERAL_KEY: u8 = b'a';

/// Who has the focus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The VM with this index (0-based, in boot order).
    Vm(usize),
    /// tessera's own shell.
    Shell,
}

/// The bytes of one delivery: at most two held Ctrl-As and the key after
/// them, kept inline so that feeding a byte never allocates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keys {
    bytes: [u8; SWITCH_PRESSES],
    length: u8,
}

impl Keys {
    fn held(count: usize) -> Keys {
        debug_assert!(count < SWITCH_PRESSES);
        Keys {
            bytes: [CTRL_A; SWITCH_PRESSES],
            length: count as u8,
        }
    }

    fn held_then(count: usize, byte: u8) -> Keys {
        let mut keys = Keys::held(count);
        keys.bytes[count] = byte;
        keys.length += 1;
        keys
    }

    /// The bytes, in the order they were typed.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.length)]
    }
}

/// What the caller does with a byte it fed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FocusOutput {
    /// Give these bytes to this target (the one with the focus).
    Deliver {
        /// Where the bytes go.
        target: Target,
        /// The bytes, possibly with held Ctrl-As before the one fed in.
        keys: Keys,
    },
    /// The focus moved to this target; the caller prints a line naming it.
    Switched(Target),
    /// The byte was a Ctrl-A, held until the next byte says what it meant.
    Held,
}

/// The focus and the Ctrl-As typed so far.
#[derive(Clone, Debug)]
pub struct Focus {
    vm_count: usize,
    target: Target,
    held: usize,
}

impl Focus {
    /// A focus cycling over `vm_count` VMs and the shell, starting at the
    /// shell, so that nothing typed before the operator chooses reaches a
    /// guest.
    pub fn new(vm_count: usize) -> Focus {
        Focus {
            vm_count,
            target: Target::Shell,
            held: 0,
        }
    }

    /// Who has the focus.
    pub fn target(&self) -> Target {
        self.target
    }

    /// How many VMs the cycle goes through.
    pub fn vm_count(&self) -> usize {
        self.vm_count
    }

    /// How many Ctrl-As are held (0, 1 or 2).
    pub fn held(&self) -> usize {
        self.held
    }

    /// Moves the focus directly (the shell's `focus <vm>`); false, and no
    /// change, for a VM index outside the cycle. Held Ctrl-As are forgotten:
    /// they were typed for the old target.
    pub fn set_target(&mut self, target: Target) -> bool {
        if let Target::Vm(index) = target {
            if index >= self.vm_count {
                return false;
            }
        }
        self.target = target;
        self.held = 0;
        true
    }

    /// Takes one byte from the host console and says where it goes.
    pub fn feed(&mut self, byte: u8) -> FocusOutput {
        if byte == CTRL_A {
            self.held += 1;
            if self.held < SWITCH_PRESSES {
                return FocusOutput::Held;
            }
            self.held = 0;
            self.target = self.next_target();
            return FocusOutput::Switched(self.target);
        }
        let held = core::mem::take(&mut self.held);
        let keys = if held > 0 && byte == LITERAL_KEY {
            Keys::held(held)
        } else {
            Keys::held_then(held, byte)
        };
        FocusOutput::Deliver {
            target: self.target,
            keys,
        }
    }

    /// Hands over the held Ctrl-As, if any, as typed (for a caller that
    /// gives up waiting for the next key).
    pub fn flush(&mut self) -> Option<(Target, Keys)> {
        let held = core::mem::take(&mut self.held);
        (held > 0).then(|| (self.target, Keys::held(held)))
    }

    fn next_target(&self) -> Target {
        match self.target {
            Target::Vm(index) if index + 1 < self.vm_count => Target::Vm(index + 1),
            Target::Vm(_) => Target::Shell,
            Target::Shell if self.vm_count > 0 => Target::Vm(0),
            Target::Shell => Target::Shell,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Feeds `input` and records, per output, (target, bytes) for deliveries
    /// and (target, "switch") for switches; held bytes record nothing.
    fn run(focus: &mut Focus, input: &[u8]) -> Vec<(Target, Vec<u8>)> {
        let mut outputs = Vec::new();
        for &byte in input {
            match focus.feed(byte) {
                FocusOutput::Deliver { target, keys } => {
                    outputs.push((target, keys.as_slice().to_vec()))
                }
                FocusOutput::Switched(target) => outputs.push((target, b"switch".to_vec())),
                FocusOutput::Held => {}
            }
        }
        outputs
    }

    fn at_vm(vm_count: usize, index: usize) -> Focus {
        let mut focus = Focus::new(vm_count);
        assert!(focus.set_target(Target::Vm(index)));
        focus
    }

    #[test]
    fn starts_at_the_shell_and_delivers_plain_bytes_there() {
        let mut focus = Focus::new(2);
        assert_eq!(focus.target(), Target::Shell);
        assert_eq!(
            run(&mut focus, b"ls"),
            [
                (Target::Shell, b"l".to_vec()),
                (Target::Shell, b"s".to_vec())
            ]
        );
    }

    #[test]
    fn three_ctrl_as_cycle_through_every_vm_then_the_shell() {
        let mut focus = Focus::new(3);
        let mut seen = Vec::new();
        for _ in 0..5 {
            assert_eq!(focus.feed(CTRL_A), FocusOutput::Held);
            assert_eq!(focus.feed(CTRL_A), FocusOutput::Held);
            match focus.feed(CTRL_A) {
                FocusOutput::Switched(target) => seen.push(target),
                other => panic!("third Ctrl-A gave {other:?}"),
            }
        }
        assert_eq!(
            seen,
            [
                Target::Vm(0),
                Target::Vm(1),
                Target::Vm(2),
                Target::Shell,
                Target::Vm(0)
            ]
        );
    }

    #[test]
    fn without_vms_the_switch_stays_at_the_shell() {
        let mut focus = Focus::new(0);
        assert_eq!(
            run(&mut focus, &[CTRL_A; 3]),
            [(Target::Shell, b"switch".to_vec())]
        );
        assert_eq!(focus.target(), Target::Shell);
    }

    #[test]
    fn one_ctrl_a_then_a_key_delivers_both_as_typed() {
        let mut focus = at_vm(2, 1);
        assert_eq!(
            run(&mut focus, b"\x01x"),
            [(Target::Vm(1), b"\x01x".to_vec())]
        );
        assert_eq!(focus.held(), 0);
    }

    #[test]
    fn two_ctrl_as_then_a_key_delivers_all_three_and_does_not_switch() {
        let mut focus = at_vm(2, 0);
        assert_eq!(
            run(&mut focus, b"\x01\x01x"),
            [(Target::Vm(0), b"\x01\x01x".to_vec())]
        );
        assert_eq!(focus.target(), Target::Vm(0));
        // The count starts over: two more Ctrl-As and a key do not switch.
        assert_eq!(
            run(&mut focus, b"\x01\x01y"),
            [(Target::Vm(0), b"\x01\x01y".to_vec())]
        );
    }

    #[test]
    fn ctrl_a_then_a_sends_a_lone_ctrl_a() {
        let mut focus = at_vm(1, 0);
        assert_eq!(
            run(&mut focus, b"\x01a"),
            [(Target::Vm(0), b"\x01".to_vec())]
        );
        assert_eq!(
            run(&mut focus, b"\x01\x01a"),
            [(Target::Vm(0), b"\x01\x01".to_vec())]
        );
        // Three literal Ctrl-As in a row reach the guest without a switch.
        let delivered: Vec<u8> = run(&mut focus, b"\x01a\x01a\x01a")
            .into_iter()
            .flat_map(|(target, bytes)| {
                assert_eq!(target, Target::Vm(0));
                bytes
            })
            .collect();
        assert_eq!(delivered, [CTRL_A; 3]);
        // Only after a Ctrl-A is `a` special; uppercase never is.
        assert_eq!(run(&mut focus, b"a"), [(Target::Vm(0), b"a".to_vec())]);
        assert_eq!(
            run(&mut focus, b"\x01A"),
            [(Target::Vm(0), b"\x01A".to_vec())]
        );
    }

    #[test]
    fn a_fourth_ctrl_a_is_held_for_the_new_target() {
        let mut focus = Focus::new(2);
        assert_eq!(
            run(&mut focus, b"\x01\x01\x01\x01z"),
            [
                (Target::Vm(0), b"switch".to_vec()),
                (Target::Vm(0), b"\x01z".to_vec())
            ]
        );
    }

    #[test]
    fn six_ctrl_as_switch_twice() {
        let mut focus = Focus::new(2);
        run(&mut focus, &[CTRL_A; 6]);
        assert_eq!(focus.target(), Target::Vm(1));
        assert_eq!(focus.held(), 0);
    }

    #[test]
    fn ctrl_a_at_the_end_stays_held_until_flushed() {
        let mut focus = at_vm(3, 2);
        assert_eq!(run(&mut focus, b"ok\x01\x01").len(), 2);
        assert_eq!(focus.held(), 2);
        let (target, keys) = focus.flush().expect("two Ctrl-As held");
        assert_eq!(target, Target::Vm(2));
        assert_eq!(keys.as_slice(), b"\x01\x01");
        assert_eq!(focus.flush(), None);
        // Flushing ended the run: one more Ctrl-A does not switch.
        assert_eq!(focus.feed(CTRL_A), FocusOutput::Held);
    }

    #[test]
    fn set_target_checks_the_index_and_forgets_held_ctrl_as() {
        let mut focus = Focus::new(2);
        assert!(!focus.set_target(Target::Vm(2)));
        assert_eq!(focus.target(), Target::Shell);
        focus.feed(CTRL_A);
        assert!(focus.set_target(Target::Vm(1)));
        assert_eq!(focus.held(), 0);
        assert_eq!(run(&mut focus, b"q"), [(Target::Vm(1), b"q".to_vec())]);
        assert!(focus.set_target(Target::Shell));
    }

    #[test]
    fn every_byte_value_but_ctrl_a_passes_through_unchanged() {
        let mut focus = at_vm(1, 0);
        for byte in (0..=u8::MAX).filter(|&byte| byte != CTRL_A) {
            assert_eq!(run(&mut focus, &[byte]), [(Target::Vm(0), [byte].to_vec())]);
        }
    }
}
