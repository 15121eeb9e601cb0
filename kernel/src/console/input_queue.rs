//! A bounded byte queue between the host console and one VM's virtual
//! 16550: keystrokes wait here until the guest's receive FIFO has room.
//!
//! The host UART cannot be told to wait, so a queue that is full drops the
//! newest bytes and counts them, rather than growing: a guest that never
//! reads its serial port must not be able to take the hypervisor's memory.
//! The storage is a fixed array (a ring), so pushing and draining never
//! allocate.
//!
//! Draining is an offer: [`InputQueue::offer`] shows the queued bytes to a
//! receiver (such as `Serial16550::receive_bytes`) that says how many it
//! accepted, and exactly those leave the queue; the rest stay, in order, for
//! the next offer.

/// A FIFO of at most `CAPACITY` bytes with a count of the bytes it dropped.
#[derive(Clone, Debug)]
pub struct InputQueue<const CAPACITY: usize> {
    bytes: [u8; CAPACITY],
    /// Index of the oldest byte.
    head: usize,
    length: usize,
    dropped: u64,
}

impl<const CAPACITY: usize> Default for InputQueue<CAPACITY> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const CAPACITY: usize> InputQueue<CAPACITY> {
    /// An empty queue.
    pub const fn new() -> Self {
        InputQueue {
            bytes: [0; CAPACITY],
            head: 0,
            length: 0,
            dropped: 0,
        }
    }

    /// How many bytes it holds at most.
    pub const fn capacity(&self) -> usize {
        CAPACITY
    }

    /// How many bytes are queued.
    pub fn len(&self) -> usize {
        self.length
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// Whether another byte would be dropped.
    pub fn is_full(&self) -> bool {
        self.length == CAPACITY
    }

    /// How many bytes were dropped because the queue was full, since it was
    /// made (cleared queues keep counting: the count is for the operator).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Queues one byte; false, and the byte counted as dropped, when full.
    pub fn push(&mut self, byte: u8) -> bool {
        if self.is_full() {
            self.dropped += 1;
            return false;
        }
        let tail = (self.head + self.length) % CAPACITY;
        self.bytes[tail] = byte;
        self.length += 1;
        true
    }

    /// Queues as many of `bytes` as fit, oldest first; returns how many were
    /// taken. The rest are dropped and counted, so the caller need not (and
    /// must not) count them again.
    pub fn push_slice(&mut self, bytes: &[u8]) -> usize {
        let taken = bytes.len().min(CAPACITY - self.length);
        for &byte in &bytes[..taken] {
            let tail = (self.head + self.length) % CAPACITY;
            self.bytes[tail] = byte;
            self.length += 1;
        }
        self.dropped += (bytes.len() - taken) as u64;
        taken
    }

    /// Takes the oldest byte.
    pub fn pop(&mut self) -> Option<u8> {
        if self.is_empty() {
            return None;
        }
        let byte = self.bytes[self.head];
        self.consume(1);
        Some(byte)
    }

    /// The queued bytes in order, as two slices because the ring may wrap
    /// (the second is empty when it does not).
    pub fn as_slices(&self) -> (&[u8], &[u8]) {
        let first_end = (self.head + self.length).min(CAPACITY);
        let wrapped = self.head + self.length - first_end;
        (&self.bytes[self.head..first_end], &self.bytes[..wrapped])
    }

    /// Removes the `count` oldest bytes (at most all of them); for a caller
    /// that copied them out of [`Self::as_slices`].
    pub fn consume(&mut self, count: usize) {
        let count = count.min(self.length);
        self.length -= count;
        // An empty queue restarts at 0, so the next offer is one slice.
        self.head = if self.length == 0 {
            0
        } else {
            (self.head + count) % CAPACITY
        };
    }

    /// Offers the queued bytes to `receive`, which returns how many of the
    /// slice it was given it accepted (from its start); exactly those are
    /// removed. `receive` is called once per contiguous part (at most twice)
    /// and not again after it accepts less than it was offered. Returns how
    /// many bytes left the queue in all.
    pub fn offer(&mut self, mut receive: impl FnMut(&[u8]) -> usize) -> usize {
        let mut total = 0;
        while !self.is_empty() {
            let (first, _) = self.as_slices();
            let offered = first.len();
            // A receiver that claims more than it was given is a bug in the
            // caller; never let it remove bytes it did not see.
            let accepted = receive(first).min(offered);
            self.consume(accepted);
            total += accepted;
            if accepted < offered {
                break;
            }
        }
        total
    }

    /// Empties the queue (a VM restarted); the dropped count stays.
    pub fn clear(&mut self) {
        self.head = 0;
        self.length = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn contents<const N: usize>(queue: &InputQueue<N>) -> Vec<u8> {
        let (first, second) = queue.as_slices();
        [first, second].concat()
    }

    #[test]
    fn bytes_come_out_in_the_order_they_went_in() {
        let mut queue = InputQueue::<4>::new();
        assert!(queue.is_empty());
        assert!(queue.push(b'a'));
        assert_eq!(queue.push_slice(b"bc"), 2);
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.pop(), Some(b'a'));
        assert_eq!(queue.pop(), Some(b'b'));
        assert_eq!(queue.pop(), Some(b'c'));
        assert_eq!(queue.pop(), None);
        assert_eq!(queue.dropped(), 0);
    }

    #[test]
    fn a_full_queue_drops_the_newest_bytes_and_counts_them() {
        let mut queue = InputQueue::<4>::new();
        assert_eq!(queue.push_slice(b"abcdef"), 4);
        assert!(queue.is_full());
        assert_eq!(queue.dropped(), 2);
        assert!(!queue.push(b'g'));
        assert_eq!(queue.push_slice(b"hi"), 0);
        assert_eq!(queue.dropped(), 5);
        assert_eq!(contents(&queue), b"abcd");
        // An empty slice is neither taken nor dropped.
        assert_eq!(queue.push_slice(b""), 0);
        assert_eq!(queue.dropped(), 5);
    }

    #[test]
    fn the_ring_wraps_and_shows_two_slices() {
        let mut queue = InputQueue::<4>::new();
        queue.push_slice(b"abc");
        queue.consume(2);
        assert_eq!(queue.push_slice(b"def"), 3);
        assert_eq!(queue.as_slices(), (&b"cd"[..], &b"ef"[..]));
        assert_eq!(contents(&queue), b"cdef");
        assert_eq!(queue.push_slice(b"x"), 0);
        assert_eq!(queue.dropped(), 1);
    }

    #[test]
    fn offer_removes_exactly_what_was_accepted() {
        let mut queue = InputQueue::<8>::new();
        queue.push_slice(b"hello");
        let mut received = Vec::new();
        let taken = queue.offer(|bytes| {
            received.extend_from_slice(&bytes[..2]);
            2
        });
        assert_eq!(taken, 2);
        assert_eq!(received, b"he");
        assert_eq!(contents(&queue), b"llo");
        // Refused entirely: nothing moves, and the receiver is asked once.
        let mut calls = 0;
        assert_eq!(
            queue.offer(|_| {
                calls += 1;
                0
            }),
            0
        );
        assert_eq!(calls, 1);
        assert_eq!(queue.len(), 3);
    }

    #[test]
    fn offer_hands_over_both_parts_of_a_wrapped_ring() {
        let mut queue = InputQueue::<4>::new();
        queue.push_slice(b"abc");
        queue.consume(3);
        // After emptying, the ring restarts at 0: fill it so it wraps.
        queue.push_slice(b"wx");
        queue.consume(1);
        queue.push_slice(b"yz1");
        assert_eq!(queue.as_slices(), (&b"xyz"[..], &b"1"[..]));
        let mut parts = Vec::new();
        assert_eq!(
            queue.offer(|bytes| {
                parts.push(bytes.to_vec());
                bytes.len()
            }),
            4
        );
        assert_eq!(parts, [b"xyz".to_vec(), b"1".to_vec()]);
        assert!(queue.is_empty());
    }

    #[test]
    fn offer_stops_at_the_first_short_acceptance() {
        let mut queue = InputQueue::<4>::new();
        queue.push_slice(b"ab");
        queue.consume(1);
        queue.push_slice(b"cde");
        // Parts "bcd" and "e"; the receiver takes two of the first.
        let mut calls = 0;
        let taken = queue.offer(|_| {
            calls += 1;
            2
        });
        assert_eq!((taken, calls), (2, 1));
        assert_eq!(contents(&queue), b"de");
    }

    #[test]
    fn a_receiver_claiming_too_much_removes_only_what_it_saw() {
        let mut queue = InputQueue::<4>::new();
        queue.push_slice(b"abc");
        assert_eq!(queue.offer(|_| 100), 3);
        assert!(queue.is_empty());
    }

    #[test]
    fn clear_empties_but_keeps_the_dropped_count() {
        let mut queue = InputQueue::<2>::new();
        queue.push_slice(b"abc");
        queue.clear();
        assert!(queue.is_empty());
        assert_eq!(queue.dropped(), 1);
        assert_eq!(queue.push_slice(b"de"), 2);
        assert_eq!(contents(&queue), b"de");
    }

    #[test]
    fn consume_more_than_queued_empties_it() {
        let mut queue = InputQueue::<4>::new();
        queue.push_slice(b"ab");
        queue.consume(9);
        assert!(queue.is_empty());
        assert_eq!(queue.pop(), None);
    }

    #[test]
    fn a_long_stream_through_a_small_ring_keeps_its_order() {
        let mut queue = InputQueue::<5>::new();
        let input: Vec<u8> = (0..=255).collect();
        let mut output = Vec::new();
        for chunk in input.chunks(3) {
            assert_eq!(queue.push_slice(chunk), chunk.len());
            // A receiver that takes one byte at a time lags behind, then
            // catches up on every other chunk.
            queue.offer(|bytes| {
                output.push(bytes[0]);
                1
            });
            if output.len() % 2 == 0 {
                queue.offer(|bytes| {
                    output.extend_from_slice(bytes);
                    bytes.len()
                });
            }
        }
        queue.offer(|bytes| {
            output.extend_from_slice(bytes);
            bytes.len()
        });
        assert_eq!(output, input);
        assert_eq!(queue.dropped(), 0);
    }
}
