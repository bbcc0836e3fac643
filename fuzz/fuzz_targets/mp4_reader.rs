//! MP4 reading: boxes, sample tables, edit lists, fragments.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    std::hint::black_box(media::mp4::looks_like_mp4(data));
    if let Ok(movie) = media::mp4::parse(data) {
        let mut total: u64 = 0;
        for track in &movie.tracks {
            for sample in &track.samples {
                total = total.wrapping_add(u64::from(sample.size));
                std::hint::black_box((sample.offset, sample.dts, sample.pts, sample.keyframe));
            }
        }
        std::hint::black_box(total);
    }
});
