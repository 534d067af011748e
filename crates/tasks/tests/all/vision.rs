//! Image classification (ViT) and object detection (DETR with a timm or transformers ResNet)
//! against transformers 5.25 with its Pillow image processors (`ViTImageProcessorPil`,
//! `DetrImageProcessorPil`), and Pillow 13's resize bit for bit. The torchvision processors
//! (5.25's default when torchvision is installed) resize differently; the tests bound that
//! difference rather than hide it (docs/tasks.md).

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use energy_star_tasks::answers;
use energy_star_tasks::pixels::{Filter, ImageProcessor, Rgb, SizeRule};
use energy_star_tasks::{Outputs, PrepareOptions, Prepared, Task, TaskInput};
use sha2::{Digest, Sha256};

use super::*;

fn tensors(path: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(path), &Device::Cpu).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().and_then(|t| t.to_dtype(candle_core::DType::F32)).and_then(|t| t.to_vec1()).expect("f32")
}

fn bytes(t: &Tensor) -> Vec<u8> {
    t.flatten_all().and_then(|t| t.to_vec1::<u8>()).expect("u8")
}

/// The seven test images, in the references' order.
fn image_files() -> Vec<String> {
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("images/resize-reference.json")).expect("json"))
            .expect("json");
    r["images"].as_array().expect("images").iter().map(|i| i["file"].as_str().expect("file").to_string()).collect()
}

fn image_bytes(file: &str) -> Vec<u8> {
    std::fs::read(fixture("images").join(file)).expect("image")
}

/// The RGB pixels Pillow decoded, where the file is lossy (decoders may differ there); our own
/// decode of the lossless ones.
fn pillow_rgb(file: &str, stored: &HashMap<String, Tensor>) -> Rgb {
    match stored.get(&format!("decoded/{file}")) {
        Some(t) => {
            let (h, w, _) = t.dims3().expect("hwc");
            Rgb { width: w, height: h, data: bytes(t) }
        }
        None => Rgb::decode(&image_bytes(file)).expect("decode"),
    }
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn pillow_resize_is_reproduced_bit_for_bit() {
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("images/resize-reference.json")).expect("json"))
            .expect("json");
    let stored = tensors("images/resize-reference.safetensors");
    let mut checked = 0;
    for e in r["entries"].as_array().expect("entries") {
        let key = e["key"].as_str().expect("key");
        if !key.starts_with("pil/") {
            continue;
        }
        let filter = match e["filter"].as_str() {
            Some("bilinear") => Filter::Bilinear,
            Some("bicubic") => Filter::Bicubic,
            other => panic!("{key}: filter {other:?}"),
        };
        let src = pillow_rgb(e["image"].as_str().expect("image"), &stored);
        let (w, h) = (e["width"].as_u64().expect("w") as usize, e["height"].as_u64().expect("h") as usize);
        let got = src.resize(w, h, filter);
        if let Some(want) = stored.get(key) {
            let want = bytes(want);
            let differ = got.data.iter().zip(&want).filter(|(a, b)| a != b).count();
            assert_eq!(differ, 0, "{key} ({} pass first): {differ} of {} values differ", e["first_pass"], want.len());
        }
        assert_eq!(sha256_hex(&got.data), e["sha256"].as_str().expect("sha"), "{key}");
        checked += 1;
    }
    assert_eq!(checked, 35, "every Pillow entry");
}

#[test]
fn images_convert_to_rgb_as_pillow_does() {
    let stored = tensors("images/resize-reference.safetensors");
    // RGBA drops alpha (no compositing); grey is replicated into three channels.
    for (file, channels) in [("rgba-40x150.png", 4), ("gray-17x17.png", 1)] {
        let raw = bytes(&stored[&format!("decoded_raw/{file}")]);
        let ours = Rgb::decode(&image_bytes(file)).expect("decode");
        let want: Vec<u8> =
            raw.chunks(channels).flat_map(|px| [px[0], px[channels.min(2) - 1], px[channels.min(3) - 1]]).collect();
        assert_eq!(ours.data, want, "{file}");
    }
    // The lossy files: our WebP decoder gives libwebp's pixels; our JPEG decoder (zune-jpeg)
    // rounds its IDCT and chroma upsampling differently from libjpeg-turbo, by up to three
    // levels (docs/tasks.md has the counts).
    for (file, bound) in [("jpeg-123x77.jpg", 3), ("webp-lossy-64x48.webp", 0)] {
        let ours = Rgb::decode(&image_bytes(file)).expect("decode");
        let pillow = pillow_rgb(file, &stored);
        assert_eq!((ours.width, ours.height), (pillow.width, pillow.height), "{file}");
        let worst = ours.data.iter().zip(&pillow.data).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);
        let differ = ours.data.iter().zip(&pillow.data).filter(|(a, b)| a != b).count();
        eprintln!("{file}: {differ} of {} values differ from Pillow's decode, by at most {worst}", ours.data.len());
        assert!(worst <= bound, "{file}: decoded values differ from Pillow's by up to {worst}");
    }
    let err = Rgb::decode(b"not an image").expect_err("garbage");
    assert!(err.contains("not a readable PNG, JPEG or WebP image"), "{err}");
}

#[test]
fn the_shortest_edge_rule_matches_transformers() {
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("images/resize-reference.json")).expect("json"))
            .expect("json");
    let mut checked = 0;
    for e in r["entries"].as_array().expect("entries") {
        let rule = match e["target"].as_str() {
            Some("detr-tiny") => SizeRule::ShortestEdge { shortest: 64, longest: Some(100) },
            Some("detr-real") => SizeRule::ShortestEdge { shortest: 800, longest: Some(1333) },
            _ => continue,
        };
        let file = e["image"].as_str().expect("image");
        let img = Rgb::decode(&image_bytes(file)).expect("decode");
        let want = (e["height"].as_u64().expect("h") as usize, e["width"].as_u64().expect("w") as usize);
        assert_eq!(rule.target(img.height, img.width), want, "{} {file}", e["target"]);
        checked += 1;
    }
    assert!(checked >= 14, "{checked}");
}

#[test]
fn legacy_preprocessor_configs_read_as_transformers_reads_them() {
    let read = |p: &str| ImageProcessor::parse(&std::fs::read_to_string(fixture(p)).expect("config")).expect(p);
    let vit = read("tiny-vit/preprocessor_config.json");
    assert_eq!(vit.resize, Some((SizeRule::Fixed { height: 32, width: 32 }, Filter::Bilinear)));
    assert!(!vit.pad);
    assert_eq!(read("tiny-detr/preprocessor_config.json"), read("tiny-detr/preprocessor_config.legacy.json"));
    let bad = ImageProcessor::parse(r#"{"image_processor_type": "ViTImageProcessor", "size": {"shortest": 3}}"#);
    assert!(bad.expect_err("bad size").to_string().contains("names neither height and width nor shortest_edge"));
    let bad = ImageProcessor::parse(r#"{"image_processor_type": "CLIPImageProcessor"}"#);
    assert!(bad.expect_err("clip").to_string().contains("\"CLIPImageProcessor\" is not supported"));
}

/// The images as the model's inputs: each file's bytes, except that a lossy file is replaced
/// by Pillow's decode of it as a PNG, so the model checks measure everything but the JPEG and
/// WebP decoders (checked on their own above).
fn images_input(files: &[String]) -> Vec<TaskInput> {
    let stored = tensors("images/resize-reference.safetensors");
    files
        .iter()
        .map(|f| {
            let Some(t) = stored.get(&format!("decoded/{f}")) else { return TaskInput::Image(image_bytes(f)) };
            let (h, w, _) = t.dims3().expect("hwc");
            let img = image::RgbImage::from_raw(w as u32, h as u32, bytes(t)).expect("rgb");
            let mut png = std::io::Cursor::new(Vec::new());
            img.write_to(&mut png, image::ImageFormat::Png).expect("png");
            TaskInput::Image(png.into_inner())
        })
        .collect()
}

#[test]
fn vit_classifies_as_transformers_does() {
    let name = "tiny-vit";
    let r = reference(name);
    let want = tensors("tiny-vit/reference.safetensors");
    let images = tensors("images/resize-reference.safetensors");
    let files = image_files();
    let p = open_processor(name, Task::ImageClassification);
    let m = open_model(name, Task::ImageClassification);
    let processor =
        ImageProcessor::parse(&std::fs::read_to_string(fixture("tiny-vit/preprocessor_config.json")).expect("cfg"))
            .expect("processor");
    let single = PrepareOptions { truncation: false, pad_group: None, max_length: None };
    let mut worst_torchvision = 0f32;
    for file in &files {
        // Pixels from Pillow's own decode are exact.
        let (pixels, h, w) = processor.pixels(&pillow_rgb(file, &images));
        assert_eq!((h, w), (32, 32));
        let d = worst(&pixels, &flat(&want[&format!("pil/{file}/pixel_values")]));
        assert_eq!(d, 0.0, "{file}: pixel values differ by {d}");
        // From the file's bytes, through the processor and the model.
        let prepared = p.prepare(&images_input(std::slice::from_ref(file)), single, 0).expect("prepare");
        let Outputs::Logits(l) = m.forward(&prepared, 0..1).expect("forward") else { panic!("logits") };
        let tolerance = 1e-5;
        let d = worst(&l[0], &flat(&want[&format!("pil/{file}/logits")]));
        assert!(d < tolerance, "{file}: logits differ by {d}");
        worst_torchvision = worst_torchvision.max(worst(&l[0], &flat(&want[&format!("torchvision/{file}/logits")])));
        let top = answers::top_labels(&l[0], &m.labels, 5);
        let pipeline = &r["backends"]["pil"]["pipeline_top5"][file];
        for (got, want) in top.as_array().expect("top").iter().zip(pipeline.as_array().expect("top5")) {
            assert_eq!(got["label"], want["label"], "{file}");
            let d = (got["score"].as_f64().expect("s") - want["score"].as_f64().expect("s")).abs();
            assert!(d < 1e-6, "{file}: score differs by {d}");
        }
    }
    // Our own JPEG and WebP decoders, end to end.
    for file in ["jpeg-123x77.jpg", "webp-lossy-64x48.webp"] {
        let prepared = p.prepare(&[TaskInput::Image(image_bytes(file))], single, 0).expect("prepare");
        let Outputs::Logits(l) = m.forward(&prepared, 0..1).expect("forward") else { panic!("logits") };
        let d = worst(&l[0], &flat(&want[&format!("pil/{file}/logits")]));
        eprintln!("tiny-vit {file} decoded by the image crate: logits differ by {d}");
        assert!(d < 2e-2, "{file}: logits differ by {d}");
    }
    // transformers 5.25's default processor resizes with torchvision, a level off Pillow here
    // and there: the logits move by a few thousandths.
    assert!(worst_torchvision < 1e-2, "torchvision path differs by {worst_torchvision}");
    eprintln!("tiny-vit: logits vs the torchvision processor's differ by up to {worst_torchvision}");
    // All seven in one batch.
    let prepared = p.prepare(&images_input(&files), PrepareOptions { pad_group: Some(7), ..single }, 0).expect("batch");
    let Outputs::Logits(l) = m.forward(&prepared, 0..files.len()).expect("forward") else { panic!("logits") };
    let batched = flat(&want["pil/batched/logits"]);
    for (i, file) in files.iter().enumerate() {
        let d = worst(&l[i], &batched[i * 5..(i + 1) * 5]);
        assert!(d < 1e-5, "batched {file}: logits differ by {d}");
    }
}

/// A copy of a fixture folder with some files replaced.
fn variant(name: &str, replace: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    for entry in std::fs::read_dir(fixture(name)).expect("fixture") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_file() {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
        }
    }
    for (to, from) in replace {
        std::fs::copy(fixture(name).join(from), dir.path().join(to)).expect("copy");
    }
    dir
}

fn open_dir(dir: &std::path::Path, task: Task) -> (energy_star_tasks::Processor, energy_star_tasks::TaskModel) {
    let model = dir.display().to_string();
    let p = energy_star_tasks::Processor::open(&model, None, task, &|_: &str| None).expect("processor");
    let spec = energy_star_tasks::TaskModelSpec {
        model,
        task,
        device: "cpu".into(),
        dtype: "float32".into(),
        random_weights: None,
    };
    (p, energy_star_tasks::TaskModel::open(&spec, &|_: &str| None).expect("model"))
}

#[test]
fn vit_reads_the_hub_config_spelling() {
    let dir = variant("tiny-vit", &[("config.json", "config.legacy.json")]);
    let (p, m) = open_dir(dir.path(), Task::ImageClassification);
    let want = tensors("tiny-vit/reference.safetensors");
    let single = PrepareOptions { truncation: false, pad_group: None, max_length: None };
    let file = "rgb-97x61.png";
    let prepared = p.prepare(&images_input(&[file.to_string()]), single, 0).expect("prepare");
    let Outputs::Logits(l) = m.forward(&prepared, 0..1).expect("forward") else { panic!("logits") };
    let d = worst(&l[0], &flat(&want[&format!("pil/{file}/logits")]));
    assert!(d < 1e-5, "{d}");
}

type Detections = (Vec<Vec<Vec<f32>>>, Vec<Vec<[f32; 4]>>);

fn detect(m: &energy_star_tasks::TaskModel, prepared: &Prepared) -> Detections {
    match m.forward(prepared, 0..prepared.len()).expect("forward") {
        Outputs::Detections { logits, boxes } => (logits, boxes),
        _ => panic!("detections"),
    }
}

fn check_detections(got: &Detections, row: usize, logits: &[f32], boxes: &[f32], tolerance: f32, what: &str) {
    let l: Vec<f32> = got.0[row].iter().flatten().copied().collect();
    let b: Vec<f32> = got.1[row].iter().flatten().copied().collect();
    let d = worst(&l, logits);
    assert!(d < tolerance, "{what}: logits differ by {d}");
    let d = worst(&b, boxes);
    assert!(d < tolerance, "{what}: boxes differ by {d}");
}

#[test]
fn detr_detects_as_transformers_does() {
    let name = "tiny-detr";
    let r = reference(name);
    let want = tensors("tiny-detr/reference.safetensors");
    let files = image_files();
    let p = open_processor(name, Task::ObjectDetection);
    let m = open_model(name, Task::ObjectDetection);
    let single = PrepareOptions { truncation: false, pad_group: None, max_length: None };
    let pil = &r["backends"]["pil"];
    for file in &files {
        let prepared = p.prepare(&images_input(std::slice::from_ref(file)), single, 0).expect("prepare");
        let Prepared::Images(imgs) = &prepared else { panic!("images") };
        let shape = &pil["single"][file]["pixel_values_shape"];
        assert_eq!(
            (imgs[0].height as u64, imgs[0].width as u64),
            (shape[2].as_u64().expect("h"), shape[3].as_u64().expect("w")),
            "{file}: resized size"
        );
        let got = detect(&m, &prepared);
        let key = format!("pil/single/{file}");
        check_detections(
            &got,
            0,
            &flat(&want[&format!("{key}/logits")]),
            &flat(&want[&format!("{key}/pred_boxes")]),
            1e-4,
            file,
        );
        for (threshold, field) in [(0.5, "threshold_default"), (0.0, "threshold_0")] {
            let answer = answers::detections(&got.0[0], &got.1[0], &m.labels, imgs[0].original, threshold);
            let expected = &pil["pipeline"][file][field];
            assert_eq!(answer.as_array().map(Vec::len), expected.as_array().map(Vec::len), "{file} {field}");
            for (a, e) in answer.as_array().expect("a").iter().zip(expected.as_array().expect("e")) {
                assert_eq!((&a["label"], &a["box"]), (&e["label"], &e["box"]), "{file} {field}");
                let d = (a["score"].as_f64().expect("s") - e["score"].as_f64().expect("s")).abs();
                assert!(d < 1e-5, "{file} {field}: score differs by {d}");
            }
        }
    }
    // Two images padded to one 100×100 batch: pixels, mask and outputs.
    let pair: Vec<String> = ["rgb-97x61.png", "rgba-40x150.png"].map(String::from).to_vec();
    let prepared = p.prepare(&images_input(&pair), PrepareOptions { pad_group: Some(2), ..single }, 0).expect("pair");
    let Prepared::Images(imgs) = &prepared else { panic!("images") };
    let pixels: Vec<f32> = imgs.iter().flat_map(|i| i.pixels.iter().copied()).collect();
    assert_eq!(worst(&pixels, &flat(&want["pil/pair/pixel_values"])), 0.0, "padded pixel values");
    let mask: Vec<u8> = imgs
        .iter()
        .flat_map(|i| {
            (0..i.height).flat_map(move |y| (0..i.width).map(move |x| u8::from(y < i.valid.0 && x < i.valid.1)))
        })
        .collect();
    assert_eq!(mask, bytes(&want["pair/pixel_mask"]), "pixel mask");
    let got = detect(&m, &prepared);
    let (logits, boxes) = (flat(&want["pil/pair/logits"]), flat(&want["pil/pair/pred_boxes"]));
    for row in 0..2 {
        check_detections(&got, row, &logits[row * 30..(row + 1) * 30], &boxes[row * 24..(row + 1) * 24], 1e-4, "pair");
    }
    // All seven in one padded batch: padding changes DETR's outputs, as in transformers.
    let prepared = p.prepare(&images_input(&files), PrepareOptions { pad_group: Some(7), ..single }, 0).expect("all");
    let got = detect(&m, &prepared);
    let (logits, boxes) = (flat(&want["pil/all/logits"]), flat(&want["pil/all/pred_boxes"]));
    for (row, file) in files.iter().enumerate() {
        check_detections(&got, row, &logits[row * 30..(row + 1) * 30], &boxes[row * 24..(row + 1) * 24], 1e-4, file);
    }
}

#[test]
fn detr_reads_every_backbone_spelling_and_config() {
    let file = "rgb-97x61.png".to_string();
    let want = tensors("tiny-detr/reference.safetensors");
    let (logits, boxes) =
        (flat(&want[&format!("pil/single/{file}/logits")]), flat(&want[&format!("pil/single/{file}/pred_boxes")]));
    let single = PrepareOptions { truncation: false, pad_group: None, max_length: None };
    let legacy = variant(
        "tiny-detr",
        &[("config.json", "config.legacy.json"), ("preprocessor_config.json", "preprocessor_config.legacy.json")],
    );
    for (what, dir) in [
        ("transformers' ResNet", fixture("tiny-detr/hf-backbone")),
        ("the Hub's num_batches_tracked counters", fixture("tiny-detr/with-num-batches-tracked")),
        ("the Hub's config spelling", legacy.path().to_path_buf()),
    ] {
        let (p, m) = open_dir(&dir, Task::ObjectDetection);
        let got = detect(&m, &p.prepare(&images_input(std::slice::from_ref(&file)), single, 0).expect("prepare"));
        check_detections(&got, 0, &logits, &boxes, 1e-4, what);
    }
}

#[test]
fn random_weights_take_their_shape_from_the_config() {
    let open = |dir: std::path::PathBuf| {
        let spec = energy_star_tasks::TaskModelSpec {
            model: dir.display().to_string(),
            task: Task::ObjectDetection,
            device: "cpu".into(),
            dtype: "float32".into(),
            random_weights: Some(7),
        };
        energy_star_tasks::TaskModel::open(&spec, &|_: &str| None)
    };
    let m = open(fixture("tiny-detr/hf-backbone")).expect("a backbone_config gives the shape");
    let p = open_processor("tiny-detr", Task::ObjectDetection);
    let single = PrepareOptions { truncation: false, pad_group: None, max_length: None };
    let got = detect(&m, &p.prepare(&images_input(&["gray-17x17.png".to_string()]), single, 0).expect("prepare"));
    assert!(
        got.0[0].iter().flatten().all(|x| x.is_finite()) && got.1[0].iter().flatten().all(|x| (0.0..=1.0).contains(x))
    );
    // A timm backbone shrunk through a folder beside the model: its config.json's model_args.
    let m = open(fixture("tiny-detr")).expect("local-dir backbone");
    let got = detect(&m, &p.prepare(&images_input(&["gray-17x17.png".to_string()]), single, 0).expect("prepare"));
    assert!(got.0[0].iter().flatten().all(|x| x.is_finite()));
    // One the config names but that is not here.
    let dir = variant("tiny-detr", &[]);
    let err = open(dir.path().to_path_buf()).err().expect("no timm folder").to_string();
    assert!(err.contains("timm-backbone/config.json"), "{err}");
}
