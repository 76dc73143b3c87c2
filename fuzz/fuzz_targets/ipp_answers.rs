//! Fuzz target: a printer's IPP answer, as bytes off the wire, through the `ipp` crate's parser
//! and every reading the core makes of it (capabilities, job answers, job status, refusals) via
//! `server::printing::ipp::read_answer_offline`. Whatever a printer sends must end in a value or
//! an error whose text holds no control characters (it reaches logs and the touch screen).
#![no_main]

use libfuzzer_sys::fuzz_target;
use server::printing::ipp::read_answer_offline;

fn printable(what: &str, text: &str) {
    assert!(!text.chars().any(char::is_control), "{what} carries control characters: {text:?}");
}

fuzz_target!(|data: &[u8]| {
    let readings = match read_answer_offline(data.to_vec()) {
        Ok(readings) => readings,
        Err(not_ipp) => return printable("the parse error", &not_ipp),
    };
    for reading in readings {
        if let Err(err) = reading {
            let status = tonic::Status::from(err);
            printable("an error from a printer's answer", status.message());
        }
    }
});
