//! MPEG-TS reading: the demuxer (PSI, PES reassembly, PCR) and the packet framing (resync).
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::ts::demux::Demuxer;
use media::ts::framing::Framing;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut demux) = Demuxer::new(data) {
        let _ = demux.probe_streams();
        while let Some(frame) = demux.next_frame() {
            if let Ok(frame) = frame {
                std::hint::black_box(frame.data.len());
            }
        }
        std::hint::black_box(demux.stats());
        std::hint::black_box(demux.errors().len());
    }
    if let Ok(framing) = Framing::new(data) {
        for (offset, packet) in framing {
            std::hint::black_box((offset, packet.len()));
        }
    }
});
