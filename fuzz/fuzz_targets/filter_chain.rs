//! Filter requests as JSON (what the server receives). Any chain that
//! parses is planned; one that fits a small image is computed under
//! encryption and must equal the plaintext reference value for value.
#![no_main]

use enc_image::{Layout, NoProgress};
use he_filter::{Filter, reference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(chain) = serde_json::from_slice::<Vec<Filter>>(data) else {
        return;
    };
    if chain.len() > 6 {
        return;
    }
    let Ok(opts) = he_filter::encrypt_options(&chain) else {
        return;
    };
    let Layout::Packed { halo, slot_bits } = opts.layout else {
        return;
    };
    // Keep each run short: the reference pads by the total radius.
    if halo > 6 || enc_image::Geometry::total_slots(512, slot_bits) <= 4 * halo {
        return;
    }
    let kp = he_toolkit_fuzz::keypair();
    let (img, enc) = he_toolkit_fuzz::sample_image(&chain);
    he_filter::check_chain(enc.meta(), &chain).expect("encrypt_options fits the chain");
    let out = he_filter::apply_chain(&enc, kp.public_key(), &chain, &NoProgress)
        .expect("a checked chain runs");
    let got = out.decrypt(kp.private_key(), &NoProgress).expect("decrypt");
    let want = reference::apply_chain(&img, &chain, opts.border).expect("reference");
    assert_eq!(got, want);
});
