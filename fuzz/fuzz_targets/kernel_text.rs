//! Kernel files (`--kernel FILE`): any text either parses to a valid
//! kernel or is refused with an error.
#![no_main]

use he_filter::Kernel;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(k) = Kernel::parse_text(&text) {
        assert!(k.size() % 2 == 1 && k.size() <= he_filter::MAX_KERNEL_SIZE);
        assert_eq!(k.weights().len(), k.size() * k.size());
        assert!(k.divisor() > 0);
        let again = Kernel::new(k.size(), k.weights().to_vec(), k.divisor()).expect("valid");
        assert_eq!(again.weights(), k.weights());
    }
});
