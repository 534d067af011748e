//! `energy-star label`: AI Energy Score's label from a results table (stars within the row's
//! task and class), as SVG and a PNG of the expected size that is not blank; from a run
//! without a GPU figure, a clear refusal.

use energy_star_tests::{energy_star, small_offline_run};

const TABLE: &str = "model_name,model_class,task,reasoning_state,gpu_energy_wh,wh_per_1000_queries,timestamp,gpu_energy_source,complete,results_dir
openai/gpt-oss-20b,B,text_generation,off,1.9,1.90,1764720000,nvml-energy-counter,true,
meta-llama/Llama-3.1-8B-Instruct,B,text_generation,off,0.7,0.70,1764720000,nvml-energy-counter,true,
Qwen/Qwen3-30B-A3B,B,text_generation,off,3.1,3.10,1764720000,nvml-energy-counter,true,
HuggingFaceTB/SmolLM3-3B,A,text_generation,off,0.4,0.40,1764720000,nvml-energy-counter,true,
";

/// Width, height and the RGB of every pixel, decoded by the `png` crate.
fn decode(png_bytes: &[u8]) -> (u32, u32, Vec<[u8; 3]>) {
    let mut reader = png::Decoder::new(std::io::Cursor::new(png_bytes)).read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    assert_eq!((info.color_type, info.bit_depth), (png::ColorType::Rgba, png::BitDepth::Eight), "8-bit RGBA");
    let pixels = buf[..info.buffer_size()].chunks(4).map(|p| [p[0], p[1], p[2]]).collect();
    (info.width, info.height, pixels)
}

#[test]
fn a_table_row_gets_its_label_with_stars_from_its_cohort() {
    let cwd = tempfile::tempdir().expect("tmp");
    std::fs::write(cwd.path().join("master_results.csv"), TABLE).expect("write");
    energy_star(cwd.path(), &["label", "master_results.csv", "--model-name", "openai/gpt-oss-20b"], &[]).success();
    let svg = std::fs::read_to_string(cwd.path().join("label.svg")).expect("svg");
    // Class B's range is 0.70–3.10 Wh: 1.90 is in the third band from the top, 3 stars.
    assert!(svg.contains("3 of 5 stars within the cohort of 3 runs"), "{svg}");
    assert_eq!(svg.matches("#f2b01e").count(), 3);
    for want in
        ["openai/gpt-oss-20b", "text_generation · class B", "1.90 Wh", "Date: 2025-12-03", "nvml-energy-counter"]
    {
        assert!(svg.contains(want), "{want} missing: {svg}");
    }
    let png = std::fs::read(cwd.path().join("label.png")).expect("png");
    let (w, h, pixels) = decode(&png);
    assert_eq!((w, h), (520, 728), "the Label Space's 260 × 364 at twice the scale");
    // Not blank: the header's green, the stars' gold and the text's near-black are all there.
    let near = |c: [u8; 3], t: [u8; 3]| c.iter().zip(t).all(|(a, b)| a.abs_diff(b) < 12);
    let count = |t: [u8; 3]| pixels.iter().filter(|c| near(**c, t)).count();
    assert!(count([0x1b, 0x4d, 0x3e]) > 20_000, "header green");
    assert!(count([0xf2, 0xb0, 0x1e]) > 1_000, "gold stars");
    assert!(count([0x1a, 0x1a, 0x1a]) > 2_000, "dark text");
    // The same label twice is the same file.
    let first = png.clone();
    energy_star(cwd.path(), &["label", "master_results.csv", "--model-name", "openai/gpt-oss-20b"], &[]).success();
    assert_eq!(std::fs::read(cwd.path().join("label.png")).expect("png"), first);
}

#[test]
fn label_refuses_what_it_cannot_label() {
    let cwd = tempfile::tempdir().expect("tmp");
    std::fs::write(cwd.path().join("t.csv"), TABLE).expect("write");
    energy_star(cwd.path(), &["label", "t.csv"], &[])
        .fails_with(1, &["t.csv has 4 rows; say which model with --model-name"]);
    energy_star(cwd.path(), &["label", "t.csv", "--model-name", "nope"], &[])
        .fails_with(1, &["no row for model \"nope\""]);
    energy_star(cwd.path(), &["label", "missing"], &[]).fails_with(1, &["missing is neither a results folder"]);
    // A run on this CPU has no GPU energy to label.
    small_offline_run(cwd.path(), "optimum", 2, &[], &[]).success();
    energy_star(cwd.path(), &["label", "results"], &[])
        .fails_with(1, &["no GPU energy per query to label: the run used no GPU"]);
}
