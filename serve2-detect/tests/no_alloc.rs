//! Detection allocates nothing: every kind judging every prefix of every
//! captured flight, counted by a global allocator of this test binary.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serve2_detect::DetectContext;
use serve2_detect::registry::KINDS;

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

fn flights() -> Vec<Vec<u8>> {
    let mut flights = Vec::new();
    let mut folders = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "bin") {
                flights.push(std::fs::read(&path).unwrap());
            }
        }
    }
    flights
}

#[test]
fn no_detector_allocates_while_detecting() {
    let flights = flights();
    let confs = [
        ("regex", serde_json::json!({"patterns": ["^SSH-", "jabber"]})),
        ("tlsroute", serde_json::json!({"serverNames": ["*.example.test", ""], "alpn": ["h2"]})),
        ("httproute", serde_json::json!({"hosts": ["*.example.test", "localhost"]})),
    ];
    let mut detectors: Vec<_> =
        KINDS.iter().filter(|k| k.name != "regex").map(|k| k.build(serde_json::json!({})).unwrap()).collect();
    for (name, conf) in confs {
        detectors.push(KINDS.iter().find(|k| k.name == name).unwrap().build(conf).unwrap());
    }
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
