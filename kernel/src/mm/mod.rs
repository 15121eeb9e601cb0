//! Memory: physical ranges and the free set, the page-table builder shared by
//! the host map and EPT (both pure), and the machine's frame allocator and
//! heap.

pub mod page_tables;
pub mod phys;

#[cfg(target_os = "none")]
mod frames;
#[cfg(target_os = "none")]
pub use frames::*;
