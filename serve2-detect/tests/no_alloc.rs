//! Detection allocates nothing: every kind judging every prefix of every
//! captured flight, counted by a global allocator of this test binary.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serve2_detect::DetectContext;
use serve2_detect::testing::sample_detectors;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn no_detector_allocates_while_detecting() {
    let flights: Vec<Vec<u8>> = common::captured_flights().into_iter().map(|(_, flight)| flight).collect();
    let detectors: Vec<_> = sample_detectors().into_iter().map(|(_, detector)| detector).collect();
    let ctx = DetectContext::default();
    COUNTING.store(true, Ordering::Relaxed);
    for flight in &flights {
        for detector in &detectors {
            for end in 0..=flight.len() {
                std::hint::black_box(detector.detect(&flight[..end], &ctx));
            }
        }
    }
    COUNTING.store(false, Ordering::Relaxed);
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0, "detection allocated");
}
