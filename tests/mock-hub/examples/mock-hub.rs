//! The mock Hub on its own, to try `energy-star fetch` by hand:
//! `cargo run -p energy-star-mock-hub --example mock-hub -- --model org/tiny-llama=tests/fixtures/tiny-llama
//! [--dataset ORG/NAME=DIR] [--drop-after PATH=BYTES] [--slow-kib-s N]`, then
//! `HF_ENDPOINT=<printed url> energy-star fetch org/tiny-llama`.

use energy_star_mock_hub::{Kind, MockHub, MockRepo};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut repos = Vec::new();
    let mut drops = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).ok_or_else(|| format!("{} needs a value", args[i]))?;
        let (k, v) = value.split_once('=').ok_or_else(|| format!("{value}: expected KEY=VALUE"))?;
        match args[i].as_str() {
            "--model" => repos.push(MockRepo::from_dir(Kind::Model, k, std::path::Path::new(v))?),
            "--dataset" => repos.push(MockRepo::from_dir(Kind::Dataset, k, std::path::Path::new(v))?),
            "--drop-after" => drops.push((k.to_string(), v.parse::<usize>()?)),
            other => return Err(format!("unknown option {other}").into()),
        }
        i += 2;
    }
    let hub = MockHub::start(repos, None)?;
    for (path, bytes) in drops {
        hub.drop_after(&path, bytes, 1);
    }
    println!("{}", hub.url());
    // Serves until killed.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
