//! Every parser of Hub response bytes must reject garbage without panicking.
#![no_main]

use hfm_core::hub;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hub::parse_tree_page(data);
    let _ = hub::parse_revision_info(data);
    let _ = hub::parse_xet_token(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = hub::next_link(text);
        let _ = hub::parse_rfc3339(text);
        let _ = hub::percent_decode(text);
        let _ = hub::parse_repo_arg(text);
        let _ = hub::validate_revision(text);
    }
});
