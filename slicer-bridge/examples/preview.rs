//! `farmhand convert` / `farmhand thumbnail` without the daemon:
//!
//! `cargo run -p slicer-bridge --example preview -- glb IN OUT.glb`
//! `cargo run -p slicer-bridge --example preview -- png IN OUT.png [SIZE]`

use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [kind, input, output] if kind == "glb" => {
            slicer_bridge::convert_to_glb(Path::new(input), Path::new(output))
                .map(|stats| println!("{stats:?}"))
        }
        [kind, input, output, size @ ..] if kind == "png" => {
            let size = size.first().and_then(|s| s.parse().ok()).unwrap_or(512);
            slicer_bridge::render_thumbnail(Path::new(input), Path::new(output), size)
        }
        _ => {
            eprintln!("usage: preview glb IN OUT.glb | preview png IN OUT.png [SIZE]");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
