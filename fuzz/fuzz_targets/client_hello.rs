//! The ClientHello record walker and parser on arbitrary bytes: no panic,
//! `Complete { end }` within the input, `Incomplete { need }` beyond it, and
//! a parse that depends on the hello's own bytes only.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serve2_detect::tls::{
    ClientHelloScan, MAX_CLIENT_HELLO, parse_client_hello, scan_client_hello, scan_client_hello_up_to,
};

fuzz_target!(|data: &[u8]| {
    let scan = scan_client_hello(data);
    let parsed = parse_client_hello(data);
    match scan {
        ClientHelloScan::Complete { end } => {
            assert!(end <= data.len(), "Complete end {end} past the {} bytes", data.len());
            // The hello alone says the same: nothing after `end` counts.
            assert_eq!(scan_client_hello(&data[..end]), scan);
            assert_eq!(parse_client_hello(&data[..end]), parsed);
            if let Some(info) = &parsed {
                let name = info.server_name.as_deref().unwrap_or_default();
                assert!(!name.bytes().any(|b| b.is_ascii_uppercase()), "server name {name:?} not lowercased");
            }
        }
        ClientHelloScan::Incomplete { need } => {
            assert!(need > data.len(), "Incomplete need {need} with {} bytes", data.len());
            assert_eq!(parsed, None);
        }
        ClientHelloScan::Invalid => assert_eq!(parsed, None),
    }
    // A smaller cap only refuses more: whatever it does not refuse, the
    // default cap sees the same way.
    let capped = scan_client_hello_up_to(data, 512);
    if capped != ClientHelloScan::Invalid {
        assert_eq!(capped, scan, "cap 512 vs {MAX_CLIENT_HELLO}");
    }
});
